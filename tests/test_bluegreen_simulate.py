"""``coalmine simulate`` on a BlueGreen: the same engine as the operator, on synthetic traffic, so a user can see
before a release whether the preview and the analyses would catch a bad green, and how long a rollout takes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from controller.cli.main import app

BLUEGREEN = """
apiVersion: coalmine.dev/v1alpha1
kind: BlueGreen
metadata: {name: shop, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  service: {port: 80}
  analysis:
    interval: 30s
    threshold: 2
    comparison: {minRequests: 100, errorRate: {maxRelativeIncrease: 0.1}}
    metrics:
      - {name: request-success-rate, interval: 30s, thresholdRange: {min: 95}}
  prePromotionAnalysis: {iterations: 6}
  postPromotionAnalysis: {duration: 2m}
  scaleDownDelaySeconds: 30
"""
MIRROR = "  preview: {mirror: true, mirrorWeight: 50}\n"


def run(tmp_path: Path, extra: str, *args: str) -> dict[str, Any]:
    path = tmp_path / "bluegreen.yaml"
    path.write_text(BLUEGREEN + extra)
    result = CliRunner().invoke(app, ["simulate", "-f", str(path), "--rps", "50", "--json", *args])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.output)
    return summary


def messages(summary: dict[str, Any]) -> list[str]:
    return [row["message"] for row in summary["timeline"]]


def test_a_healthy_green_is_previewed_switched_and_promoted(tmp_path: Path) -> None:
    summary = run(tmp_path, MIRROR + "  autoPromotion: {afterSeconds: 60}\n")
    [result] = summary["results"]
    assert result["result"] == "promoted" and result["maxCanaryWeight"] == 100
    text = messages(summary)
    switch = next(i for i, m in enumerate(text) if m.startswith("Promoting: Switched all traffic to green"))
    assert any("50% of live traffic mirrored" in m for m in text[:switch])
    assert "WaitingPromotion: Switching all traffic to green shop in 1m" in text
    assert text[-1].startswith("Succeeded:")
    # Decided once blue took green's spec: 6 pre-promotion looks, 1 min wait, 2 min post-promotion analysis.
    assert result["decisionSeconds"] >= 6 * 30 + 60 + 120


def test_a_bad_green_is_caught_on_the_mirrored_traffic_before_any_user_sees_it(tmp_path: Path) -> None:
    summary = run(tmp_path, MIRROR, "--canary-error-rate", "0.06", "--runs", "5")
    assert summary["rolledBack"] == 5
    assert {r["maxCanaryWeight"] for r in summary["results"]} == {0}


def test_without_a_preview_green_is_judged_on_load_test_traffic(tmp_path: Path) -> None:
    summary = run(tmp_path, "", "--canary-error-rate", "0.06", "--load-test-rps", "20")
    [result] = summary["results"]
    assert result["result"] == "rolledBack" and result["maxCanaryWeight"] == 0


def test_an_incident_after_the_switch_sends_traffic_back_to_blue(tmp_path: Path) -> None:
    # The switch comes after the first look and 6 pre-promotion looks (3.5 min); the incident starts at 4 min.
    summary = run(tmp_path, MIRROR, "--incident", "240:600:0.5")
    [result] = summary["results"]
    assert result["result"] == "rolledBack" and result["maxCanaryWeight"] == 100
    text = messages(summary)
    assert any(m.startswith("Promoting: Switched all traffic to green") for m in text)
    assert summary["timeline"][-1]["phase"] == "Failed" and summary["timeline"][-1]["weight"] == 0


def test_manual_promotion_is_simulated_by_a_person_after_the_approval_delay(tmp_path: Path) -> None:
    summary = run(tmp_path, MIRROR + "  autoPromotion: {enabled: false}\n", "--manual-approval-delay", "5m")
    [result] = summary["results"]
    assert result["result"] == "promoted"
    assert "simulated person: kubectl coalmine promote" in messages(summary)
    assert result["decisionSeconds"] >= 6 * 30 + 300 + 120


def test_the_file_may_hold_a_deployment_and_several_rollouts(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: shop}\n---" + BLUEGREEN + MIRROR)
    result = CliRunner().invoke(app, ["simulate", "-f", str(path), "--name", "nope"])
    assert result.exit_code == 1 and "no Canary or BlueGreen named 'nope' in this file" in result.output
    result = CliRunner().invoke(app, ["simulate", "-f", str(path), "--rps", "50"])
    assert result.exit_code == 0 and "promoted" in result.output
