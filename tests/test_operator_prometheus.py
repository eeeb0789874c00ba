"""End to end with a REAL Prometheus (Debian's): the operator's looks read backfilled Istio series and decide.

The series are written with ``promtool tsdb create-blocks-from openmetrics`` before Prometheus starts, every 0.5 s
from five minutes ago to five minutes ahead, at constant rates — so every look the operator takes while the test
runs sees known numbers, through the real PromQL (``increase`` over the look's window, the built-in success rate)
and the real HTTP client. ``podinfo``'s canary is as healthy as its primary and is promoted; ``broken``'s canary
answers 20 % 5xx and is rolled back by the comparison.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    History,
    canary,
    deployment,
    events_of,
    image_of,
    new_image,
    operator,
    test_config,
    wait_for,
    wait_phase,
)

from e2e.sandbox.prometheus import PrometheusUnavailable, RunningPrometheus, ensure_installed

STEP_S = 0.5
SPAN_S = 300
# workload → (2xx per second, 5xx per second)
RATES = {
    "podinfo": (20.0, 0.1),
    "podinfo-primary": (80.0, 0.4),
    "broken": (16.0, 4.0),
    "broken-primary": (80.0, 0.4),
}


def openmetrics(now: float) -> str:
    lines = ["# HELP istio_requests Requests.", "# TYPE istio_requests counter"]
    start = int(now) - SPAN_S
    for workload, (ok, errors) in RATES.items():
        for code, rate in (("200", ok), ("503", errors)):
            labels = (
                f'{{reporter="destination",destination_workload="{workload}",'
                f'destination_workload_namespace="{NS}",response_code="{code}"}}'
            )
            for index in range(int(2 * SPAN_S / STEP_S) + 1):
                offset = index * STEP_S
                lines.append(f"istio_requests_total{labels} {1000 + rate * offset:.3f} {start + offset:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def live_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        ensure_installed()
    except PrometheusUnavailable as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("live-prometheus")
    data = root / "data"
    data.mkdir()
    source = root / "series.om"
    source.write_text(openmetrics(time.time()))
    done = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    with RunningPrometheus(Path(root), "global:\n  scrape_interval: 1m\n", data_dir=data) as prometheus:
        yield prometheus.url


@pytest.mark.timeout(60)
async def test_real_prometheus_promotes_the_healthy_canary_and_rolls_back_the_broken_one(
    emulator: CoalmineEmulator, live_prometheus: str
) -> None:
    history = History.install(emulator)
    analysis: dict[str, Any] = {
        "interval": "2s",
        "stepWeight": 50,
        "maxWeight": 50,
        "threshold": 2,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 95}, "interval": "1m"}],
        "comparison": {"errorRate": {"maxRelativeIncrease": 0.5}, "minRequests": 20},
    }
    for name in ("podinfo", "broken"):
        emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
        emulator.create_object(CANARIES, canary(name, analysis=analysis), NS)
    config = test_config(metrics_server=live_prometheus, query_timeout_s=5.0)
    async with operator(emulator, config):
        for name in ("podinfo", "broken"):
            await wait_phase(emulator, name, "Initialized")
            new_image(emulator, name, f"{name}:2")
        good = await wait_phase(emulator, "podinfo", "Succeeded", timeout=40)
        bad = await wait_phase(emulator, "broken", "Failed", timeout=20)
        # Events are announced by the tick after the one that decided them (the outbox): wait for that tick.
        await wait_for("the rollback's Event", lambda: "ComparisonRejected" in dict(events_of(emulator, "broken")))

    assert history.weights("podinfo") == [(100, 0), (50, 50), (100, 0)]
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:2"
    metrics = {m["metric"]: m for m in good["evidence"]["metrics"]}
    # The look read real numbers: 20 req/s on the canary over a 2 s window, 99.5 % of them fine.
    assert metrics["request-success-rate"]["value"] == pytest.approx(100 * 20 / 20.1, abs=0.05)
    assert 20 <= metrics["error-rate"]["canaryRequests"] <= 120
    assert metrics["error-rate"]["outcome"] == "pass"

    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "broken-primary")) == "broken:1"
    assert bad["evidence"]["outcome"] == "rejected"
    rejected = [note for reason, note in events_of(emulator, "broken") if reason == "ComparisonRejected"]
    assert rejected and "5xx rate" in rejected[0]
