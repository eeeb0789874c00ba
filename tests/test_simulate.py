"""``coalmine simulate`` through its CLI: timelines, the JSON summary, reproducibility, and what users rely on it for
— healthy releases promote, a 4× error regression rolls back on the comparison, shared incidents do not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller.cli import demo
from controller.cli.main import app
from controller.simulation import Routing, arm_shares

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "podinfo-canary.yaml"

HEADER = """
apiVersion: coalmine.dev/v1alpha1
kind: Canary
metadata: {name: shop, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  service: {port: 80}
  progressDeadlineSeconds: 600
  analysis:
    interval: 30s
    threshold: 2
"""

COMPARISON = """
    comparison:
      alpha: 0.01
      minRequests: 100
      errorRate: {maxRelativeIncrease: 0.1}
"""

STEPS = "    stepWeight: 10\n    maxWeight: 50\n"
SUCCESS_RATE = """
    metrics:
      - name: request-success-rate
        interval: 30s
        thresholdRange: {min: 99}
"""


def _canary(tmp_path: Path, body: str) -> str:
    path = tmp_path / "canary.yaml"
    path.write_text(HEADER + body)
    return str(path)


def _simulate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.output


def _summary(*args: str) -> dict[str, Any]:
    code, output = _simulate(*args, "--json")
    assert code == 0, output
    summary: dict[str, Any] = json.loads(output)
    return summary


def test_one_run_prints_a_timeline_with_each_looks_evidence(tmp_path: Path) -> None:
    code, output = _simulate("-f", _canary(tmp_path, STEPS + COMPARISON + SUCCESS_RATE), "--rps", "100")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].split() == ["time", "phase", "weight", "event"]
    assert any(
        re.match(r"\s+30s\s+Progressing\s+10%\s+Advanced: Advance shop canary weight 10", line) for line in lines
    )
    looks = [line for line in lines if "look pass:" in line]
    assert looks, output
    # per-metric evidence: the threshold value, and the comparison's estimate, p-value and requests seen
    assert re.search(r"request-success-rate=[\d.]+; error-rate θ̂=[\d.—]+ p=[\d.e-]+ n=[\d,]+", looks[-1])
    assert "Outcome: promoted after 3m" in output  # 30 s pre-rollout look, then five 30 s steps
    assert "Reason: promoted after the last step; could have detected" in output


def test_json_summary_has_the_documented_shape(tmp_path: Path) -> None:
    summary = _summary("-f", _canary(tmp_path, STEPS + COMPARISON), "--runs", "3", "--seed", "11")
    assert {"runs", "promoted", "rolledBack", "rollbackFraction", "medianDecisionSeconds", "p90DecisionSeconds"} <= set(
        summary
    )
    assert summary["runs"] == 3 and summary["promoted"] + summary["rolledBack"] <= 3
    assert [row["seed"] for row in summary["results"]] == [11, 12, 13]
    for row in summary["results"]:
        assert set(row) == {"seed", "result", "decisionSeconds", "reason", "maxCanaryWeight"}
        assert row["result"] in ("promoted", "rolledBack", "undecided")
        assert isinstance(row["decisionSeconds"], float) and row["maxCanaryWeight"] == 50


def test_the_same_seed_gives_the_same_result(tmp_path: Path) -> None:
    canary = _canary(tmp_path, STEPS + COMPARISON + SUCCESS_RATE)
    args = ("-f", canary, "--runs", "4", "--seed", "5", "--canary-error-rate", "0.01")
    assert _summary(*args) == _summary(*args)
    first = _simulate("-f", canary, "--seed", "5")[1]
    assert first == _simulate("-f", canary, "--seed", "5")[1]
    assert first != _simulate("-f", canary, "--seed", "6")[1]


def test_healthy_releases_mostly_promote_and_four_times_the_errors_roll_back_on_the_comparison(
    tmp_path: Path,
) -> None:
    canary = _canary(tmp_path, STEPS + COMPARISON)
    common = ("-f", canary, "--runs", "60", "--rps", "50", "--baseline-error-rate", "0.01")
    healthy = _summary(*common)
    assert healthy["promoted"] >= 58  # alpha = 0.01 bounds false rollbacks over the whole rollout
    regressed = _summary(*common, "--canary-error-rate", "0.04")
    assert regressed["rolledBack"] >= 57
    for row in regressed["results"]:
        if row["result"] == "rolledBack":
            assert row["reason"].startswith("ComparisonRejected: Rolling back shop: canary 5xx rate")
            assert "p = " in row["reason"] and "< 0.01" in row["reason"]
    assert regressed["medianDecisionSeconds"] < healthy["medianDecisionSeconds"]


def test_a_long_rollout_with_many_looks_keeps_false_rollbacks_within_alpha(tmp_path: Path) -> None:
    # 30 steps of 2 %: a look every 30 s for 15 minutes. Looks must cover disjoint windows (a request counted in
    # two looks inflates the evidence and rolls back healthy releases far more often than alpha allows).
    canary = _canary(tmp_path, "    stepWeight: 2\n    maxWeight: 60\n" + COMPARISON)
    summary = _summary("-f", canary, "--runs", "100", "--rps", "20", "--baseline-error-rate", "0.01")
    assert summary["rolledBack"] <= 3
    # pre-rollout look, 8 looks at 2 % collecting the first 100 canary requests (12 a look: no verdict, no step),
    # then 30 steps of 30 s
    assert summary["medianDecisionSeconds"] == 1170.0


def test_shared_incidents_do_not_roll_back_a_comparison_but_do_trip_thresholds(tmp_path: Path) -> None:
    incident = ("--incident", "60:60:0.3", "--runs", "30", "--rps", "50")
    compared = _summary("-f", _canary(tmp_path, STEPS + COMPARISON), *incident)
    assert compared["rolledBack"] <= 1  # both arms fail alike: the comparison cancels the incident out
    thresholds = _summary("-f", _canary(tmp_path, STEPS + SUCCESS_RATE), *incident)
    assert thresholds["rolledBack"] == 30  # the canary alone looks broken during the incident, twice
    code, output = _simulate("-f", _canary(tmp_path, STEPS + SUCCESS_RATE), *incident)
    assert code == 0, output
    assert "30 × RolledBack: Rolling back shop failed checks threshold reached 2  (e.g. seed 0)" in output


def test_metric_templates_are_reported_as_not_simulated() -> None:
    code, output = _simulate("-f", str(EXAMPLE), "--max-duration", "5m")
    assert code == 0, output
    assert "metric 'not-found-percentage' uses a MetricTemplate and is not simulated" in output
    summary = _summary("-f", str(EXAMPLE), "--max-duration", "5m")
    assert summary["notSimulated"] == ["not-found-percentage"]


def test_a_manual_pause_waits_for_the_simulated_person(tmp_path: Path) -> None:
    steps = "    steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 50\n"
    canary = _canary(tmp_path, steps + COMPARISON)
    prompt = _summary("-f", canary)["results"][0]
    late = _summary("-f", canary, "--manual-approval-delay", "10m")["results"][0]
    assert prompt["result"] == late["result"] == "promoted"
    # the pause starts with the first look (30 s); the late person answers 10 minutes later, the prompt one at once
    assert prompt["decisionSeconds"] < 300
    assert late["decisionSeconds"] >= 30 + 600
    code, output = _simulate("-f", canary, "--manual-approval-delay", "2m")
    assert code == 0, output
    assert "simulated person: kubectl coalmine promote" in output


def test_ab_testing_routes_the_matching_fraction_to_the_canary(tmp_path: Path) -> None:
    ab = "    iterations: 4\n    match:\n      - headers: {x-canary: {exact: insider}}\n"
    canary = _canary(tmp_path, ab + COMPARISON)
    code, output = _simulate("-f", canary, "--rps", "100", "--match-fraction", "0.2")
    assert code == 0, output
    counts = [int(n.replace(",", "")) for n in re.findall(r"error-rate θ̂=\S+ p=\S+ n=([\d,]+)", output)]
    assert len(counts) == 4  # one look per iteration
    # 20 % of 100 rps for 30 s per look: ~600 canary requests per look, cumulative
    assert 4 * 500 < counts[-1] < 4 * 700
    assert "Outcome: promoted" in output


def test_mirroring_sends_the_canary_copies_of_the_primarys_traffic(tmp_path: Path) -> None:
    mirror = "    iterations: 3\n    mirror: true\n    mirrorWeight: 50\n"
    code, output = _simulate("-f", _canary(tmp_path, mirror + COMPARISON), "--rps", "100")
    assert code == 0, output
    counts = [int(n.replace(",", "")) for n in re.findall(r"n=([\d,]+)", output)]
    # the weights stay 100/0, yet the canary serves half the primary's requests as mirrored copies
    assert counts and 3 * 1300 < counts[-1] < 3 * 1700
    assert "  0%  look pass" in output


def test_blue_green_needs_a_load_tester_to_send_the_canary_traffic(tmp_path: Path) -> None:
    canary = _canary(tmp_path, "    iterations: 4\n" + COMPARISON)
    code, output = _simulate("-f", canary, "--rps", "100", "--max-duration", "5m")
    assert code == 0, output
    # all traffic stays on the primary: the canary sees no requests, and no data never hangs (noDataLimit)
    assert "look noData" in output
    assert "NoData: Rolling back shop: no data for 2 looks in a row (noDataLimit 2)" in output
    code, output = _simulate("-f", canary, "--rps", "100", "--load-test-rps", "20")
    counts = [int(n.replace(",", "")) for n in re.findall(r"n=([\d,]+)", output)]
    assert len(counts) == 4 and 4 * 500 < counts[-1] < 4 * 700  # 20 rps for four 30 s looks
    assert "Outcome: promoted" in output


def test_arm_shares_follow_the_router() -> None:
    assert arm_shares(Routing(70, 30), 0.1) == (30.0, 70.0)
    assert arm_shares(Routing(100, 0, match_active=True), 0.25) == (25.0, 75.0)
    assert arm_shares(Routing(100, 0, mirror_weight=40), 0.1) == (40.0, 100.0)
    assert arm_shares(Routing(90, 10, canary_up=True), 0.1, load_test_percent=5.0) == (15.0, 90.0)
    assert arm_shares(Routing(100, 0, canary_up=False), 0.1, load_test_percent=5.0) == (0.0, 100.0)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--canary-error-rate", "1.5"], "--canary-error-rate"),
        (["--baseline-error-rate", "-0.1"], "--baseline-error-rate"),
        (["--incident", "soon"], "--incident"),
        (["--incident", "10:0:0.5"], "--incident"),
        (["--max-duration", "forever"], "--max-duration"),
        (["--manual-approval-delay", "5"], "--manual-approval-delay"),
        (["--rps", "0"], "--rps"),
        (["--latency-sigma", "0"], "--latency-sigma"),
        (["--canary-tail-fraction", "2"], "--canary-tail-fraction"),
        (["--match-fraction", "1.1"], "--match-fraction"),
        (["--load-test-rps", "-1"], "--load-test-rps"),
        (["--runs", "0"], "--runs"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(tmp_path: Path, args: list[str], flag: str) -> None:
    code, output = _simulate("-f", _canary(tmp_path, STEPS + COMPARISON), *args)
    assert code == 2, output
    assert flag in output


def test_the_demo_shows_a_healthy_release_promoted_and_a_bad_one_rolled_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert demo.main([]) == 0
    output = capsys.readouterr().out
    healthy, bad = output.split("A bad release")
    assert "A healthy release" in healthy and "Outcome: promoted" in healthy and "look pass" in healthy
    assert "Outcome: rolledBack" in bad and "ComparisonRejected: Rolling back podinfo: canary 5xx rate" in bad
