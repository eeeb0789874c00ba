"""The pure look plan (controller.providers.plan): which queries a look sends, and the Look their answers make.

No server: answers are written by hand, so each test says exactly which answer (or error) leads to which part of
the Look. The blocking and the event-loop collectors are checked to build the same Look from the same provider.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rollout_world import make_spec

from analysis.samples import ArmCounts
from controller.providers import ProviderUnavailable, QueryRejected, QueryResult
from controller.providers.counting import SETTLE_S, Series
from controller.providers.looks import collect_look, collect_look_async
from controller.providers.plan import (
    REQUESTS_BASELINE,
    REQUESTS_WINDOW,
    SLOW_BASELINE,
    SLOW_WINDOW,
    LookRequest,
    QueryKind,
    assemble,
    compared_key,
    plan_look,
    threshold_key,
)
from controller.providers.queries import BuiltinMetric, BuiltinName
from controller.providers.render import CanaryIdentity, ProviderKey, render_canary_looks
from controller.rollout.judging import policy_from_spec
from controller.rollout.spec import MetricSpec

NS, TARGET = "shop", "podinfo"
START, END = 1_000.0, 1_060.0


def _series(workload: str, value: float, **labels: str) -> Series:
    return Series({"destination_workload": workload, "response_code": "200", **labels}, [value])


def _request(**fields: Any) -> LookRequest:
    return LookRequest(NS, TARGET, START, END, **fields)


def test_the_plan_names_every_query_with_its_kind_and_evaluation_time() -> None:
    request = _request(
        thresholds={"sr": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE), "custom": "vector(1)"},
        compared={"cpu": ("cpu{arm='c'}", "cpu{arm='p'}")},
        counts=True,
        slow_threshold_ms=300,
    )
    plan = plan_look(request)
    assert not plan.failed
    by_key = {query.key: query for query in plan.queries}
    assert list(by_key) == [
        "threshold/sr",
        "threshold/custom",
        "compared/cpu/canary",
        "compared/cpu/primary",
        REQUESTS_BASELINE,
        REQUESTS_WINDOW,
        SLOW_BASELINE,
        SLOW_WINDOW,
    ]
    assert by_key["threshold/custom"].promql == "vector(1)" and by_key["threshold/custom"].at == END
    assert "istio_requests_total" in by_key["threshold/sr"].promql
    assert by_key["compared/cpu/primary"].promql == "cpu{arm='p'}"
    assert {q.kind for key, q in by_key.items() if key.startswith("counts/")} == {QueryKind.SERIES}
    # Counters are read SETTLE_S behind both boundaries: the baseline at the start, the window at the end.
    assert by_key[REQUESTS_BASELINE].at == START - SETTLE_S and by_key[REQUESTS_WINDOW].at == END - SETTLE_S
    assert by_key[REQUESTS_BASELINE].promql.startswith("last_over_time(") and by_key[SLOW_WINDOW].promql.endswith(
        "[1m]"
    )
    assert plan_look(request) == plan  # pure: the same request, the same plan


def test_what_cannot_be_planned_is_an_error_on_its_metric_and_sends_nothing() -> None:
    request = _request(thresholds={"sr": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE)}, counts=True,
                       slow_threshold_ms=4_000_000)  # fmt: skip
    plan = plan_look(request)
    assert [query.key for query in plan.queries] == [threshold_key("sr"), REQUESTS_BASELINE, REQUESTS_WINDOW]
    look = assemble(request, plan.answers({REQUESTS_BASELINE: [], REQUESTS_WINDOW: [],
                                           threshold_key("sr"): QueryResult("q", 99.5)}))  # fmt: skip
    assert look.thresholds["sr"].value == 99.5
    assert look.counts_error is not None and "above the largest histogram bucket" in look.counts_error
    unknown = _request(thresholds={"sr": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE)}, counts=True,
                       query_set="linkerd")  # fmt: skip
    plan = plan_look(unknown)
    assert plan.queries == ()
    look = assemble(unknown, plan.answers({}))
    assert look.thresholds["sr"].error == look.counts_error == "unknown query set 'linkerd'; known: istio, envoy"


def test_counts_come_from_counter_differences_per_arm() -> None:
    request = _request(counts=True, slow_threshold_ms=300)
    answers: Mapping[str, Any] = {
        REQUESTS_BASELINE: [_series(TARGET, 100), _series(TARGET + "-primary", 1000)],
        REQUESTS_WINDOW: [
            _series(TARGET, 130),
            _series(TARGET + "-primary", 1100),
            _series(TARGET, 4, response_code="503"),  # born in the window: all new
            _series("someone-else", 50),
        ],
        SLOW_BASELINE: [_series(TARGET, 90, le="+Inf"), _series(TARGET, 80, le="500")],
        SLOW_WINDOW: [
            _series(TARGET, 124, le="+Inf"),
            _series(TARGET, 110, le="500"),
            _series(TARGET + "-primary", 100, le="+Inf"),  # born in the window, as fast as it is many
            _series(TARGET + "-primary", 100, le="500"),
        ],
    }
    look = assemble(request, plan_look(request).answers(answers))
    assert look.counts_error is None
    assert look.canary == ArmCounts(requests=34, errors=4, slow=4)
    assert look.primary == ArmCounts(requests=100, errors=0, slow=0)


def test_counts_are_all_or_nothing_and_report_the_first_error_in_reading_order() -> None:
    request = _request(counts=True, slow_threshold_ms=300)
    failing = {
        REQUESTS_BASELINE: [],
        REQUESTS_WINDOW: ProviderUnavailable("prometheus at x is unreachable", "requests window"),
        SLOW_BASELINE: QueryRejected("slow broke", "slow baseline"),
        SLOW_WINDOW: [],
    }
    look = assemble(request, plan_look(request).answers(failing))
    assert look.canary == ArmCounts() and look.primary == ArmCounts()
    assert look.counts_error == "prometheus at x is unreachable (query: requests window)"
    # The canary served requests but its histogram has no le=500 bucket: an error, never "zero slow requests".
    answers = {REQUESTS_BASELINE: [], REQUESTS_WINDOW: [_series(TARGET, 10)], SLOW_BASELINE: [], SLOW_WINDOW: []}
    look = assemble(request, plan_look(request).answers(answers))
    assert look.counts_error is not None and look.counts_error.startswith(
        "no istio_request_duration_milliseconds_bucket with le=500 for the canary arm ('podinfo')"
    )
    assert "(query: istio_request_duration_milliseconds_bucket{" in look.counts_error


def test_threshold_and_compared_answers_and_errors() -> None:
    request = _request(thresholds={"a": "vector(1)", "b": "bad("}, compared={"cpu": ("c", "p"), "mem": ("c", "p")})
    answers = {
        threshold_key("a"): QueryResult("vector(1)", None, "empty result"),
        threshold_key("b"): QueryRejected("rejected the query (HTTP 400): parse error", "bad("),
        compared_key("cpu", "canary"): QueryResult("c", 1.5),
        compared_key("cpu", "primary"): QueryResult("p", 1.0),
        compared_key("mem", "canary"): ProviderUnavailable("down", "c"),
        compared_key("mem", "primary"): ProviderUnavailable("down", "p"),
    }
    look = assemble(request, plan_look(request).answers(answers))
    assert look.thresholds["a"].value is None and look.thresholds["a"].error is None  # no data is not an error
    assert look.thresholds["b"].error == "rejected the query (HTTP 400): parse error (query: bad()"
    assert (look.compared["cpu"].canary, look.compared["cpu"].primary) == (1.5, 1.0)
    assert look.compared["mem"].error == "canary: down (query: c); primary: down (query: p)"
    assert not look.counts_error and look.canary == ArmCounts()
    # A query nobody answered is an error too, never a silent pass.
    look = assemble(request, {})
    assert look.thresholds["a"].error == "no answer for threshold/a"


class _Recorded:
    """A provider (blocking and awaitable) answering from a table and recording what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float | None]] = []

    def _answer(self, query: str, at: float | None) -> Any:
        self.asked.append((query, at))
        if query == "broken":
            raise QueryRejected("no", query)
        if "[" in query or query.startswith("last_over_time"):
            return [_series(TARGET, 10.0 if query.startswith("last") else 25.0)]
        return QueryResult(query, 42.0)

    def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        result: QueryResult = self._answer(query, at)
        return result

    def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        result: list[Series] = self._answer(query, at)
        return result

    def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        raise AssertionError("looks do not read vectors")

    def is_online(self) -> bool:
        return True


class _AsyncRecorded(_Recorded):
    async def run_query(self, query: str, *, at: float | None = None) -> QueryResult:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().run_query(query, at=at)

    async def run_series(self, query: str, *, at: float | None = None) -> list[Series]:  # type: ignore[override]
        await asyncio.sleep(0)
        return super().run_series(query, at=at)

    async def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:  # type: ignore[override]
        raise AssertionError("looks do not read vectors")

    async def is_online(self) -> bool:  # type: ignore[override]
        return True

    async def aclose(self) -> None:
        pass


async def test_the_blocking_and_the_event_loop_collectors_send_the_same_queries_and_build_the_same_look() -> None:
    request = _request(thresholds={"ok": "vector(42)", "bad": "broken"}, compared={"x": ("a", "b")}, counts=True)
    blocking, awaiting = _Recorded(), _AsyncRecorded()
    look = collect_look(blocking, request)
    assert await collect_look_async(awaiting, request) == look
    assert sorted(blocking.asked) == sorted(awaiting.asked) and len(blocking.asked) == 6
    assert look.thresholds["ok"].value == 42 and look.thresholds["bad"].error == "no (query: broken)"
    assert look.canary.requests == 15 and look.counts_error is None


# --- a Canary's metrics as look requests --------------------------------------------------------------------------

IDENTITY = CanaryIdentity("web", NS, TARGET, "web-svc")
DEFAULT: ProviderKey = ("http://prometheus:9090", "", "", False)
TEAM: ProviderKey = ("http://team-prometheus:9090", NS, "prom", False)


def test_a_canarys_metrics_render_into_one_request_per_provider() -> None:
    spec = make_spec(
        {
            "interval": "1m",
            "threshold": 2,
            "stepWeight": 20,
            "comparison": {"minRequests": 10, "errorRate": {"maxRelativeIncrease": 0.1}},
            "metrics": [
                {"name": "request-success-rate", "thresholdRange": {"min": 99}},
                {
                    "name": "inline",
                    "query": 'up{namespace="{{ namespace }}", job="{{ target }}"}',
                    "thresholdRange": {"min": 1},
                },
                {"name": "team", "templateRef": {"name": "t"}, "thresholdRange": {"max": 5}},
                {
                    "name": "latency",
                    "templateRef": {"name": "l"},
                    "comparison": {"method": "mann-whitney", "direction": "increase"},
                },
                {"name": "missing", "templateRef": {"name": "gone"}, "thresholdRange": {"max": 1}},
                {"name": "broken", "templateRef": {"name": "b"}, "thresholdRange": {"max": 1}},
            ],
        }
    )
    templates = {"t": (TEAM, 'errors{namespace="{{ namespace }}", svc="{{ service }}"}'),
                 "l": (DEFAULT, 'p99{namespace="{{ namespace }}", svc="{{ service }}"}'),
                 "b": (DEFAULT, "{{ variables.nope }}")}  # fmt: skip

    def lookup(metric: MetricSpec) -> tuple[ProviderKey, str]:
        assert metric.template_ref is not None
        if metric.template_ref.name not in templates:
            raise ValueError(f"MetricTemplate {NS}/{metric.template_ref.name} not found")
        return templates[metric.template_ref.name]

    rendered = render_canary_looks(IDENTITY, spec, policy_from_spec(spec), (START, END), lookup, DEFAULT)
    assert rendered.failed["missing"] == "MetricTemplate shop/gone not found"
    assert rendered.failed["broken"].startswith("MetricTemplate query: ")
    default, team = rendered.requests[DEFAULT], rendered.requests[TEAM]
    assert default.thresholds == {
        "request-success-rate": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE, 60.0),
        "inline": 'up{namespace="shop", job="podinfo"}',
    }
    assert default.compared == {
        "latency": ('p99{namespace="shop", svc="web-svc-canary"}', 'p99{namespace="shop", svc="web-svc-primary"}')
    }
    assert default.counts and (default.start, default.end) == (START, END) and default.service == "web-svc"
    assert team.thresholds == {"team": 'errors{namespace="shop", svc="web-svc"}'}
    assert not team.counts and not team.compared
