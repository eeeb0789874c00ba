"""The operator's own metrics, read the way Prometheus reads them: over HTTP from a started endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.metrics import MetricsEndpoint, OperatorMetrics, status_code

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock: Clock) -> OperatorMetrics:
    return OperatorMetrics(version="1.2.3", clock=clock)


@pytest.fixture
def endpoint(metrics: OperatorMetrics) -> Iterator[MetricsEndpoint]:
    served = metrics.serve(0, addr="127.0.0.1")
    yield served
    served.close()


def scrape(endpoint: MetricsEndpoint) -> Samples:
    response = httpx.get(f"http://127.0.0.1:{endpoint.port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def names(samples: Samples, metric: str) -> list[dict[str, str]]:
    """The label sets of every sample of ``metric``."""
    return [dict(labels) for (name, labels) in samples if name == metric]


def status(phase: str, weight: int = 0, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "canaryWeight": weight, "failedChecks": 0, "noDataChecks": 0, **extra}


EVIDENCE = {
    "outcome": "pass",
    "metrics": [
        {"metric": "request-success-rate", "kind": "threshold", "outcome": "pass", "value": 99.5},
        {
            "metric": "error-rate",
            "kind": "errorRate",
            "outcome": "pass",
            "pValue": 0.4,
            "logEValue": 0.9162907318741551,
        },
    ],
}
OBJ = {"name": "podinfo", "namespace": "test", "kind": "Canary"}


def test_a_successful_rollout_as_prometheus_scrapes_it(
    metrics: OperatorMetrics, endpoint: MetricsEndpoint, clock: Clock
) -> None:
    metrics.observe_status("Canary", "podinfo", "test", status("Initializing"), workload="podinfo-app")
    metrics.observe_status("Canary", "podinfo", "test", status("Initialized"), workload="podinfo-app")
    clock.now += 5
    metrics.observe_status(
        "Canary", "podinfo", "test", status("Progressing", 10, evidence=EVIDENCE), workload="podinfo-app"
    )

    during = scrape(endpoint)
    assert value(during, "coalmine_info", version="1.2.3") == 1
    assert value(during, "coalmine_canary_status", **OBJ) == 0
    assert value(during, "coalmine_canary_phase", **OBJ, phase="Progressing") == 1
    assert names(during, "coalmine_canary_phase") == [{**OBJ, "phase": "Progressing"}], "one phase series per object"
    assert value(during, "coalmine_canary_weight", workload="podinfo-app", namespace="test") == 10
    assert value(during, "coalmine_canary_weight", workload="podinfo-app-primary", namespace="test") == 90
    assert (
        value(
            during, "coalmine_canary_metric_analysis", name="podinfo", namespace="test", metric="request-success-rate"
        )
        == 99.5
    )
    e_value = value(during, "coalmine_canary_evidence_e_value", **OBJ, metric="error-rate")
    assert e_value == pytest.approx(2.5)
    assert value(during, "coalmine_canary_evidence_p_value", **OBJ, metric="error-rate") == 0.4
    assert value(during, "coalmine_canary_total", namespace="test") == 1

    clock.now += 600
    metrics.observe_status("Canary", "podinfo", "test", status("Promoting", 0), workload="podinfo-app")
    clock.now += 30
    metrics.observe_status("Canary", "podinfo", "test", status("Succeeded", 0), workload="podinfo-app")

    after = scrape(endpoint)
    assert value(after, "coalmine_canary_status", **OBJ) == 1
    assert value(after, "coalmine_canary_weight", workload="podinfo-app-primary", namespace="test") == 100
    assert value(after, "coalmine_canary_successes_total", **OBJ) == 1
    assert value(after, "coalmine_canary_failures_total", **OBJ) is None
    outcome = {"namespace": "test", "kind": "Canary", "outcome": "succeeded"}
    assert value(after, "coalmine_canary_duration_seconds_count", **outcome) == 1
    assert value(after, "coalmine_canary_duration_seconds_sum", **outcome) == 630
    assert not names(after, "coalmine_canary_evidence_e_value"), "the new status carries no evidence: series dropped"
    assert not names(after, "coalmine_canary_metric_analysis")


def test_a_failed_rollout_reads_2_and_counts_once(metrics: OperatorMetrics, endpoint: MetricsEndpoint) -> None:
    metrics.observe_status("Canary", "podinfo", "test", status("Progressing", 20))
    failed = status("Failed", 0, failedChecks=3, noDataChecks=1)
    metrics.observe_status("Canary", "podinfo", "test", failed)
    metrics.observe_status("Canary", "podinfo", "test", failed)  # the next tick reads the same status again

    samples = scrape(endpoint)
    assert value(samples, "coalmine_canary_status", **OBJ) == 2
    assert value(samples, "coalmine_canary_failures_total", **OBJ) == 1
    assert value(samples, "coalmine_canary_failed_checks", **OBJ) == 3
    assert value(samples, "coalmine_canary_no_data_checks", **OBJ) == 1
    # The rollout began before this process first saw it: its duration is unknown, so nothing is observed.
    assert (
        value(samples, "coalmine_canary_duration_seconds_count", namespace="test", kind="Canary", outcome="failed")
        is None
    )


def test_a_restarted_operator_does_not_recount_an_old_failure(metrics: OperatorMetrics) -> None:
    metrics.observe_status("Canary", "podinfo", "test", status("Failed"))
    text = metrics.render()
    assert 'coalmine_canary_status{kind="Canary",name="podinfo",namespace="test"} 2.0' in text
    assert "coalmine_canary_failures_total{" not in text


def test_forget_removes_only_the_deleted_objects_series(metrics: OperatorMetrics, endpoint: MetricsEndpoint) -> None:
    metrics.observe_status("Canary", "podinfo", "test", status("Progressing", 30, evidence=EVIDENCE))
    metrics.observe_status("BlueGreen", "shop", "test", status("Succeeded"))
    metrics.forget("Canary", "podinfo", "test")
    metrics.forget("Canary", "podinfo", "test")  # a second delete event is harmless

    samples = scrape(endpoint)
    leftovers = [key for key in samples if any(v.startswith("podinfo") for _, v in key[1])]
    assert leftovers == []
    assert value(samples, "coalmine_canary_status", name="shop", namespace="test", kind="BlueGreen") == 1
    assert value(samples, "coalmine_canary_total", namespace="test") == 1


def test_series_do_not_grow_with_revisions(metrics: OperatorMetrics) -> None:
    """Low cardinality: twenty releases of one Canary leave as many series as one release."""

    def release(n: int) -> None:
        spec_hash = f"{n:08x}"
        for phase in ("Progressing", "Promoting", "Succeeded"):
            metrics.observe_status(
                "Canary", "podinfo", "test", status(phase, lastAppliedSpec=spec_hash, evidence=EVIDENCE)
            )

    release(0)
    release(1)  # the first release this process sees begin creates the duration histogram
    first = len(metrics.render().splitlines())
    for n in range(2, 20):
        release(n)
    text = metrics.render()
    assert len(text.splitlines()) == first
    assert "00000013" not in text


def test_an_overwhelming_e_value_stays_a_number(metrics: OperatorMetrics) -> None:
    evidence = {"metrics": [{"metric": "latency", "logEValue": 5000.0, "pValue": 0.0}]}
    metrics.observe_status("Canary", "podinfo", "test", status("Progressing", 10, evidence=evidence))
    line = next(x for x in metrics.render().splitlines() if x.startswith("coalmine_canary_evidence_e_value{"))
    assert float(line.rsplit(" ", 1)[1]) > 1e300


def test_loop_latencies_and_failed_notifications(metrics: OperatorMetrics, endpoint: MetricsEndpoint) -> None:
    metrics.observe_tick(0.02)
    metrics.observe_tick(3.0)
    metrics.observe_reconcile(0.2, kind="BlueGreen")
    metrics.notification_failed("slack")
    metrics.notification_failed("slack")

    samples = scrape(endpoint)
    assert value(samples, "coalmine_tick_duration_seconds_count") == 2
    assert value(samples, "coalmine_tick_duration_seconds_bucket", le="0.025") == 1
    assert value(samples, "coalmine_tick_duration_seconds_bucket", le="+Inf") == 2
    assert value(samples, "coalmine_reconcile_duration_seconds_count", kind="BlueGreen") == 1
    assert value(samples, "coalmine_notifications_failed_total", provider="slack") == 2


def test_two_operators_in_one_process_do_not_share_series() -> None:
    one, two = OperatorMetrics(version="a"), OperatorMetrics(version="b")
    one.observe_status("Canary", "x", "ns", status("Progressing", 10))
    assert "coalmine_canary_status{" not in two.render()


@pytest.mark.parametrize(
    ("phase", "code"),
    [
        ("Initializing", 0),
        ("Waiting", 0),
        ("Progressing", 0),
        ("WaitingPromotion", 0),
        ("Promoting", 0),
        ("Finalising", 0),
        ("Terminating", 0),
        ("Initialized", 1),
        ("Succeeded", 1),
        ("Terminated", 1),
        ("Failed", 2),
    ],
)
def test_status_codes_follow_flagger(phase: str, code: int) -> None:
    assert status_code(phase) == code


def test_an_unchanged_status_changes_nothing_and_the_next_change_is_shown(
    metrics: OperatorMetrics, endpoint: MetricsEndpoint
) -> None:
    """Most ticks observe the same status again (the operator skips those); a change after them still shows, and
    an object forgotten and seen again gets its series back."""
    for _ in range(3):
        metrics.observe_status("Canary", "podinfo", "test", status("Progressing", 30, evidence=EVIDENCE))
    metrics.observe_status("Canary", "podinfo", "test", status("Progressing", 40, failedChecks=1, evidence=EVIDENCE))
    samples = scrape(endpoint)
    assert value(samples, "coalmine_canary_weight", workload="podinfo", namespace="test") == 40
    assert value(samples, "coalmine_canary_weight", workload="podinfo-primary", namespace="test") == 60
    assert value(samples, "coalmine_canary_failed_checks", **OBJ) == 1

    metrics.forget("Canary", "podinfo", "test")
    metrics.observe_status("Canary", "podinfo", "test", status("Progressing", 40, failedChecks=1, evidence=EVIDENCE))
    samples = scrape(endpoint)
    assert value(samples, "coalmine_canary_weight", workload="podinfo", namespace="test") == 40
    assert value(samples, "coalmine_canary_status", **OBJ) == 0
    assert value(samples, "coalmine_canary_total", namespace="test") == 1
