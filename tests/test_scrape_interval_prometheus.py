"""A REAL Prometheus scraping a REAL exporter every 30 s, and a Canary whose looks are 30 s apart.

This is the setup of the common Prometheus operator stacks (30 s scrapes) with our own demo Canary
(``interval: 30s``): most 30 s windows hold one sample of each series, so a per-window ``increase()`` returns
nothing and every look reads "no canary requests". The looks must instead count, per series, what was scraped
since the previous look: counter resets, pods appearing and pods going away included.

The exporter is a plain ``http.server`` on 127.0.0.1 serving Istio-shaped series (``istio_requests_total`` with
``destination_workload``, ``response_code``, ``reporter="destination"``, plus the duration histogram). Its counters
move only when Prometheus scrapes it, so every scrape brings a known number of new requests, and the looks are taken
live at instants half-way between two scrapes: each look holds exactly one scrape, whatever lag (< 15 s) the
counting allows itself. The looks go through the operator's ``build_look`` and are then replayed through
``coalmine judge``'s look source, which must read the same counts. Wall time: about 1.5–2 minutes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from fakekube import FakeKube

from analysis.judge import judge
from analysis.samples import ArmCounts, Look
from analysis.verdict import Outcome
from controller.backtest import CanaryIdentity, PrometheusLooks, plan_looks
from controller.kube.api import KubeApi
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.looks import build_look
from controller.providers import ProviderConfig
from controller.providers.prometheus import PrometheusProvider
from controller.rollout.judging import policy_from_spec
from controller.rollout.spec import parse_canary_spec
from e2e.sandbox.prometheus import PrometheusUnavailable, RunningPrometheus, ensure_installed

pytestmark = [pytest.mark.prometheus, pytest.mark.timeout(180)]

NS = "shop"
SCRAPE_S = 30.0
LE = ("100", "250", "500", "+Inf")
# Per pod and scrape: (requests, 5xx, requests ≤ 250 ms). The broken canary doubles the primary's 5xx rate.
STEP = {
    "podinfo": (1000, 100, 900),
    "podinfo-primary": (1000, 50, 900),
    "healthy": (1000, 50, 900),
    "healthy-primary": (1000, 50, 900),
}
# What changes at each scrape: pods (workload, pod) born, restarted (counter reset) and gone.
BORN = {
    0: [
        ("podinfo", "a"),
        ("podinfo-primary", "p1"),
        ("podinfo-primary", "p2"),
        ("healthy", "h"),
        ("healthy-primary", "hp"),
    ],
    1: [("podinfo", "b")],
}
RESTARTED = {2: [("podinfo", "a"), ("healthy", "h")]}
GONE = {2: [("podinfo-primary", "p2")]}
LOOKS = 3


@dataclass
class Exporter:
    """Counters that grow by ``STEP`` per live pod at each scrape; ``scrapes`` logs when and what was new."""

    pods: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # → [requests, 5xx, fast]
    scrapes: list[tuple[float, dict[str, ArmCounts]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scrape(self) -> str:
        with self.lock:
            index = len(self.scrapes)
            for pod in GONE.get(index, []):
                del self.pods[pod]
            for pod in RESTARTED.get(index, []):
                self.pods[pod] = [0, 0, 0]
            for pod in BORN.get(index, []):
                self.pods[pod] = [0, 0, 0]
            new: dict[str, ArmCounts] = {}
            for (workload, _), counters in self.pods.items():
                requests, errors, fast = STEP[workload]
                counters[0] += requests
                counters[1] += errors
                counters[2] += fast
                seen = new.get(workload, ArmCounts())
                new[workload] = ArmCounts(seen.requests + requests, seen.errors + errors, seen.slow + requests - fast)
            self.scrapes.append((time.time(), new))
            return self._text()

    def _text(self) -> str:
        lines = ["# TYPE istio_requests_total counter"]
        for (workload, pod), (requests, errors, _) in sorted(self.pods.items()):
            for code, value in (("200", requests - errors), ("503", errors)):
                for reporter in ("destination", "source"):  # the client-side report must be ignored
                    lines.append(
                        f'istio_requests_total{{reporter="{reporter}",destination_workload="{workload}",'
                        f'destination_workload_namespace="{NS}",pod="{pod}",response_code="{code}"}} '
                        f"{value * (1 if reporter == 'destination' else 7)}"
                    )
        lines.append("# TYPE istio_request_duration_milliseconds histogram")
        for (workload, pod), (requests, _, fast) in sorted(self.pods.items()):
            labels = f'reporter="destination",destination_workload="{workload}",destination_workload_namespace="{NS}"'
            for le in LE:
                value = fast // 2 if le == "100" else fast if le == "250" else requests
                lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},pod="{pod}",le="{le}"}} {value}')
            lines.append(f'istio_request_duration_milliseconds_sum{{{labels},pod="{pod}"}} {requests * 120}')
            lines.append(f'istio_request_duration_milliseconds_count{{{labels},pod="{pod}"}} {requests}')
        return "\n".join(lines) + "\n"

    def scraped_between(self, start: float, end: float) -> dict[str, ArmCounts]:
        found = [new for at, new in self.scrapes if start < at <= end]
        assert len(found) == 1, f"expected one scrape in ({start}, {end}], got {len(found)}"
        return found[0]


@pytest.fixture
def exporter() -> Iterator[tuple[Exporter, int]]:
    state = Exporter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.scrape().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def scraping_prometheus(tmp_path: Path, exporter: tuple[Exporter, int]) -> Iterator[tuple[str, Exporter]]:
    try:
        ensure_installed(("prometheus",))
    except PrometheusUnavailable as exc:
        pytest.skip(str(exc))
    state, port = exporter
    config = (
        f"global:\n  scrape_interval: {SCRAPE_S:g}s\n  scrape_timeout: 10s\n"
        "scrape_configs:\n  - job_name: istio\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    with RunningPrometheus(tmp_path, config) as prometheus:
        yield prometheus.url, state


def _canary(name: str) -> dict[str, object]:
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            "analysis": {
                "interval": "30s",
                "threshold": 5,
                "stepWeight": 20,
                "maxWeight": 50,
                "comparison": {
                    "minRequests": 100,
                    "errorRate": {"maxRelativeIncrease": 0.25},
                    "latency": {"slowThresholdMs": 250, "maxRelativeIncrease": 0.25},
                },
            },
        },
    }


def _sleep_until(instant: float) -> None:
    time.sleep(max(0.0, instant - time.time()))


def _counts(look: Look) -> tuple[ArmCounts, ArmCounts]:
    return look.canary, look.primary


def test_30s_looks_on_30s_scrapes_count_each_scrape_once_and_the_judge_decides(
    scraping_prometheus: tuple[str, Exporter],
) -> None:
    url, state = scraping_prometheus
    deadline = time.time() + SCRAPE_S + 15
    while not state.scrapes:
        assert time.time() < deadline, "Prometheus never scraped the exporter"
        time.sleep(0.2)
    first = state.scrapes[0][0]
    # Look boundaries half-way between scrapes; look i holds scrape i.
    ends = [first + SCRAPE_S / 2 + SCRAPE_S * index for index in range(LOOKS)]
    windows = [(end - SCRAPE_S, end) for end in ends]

    async def operator_look(name: str, spec: Any, window: tuple[float, float]) -> Look:
        ctx = OperatorContext(config=OperatorConfig(metrics_server=url), api=cast(KubeApi, FakeKube()))
        try:
            return await build_look(ctx, name, NS, spec, policy_from_spec(spec), window)
        finally:
            await ctx.aclose()

    specs = {name: parse_canary_spec(_canary(name)["spec"]) for name in ("podinfo", "healthy")}  # type: ignore[arg-type]
    live: dict[str, list[Look]] = {name: [] for name in specs}
    for window in windows:
        _sleep_until(window[1])
        for name, spec in specs.items():
            live[name].append(asyncio.run(operator_look(name, spec, window)))

    for name, spec in specs.items():
        identity = CanaryIdentity(name, NS, name, name)
        replay = PrometheusLooks(
            PrometheusProvider.from_config(ProviderConfig(url)), identity, plan_looks(spec, identity, {})
        )
        for index, (window, look) in enumerate(zip(windows, live[name], strict=True)):
            scraped = state.scraped_between(*window)
            expected = (scraped[name], scraped[name + "-primary"])
            assert look.counts_error is None, look.counts_error
            assert _counts(look) == expected, f"{name} look {index} over {window}"
            assert _counts(replay.look(window)) == expected, f"{name} look {index} replayed by coalmine judge"

    verdicts: dict[str, list[Outcome]] = {}
    for name, spec in specs.items():
        policy, stored = policy_from_spec(spec), None
        verdicts[name] = []
        for look in live[name]:
            verdict = judge(policy, look, stored)
            stored = dict(verdict.state)
            verdicts[name].append(verdict.outcome)
    assert Outcome.REJECTED in verdicts["podinfo"], verdicts
    assert Outcome.NO_DATA not in verdicts["healthy"] and Outcome.REJECTED not in verdicts["healthy"], verdicts
