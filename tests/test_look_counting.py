"""What a look counts: per-series counter differences, for scrape intervals 5–60 s and analysis intervals 10 s–5 min.

A synthetic world of pods serving requests at random instants, scraped on a fixed grid, stands in for Prometheus:
a fake provider answers the looks' two queries (each series' last sample at the start; its raw samples in the
window) from the scraped samples, as Prometheus 2 does (closed range, stale series gone). The truth is per request:
a request is exported by the first scrape of its pod at or after it (lost if the pod is gone or restarted by then),
and belongs to the look whose count boundaries hold that scrape. The looks must count exactly that, look by look.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from controller.providers import QueryResult
from controller.providers.counting import SETTLE_S, Series, count_between, counts_by
from controller.providers.looks import LookRequest, collect_look
from controller.providers.queries import PRIMARY_SUFFIX

NS, TARGET = "shop", "podinfo"
PRIMARY = TARGET + PRIMARY_SUFFIX
SLOW_MS = 250.0


@pytest.mark.parametrize(
    ("baseline", "values", "expected"),
    [
        (100.0, [110.0, 130.0], 30.0),  # steady
        (None, [5.0, 9.0], 9.0),  # born in the window: its first value is new
        (100.0, [3.0, 8.0], 8.0),  # reset: the value after the drop is new
        (100.0, [120.0, 4.0, 10.0], 30.0),  # grows, resets, grows
        (100.0, [], 0.0),  # gone (or idle) before the window
        (100.0, [100.0, 100.0], 0.0),  # idle
    ],
    ids=["steady", "born", "reset", "grow-reset-grow", "gone", "idle"],
)
def test_one_series_counts_its_steps(baseline: float | None, values: list[float], expected: float) -> None:
    assert count_between(baseline, values) == expected


def test_counts_group_series_and_match_baselines_by_labels() -> None:
    def pod(name: str, code: str) -> dict[str, str]:
        return {"destination_workload": TARGET, "pod": name, "response_code": code}

    baselines = [Series(pod("a", "200"), [50.0]), Series(pod("b", "200"), [70.0])]  # b is gone in the window
    window = [Series(pod("a", "200"), [60.0]), Series(pod("c", "200"), [4.0]), Series(pod("a", "503"), [2.0])]
    assert counts_by(baselines, window, lambda labels: labels["destination_workload"]) == {TARGET: 16.0}


@dataclass
class Incarnation:
    """One run of a pod's process: its counters start at zero at ``born`` and stop at ``ends``."""

    workload: str
    pod: str
    born: float
    ends: float
    requests: list[tuple[float, bool, bool]] = field(default_factory=list)  # (instant, 5xx, slow)


@dataclass
class World:
    scrape_s: float
    incarnations: list[Incarnation]
    phase: float

    def scrapes(self, incarnation: Incarnation) -> list[float]:
        """The scrape instants at which the incarnation is alive (a pod is scraped once it exists)."""
        first = self.phase + self.scrape_s * max(0, -int(-(incarnation.born - self.phase) // self.scrape_s))
        instants = []
        at = first
        while at < incarnation.ends:
            instants.append(at)
            at += self.scrape_s
        return instants

    def series(self, buckets: bool) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
        """Every series' samples: requests per code, or the ``+Inf`` and ``le=250`` buckets."""
        found: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for inc in self.incarnations:
            for at in self.scrapes(inc):
                served = [r for r in inc.requests if r[0] <= at]
                if buckets:
                    values = {"+Inf": len(served), "250": sum(1 for r in served if not r[2])}
                    label = "le"
                else:
                    values = {"503": sum(1 for r in served if r[1]), "200": sum(1 for r in served if not r[1])}
                    label = "response_code"
                for name, value in values.items():
                    key = (("destination_workload", inc.workload), ("pod", inc.pod), (label, name))
                    found.setdefault(key, []).append((at, float(value)))
        return found

    def truth(self, start: float, end: float) -> dict[str, list[float]]:
        """Per workload [requests, 5xx, slow] exported by a scrape in ``(start, end]``."""
        totals = {TARGET: [0.0, 0.0, 0.0], PRIMARY: [0.0, 0.0, 0.0]}
        for inc in self.incarnations:
            scrapes = self.scrapes(inc)
            for instant, error, slow in inc.requests:
                exported = next((at for at in scrapes if at >= instant), None)
                if exported is not None and start < exported <= end:
                    counts = totals[inc.workload]
                    counts[0] += 1
                    counts[1] += error
                    counts[2] += slow
        return totals


_RANGE = re.compile(r"\[(\w+)\]\)?$")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _seconds(text: str) -> float:
    return sum(float(n) * _UNITS[unit] for n, unit in re.findall(r"(\d+)(ms|h|m|s)", text))


class FakePrometheus:
    """Answers the looks' counter queries from a :class:`World`'s scraped samples, like Prometheus 2."""

    def __init__(self, world: World) -> None:
        self.requests = world.series(buckets=False)
        self.buckets = world.series(buckets=True)
        self.scrape_s = world.scrape_s

    def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        assert at is not None
        data = self.buckets if "duration" in query else self.requests
        match = _RANGE.search(query)
        assert match is not None, query
        span = _seconds(match.group(1))
        found = []
        for key, samples in data.items():
            inside = [value for t, value in samples if at - span <= t <= at]
            if query.startswith("last_over_time("):
                inside = inside[-1:]  # stale markers are not samples: a gone pod's last value still answers
            if inside:
                found.append(Series(dict(key), inside))
        return found

    def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        raise AssertionError("no threshold metric in these looks")

    def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        raise AssertionError("the looks count with run_series")

    def is_online(self) -> bool:
        return True


def _world(scrape_s: float, horizon: float, rng: random.Random) -> World:
    """Two canary pods (one born late, one restarted), three primary pods (one gone half-way)."""
    incarnations = []
    plans = {
        TARGET: [("a", 0.0, horizon, 0.4), ("b", horizon * 0.3, horizon, 0.4)],
        PRIMARY: [("p1", 0.0, horizon, 1.0), ("p2", 0.0, horizon * 0.5, 1.0), ("p3", horizon * 0.6, horizon, 1.0)],
    }
    restart = horizon * 0.55 + rng.uniform(0, scrape_s)
    for workload, pods in plans.items():
        for pod, born, ends, rate in pods:
            cuts = [born, restart, ends] if pod == "a" else [born, ends]
            for begin, finish in itertools.pairwise(cuts):
                inc = Incarnation(workload, pod, begin, finish)
                at = begin + rng.expovariate(rate)
                while at < finish:
                    inc.requests.append((at, rng.random() < 0.05, rng.random() < 0.1))
                    at += rng.expovariate(rate)
                incarnations.append(inc)
    return World(scrape_s, incarnations, phase=rng.uniform(0, scrape_s))


@pytest.mark.parametrize("scrape_s", [5.0, 15.0, 30.0, 60.0])
@pytest.mark.parametrize("interval_s", [10.0, 30.0, 60.0, 300.0])
def test_looks_count_every_scraped_request_once_in_the_look_that_scraped_it(scrape_s: float, interval_s: float) -> None:
    rng = random.Random(f"{scrape_s}/{interval_s}")
    horizon = max(20 * interval_s, 40 * scrape_s)
    world = _world(scrape_s, horizon, rng)
    provider = FakePrometheus(world)
    # The operator's ticks: one look per interval, each a little late, each starting where the previous ended.
    start = first = rng.uniform(0, interval_s)
    counted = {TARGET: [0.0, 0.0, 0.0], PRIMARY: [0.0, 0.0, 0.0]}
    looks = 0
    while start + interval_s < horizon + 2 * scrape_s:
        end = start + interval_s + rng.uniform(0, 2.0)
        request = LookRequest(NS, TARGET, start, end, counts=True, slow_threshold_ms=SLOW_MS)
        look = collect_look(provider, request)
        assert look.counts_error is None, look.counts_error
        expected = world.truth(start - SETTLE_S, end - SETTLE_S)
        for arm, counts in ((TARGET, look.canary), (PRIMARY, look.primary)):
            assert [counts.requests, counts.errors, counts.slow] == expected[arm], f"look {looks} ({start}, {end}]"
            for index, value in enumerate((counts.requests, counts.errors, counts.slow)):
                counted[arm][index] += value
        start, looks = end, looks + 1
    assert looks >= 5
    # Consecutive looks tile the time: together they count all that was scraped from the first to the last.
    exported = world.truth(first - SETTLE_S, start - SETTLE_S)
    for arm in (TARGET, PRIMARY):
        assert counted[arm] == exported[arm]
    # Lost only what the bound allows: requests a pod served after its last scrape (under one scrape interval each).
    everything = world.truth(-horizon, 2 * horizon)
    lost = sum(len(inc.requests) for inc in world.incarnations) - everything[TARGET][0] - everything[PRIMARY][0]
    assert lost <= sum(1 for inc in world.incarnations if inc.requests) * 3 * scrape_s
