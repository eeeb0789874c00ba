"""``coalmine judge`` (backtesting) against a real Prometheus holding recorded Istio series.

Two workloads are backfilled for the same hour: ``healthy`` (canary and primary fail 1 % of requests) and
``regressed`` (the canary fails 5 %), with Poisson noise per 15 s scrape. Replaying the hour must promote the first
and roll back the second with the comparison's evidence, exactly as the operator would have decided live.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from controller.backtest import BacktestError, CanaryIdentity, parse_instant, plan_looks, templates_from_documents
from controller.cli.main import app
from controller.rollout.validation import parse_valid_canary
from e2e.sandbox.prometheus import PrometheusUnavailable, RunningPrometheus, ensure_installed

if TYPE_CHECKING:
    from prometheus_server import AuthProxy, RecordedPrometheus

pytest_plugins = ["prometheus_server"]

NAMESPACE = "shop"
SCRAPE_S = 15
HOUR_S = 3600
CANARY_RPS, PRIMARY_RPS = 3.0, 7.0
BASE_ERRORS = 0.01

CANARY_YAML = """
apiVersion: coalmine.dev/v1alpha1
kind: Canary
metadata: {{name: {target}, namespace: {namespace}}}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}
  service: {{port: 80}}
  analysis:
    interval: 1m
    threshold: 3
    stepWeight: 20
    maxWeight: 60
    comparison:
      alpha: 0.01
      minRequests: 100
      errorRate: {{maxRelativeIncrease: 0.1}}
    metrics:
      - name: request-success-rate
        interval: 1m
        thresholdRange: {{min: 90}}
{extra}
"""

TEMPLATE_METRIC = """      - name: error-percentage
        interval: 1m
        templateRef: {name: error-percentage}
        thresholdRange: {max: 50}
"""

TEMPLATE_YAML = """
apiVersion: coalmine.dev/v1alpha1
kind: MetricTemplate
metadata: {name: error-percentage, namespace: shop}
spec:
  provider: {type: prometheus, address: http://unused:9090}
  query: |
    100 * sum(rate(istio_requests_total{destination_workload_namespace="{{ namespace }}",
      destination_workload="{{ target }}", response_code=~"5.*"}[{{ interval }}]))
    / sum(rate(istio_requests_total{destination_workload_namespace="{{ namespace }}",
      destination_workload="{{ target }}"}[{{ interval }}]))
"""


@dataclass(frozen=True)
class Recorded:
    url: str
    start: float  # first sample; the backtests start 10 minutes later, so every rate window has data


def _counter_lines(workload: str, code: str, rate: float, start: int, rng: np.random.Generator) -> list[str]:
    labels = (
        f'{{reporter="destination",destination_workload="{workload}",'
        f'destination_workload_namespace="{NAMESPACE}",response_code="{code}"}}'
    )
    increments = rng.poisson(rate * SCRAPE_S, HOUR_S // SCRAPE_S)
    values = np.concatenate(([1000], 1000 + np.cumsum(increments)))
    return [f"istio_requests_total{labels} {value} {start + i * SCRAPE_S}" for i, value in enumerate(values)]


def openmetrics(start: int) -> str:
    rng = np.random.default_rng(7)
    lines = ["# HELP istio_requests Requests.", "# TYPE istio_requests counter"]
    for target, canary_errors in (("healthy", BASE_ERRORS), ("regressed", 5 * BASE_ERRORS)):
        for workload, rps, errors in (
            (target, CANARY_RPS, canary_errors),
            (f"{target}-primary", PRIMARY_RPS, BASE_ERRORS),
        ):
            lines += _counter_lines(workload, "200", rps * (1 - errors), start, rng)
            lines += _counter_lines(workload, "503", rps * errors, start, rng)
    return "\n".join([*lines, "# EOF"]) + "\n"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    try:
        ensure_installed()
    except PrometheusUnavailable as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("backtest")
    data = root / "data"
    data.mkdir()
    start = (int(time.time()) // 3600 - 3) * 3600
    source = root / "series.om"
    source.write_text(openmetrics(start))
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    with RunningPrometheus(root, "global:\n  scrape_interval: 1m\n", data_dir=data) as prometheus:
        yield Recorded(prometheus.url, float(start))


def _canary(tmp_path: Path, target: str, extra: str = "") -> str:
    path = tmp_path / f"{target}.yaml"
    path.write_text(CANARY_YAML.format(target=target, namespace=NAMESPACE, extra=extra))
    return str(path)


def _judge(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["judge", *args])
    return result.exit_code, result.output


def _window(recorded: Recorded, minutes: int = 30) -> list[str]:
    start = recorded.start + 600
    return ["--start", str(int(start)), "--end", str(int(start + minutes * 60))]


@pytest.mark.prometheus
def test_a_healthy_window_is_promoted_after_the_last_step(recorded: Recorded, tmp_path: Path) -> None:
    code, output = _judge("-f", _canary(tmp_path, "healthy"), "--prometheus", recorded.url, *_window(recorded))
    assert code == 0, output
    assert "Outcome: promoted after 4m" in output  # pre-rollout look, then 20 %, 40 %, 60 %, then promotion
    assert "Advance healthy canary weight 60" in output
    # every look shows its evidence: the threshold value and the comparison's estimate, p-value and requests
    assert "look pass: request-success-rate=" in output and "error-rate θ̂=" in output
    assert "rolledBack" not in output


@pytest.mark.prometheus
def test_a_regressed_window_is_rolled_back_by_the_comparison_with_its_evidence(
    recorded: Recorded, tmp_path: Path
) -> None:
    code, output = _judge(
        "-f", _canary(tmp_path, "regressed"), "--prometheus", recorded.url, *_window(recorded), "--json"
    )
    assert code == 0, output
    report = json.loads(output)
    assert report["result"] == "rolledBack"
    assert "ComparisonRejected" in report["reason"] and "canary 5xx rate" in report["reason"]
    assert report["decisionSeconds"] <= 5 * 60  # caught within a few looks of 180 canary requests
    assert report["decisionTime"].endswith("Z") and report["canary"] == "shop/regressed"
    looks = [row for row in report["timeline"] if "verdict" in row]
    assert looks, report["timeline"]
    last = looks[-1]["verdict"]
    assert last["outcome"] == "rejected"
    error_rate = next(m for m in last["metrics"] if m["metric"] == "error-rate")
    assert error_rate["estimate"] > 2 and error_rate["pValue"] < 0.01
    assert error_rate["canaryRequests"] > 100


@pytest.mark.prometheus
def test_metric_templates_are_rendered_and_queried(recorded: Recorded, tmp_path: Path) -> None:
    templates = tmp_path / "templates.yaml"
    templates.write_text(TEMPLATE_YAML)
    canary = _canary(tmp_path, "regressed", TEMPLATE_METRIC)
    code, output = _judge("-f", canary, "--prometheus", recorded.url, *_window(recorded), "--templates", str(templates))
    assert code == 0, output
    # about 5 % of the regressed canary's requests fail: the template's value is read from Prometheus
    values = [float(part.split("=")[1].rstrip(";")) for part in output.split() if part.startswith("error-percentage=")]
    assert values and all(1 < value < 15 for value in values), output

    code, output = _judge("-f", canary, "--prometheus", recorded.url, *_window(recorded))
    assert code == 1
    assert "MetricTemplate shop/error-percentage" in output and "--templates" in output


@pytest.mark.prometheus
def test_a_window_without_data_never_promotes(recorded: Recorded, tmp_path: Path) -> None:
    code, output = _judge("-f", _canary(tmp_path, "nobody"), "--prometheus", recorded.url, *_window(recorded, 8))
    assert code == 0, output
    assert "look noData" in output
    assert "Outcome: undecided" in output or "Outcome: rolledBack" in output


@pytest.mark.prometheus
def test_a_bearer_token_file_authenticates(
    recorded_prometheus: RecordedPrometheus, auth_proxy: AuthProxy, tmp_path: Path
) -> None:
    canary = _canary(tmp_path, recorded_prometheus.target).replace("namespace: shop", f"namespace: {NAMESPACE}")
    window = ["--start", str(int(recorded_prometheus.start + 600)), "--end", str(int(recorded_prometheus.end))]
    code, output = _judge("-f", canary, "--prometheus", auth_proxy.url, *window)
    assert code == 1 and "does not answer (or refuses the credentials)" in output
    token = tmp_path / "token"
    token.write_text(auth_proxy.token + "\n")
    code, output = _judge("-f", canary, "--prometheus", auth_proxy.url, *window, "--bearer-token-file", str(token))
    assert code == 0, output
    assert "Outcome: rolledBack" in output  # the recorded canary fails 9 % of requests, its primary 2.4 %


def test_unreachable_prometheus_is_an_error(tmp_path: Path, unreachable_address: str) -> None:
    code, output = _judge("-f", _canary(tmp_path, "healthy"), "--prometheus", unreachable_address, "--start", "-1h")
    assert code == 1
    assert unreachable_address in output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--start", "yesterday"], "--start"),
        (["--start", "2024-05-01T12:00:00"], "--start"),  # no time zone
        (["--start", "-1h", "--end", "-2h"], "--end"),
        (["--start", "-1h", "--step", "soon"], "--step"),
        (["--start", "-1h", "--bearer-token-file", "/nonexistent/token"], "--bearer-token-file"),
        (["--start", "-1h", "--prometheus", "prom:9090"], "--prometheus"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    base = ["-f", _canary(tmp_path, "healthy")]
    if "--prometheus" not in args:
        base += ["--prometheus", "http://127.0.0.1:1"]
    code, output = _judge(*base, *args)
    assert code == 2, output
    assert flag in output


def test_times_accept_rfc3339_unix_seconds_and_relative_forms() -> None:
    now = 1_700_000_000.0
    assert parse_instant("now", now) == now
    assert parse_instant("-30m", now) == now - 1800
    assert parse_instant("-1h30m", now) == now - 5400
    assert parse_instant("1699990000", now) == 1_699_990_000
    assert parse_instant("2023-11-14T22:13:20Z", now) == now
    assert parse_instant("2023-11-15T00:13:20+02:00", now) == now
    with pytest.raises(BacktestError, match="time zone"):
        parse_instant("2023-11-14T22:13:20", now)


def test_compared_metrics_are_rendered_once_per_arm_and_thresholds_only_when_bounded() -> None:
    canary = yaml.safe_load(CANARY_YAML.format(target="shop-api", namespace=NAMESPACE, extra=""))
    canary["spec"]["analysis"]["metrics"].append(
        {
            "name": "error-percentage",
            "interval": "2m",
            "templateRef": {"name": "error-percentage"},
            "comparison": {"method": "mann-whitney", "direction": "increase"},
        }
    )
    spec = parse_valid_canary(canary)
    templates = templates_from_documents([yaml.safe_load(TEMPLATE_YAML)], NAMESPACE)
    plan = plan_looks(spec, CanaryIdentity.of(canary, spec), templates)
    assert set(plan.thresholds) == {"request-success-rate"}  # compared only: no threshold check
    canary_query, primary_query = plan.compared["error-percentage"]
    assert 'destination_workload="shop-api"' in canary_query and "[2m]" in canary_query
    assert 'destination_workload="shop-api-primary"' in primary_query
    assert plan.counts and plan.slow_threshold_ms is None
