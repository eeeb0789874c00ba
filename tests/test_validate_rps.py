"""``coalmine validate --rps R``: a warning (never an error) when a Canary or BlueGreen cannot reach ``minRequests``
of canary traffic before it would promote at the traffic the user states — counted from the schedule, instantly."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from controller.cli.main import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CANARY = """
apiVersion: coalmine.dev/v1alpha1
kind: Canary
metadata: {name: shop, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  service: {port: 80}
  analysis:
    interval: 30s
    stepWeight: 10
    maxWeight: 50
    comparison:
      minRequests: 1000
"""

BLUEGREEN = """
apiVersion: coalmine.dev/v1alpha1
kind: BlueGreen
metadata: {name: shop, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  service: {port: 80}
  analysis:
    interval: 1m
    comparison: {minRequests: 500}
  preview: {mirror: true, mirrorWeight: 10}
  prePromotionAnalysis: {iterations: 5}
"""


def _validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", *args])
    return result.exit_code, result.output


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rollout.yaml"
    path.write_text(text)
    return str(path)


def test_too_little_traffic_for_min_requests_is_a_warning_naming_the_fixes(tmp_path: Path) -> None:
    path = _write(tmp_path, CANARY)
    started = time.monotonic()
    code, output = _validate(path, "--rps", "10")
    assert time.monotonic() - started < 2  # no simulation: fit for a pre-commit hook
    assert code == 0, output  # the manifest is valid; the traffic is the user's to know
    line = next(line for line in output.splitlines() if "warning:" in line)
    assert "Canary/shop: spec.analysis.comparison.minRequests: warning: at 10 requests/s" in line
    assert "about 450 requests" in line and "fewer than minRequests 1,000" in line
    for fix in ("lower minRequests to 450", "longer interval", "stepWeight ≤ 4", "more traffic (≥ 23 requests/s)"):
        assert fix in line, line
    assert _validate(path, "--rps", "10", "--strict")[0] == 1  # --strict makes warnings fail CI, as for the others


def test_enough_traffic_no_warning_and_without_rps_nothing_is_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, CANARY)
    assert "warning:" not in _validate(path, "--rps", "23")[1]
    assert "warning:" not in _validate(path)[1]


def test_the_json_output_carries_it_like_the_other_warnings(tmp_path: Path) -> None:
    code, output = _validate(_write(tmp_path, CANARY), "--rps", "5", "-o", "json", "--scrape-interval", "1m")
    assert code == 0, output
    (result,) = json.loads(output)
    paths = [warning["path"] for warning in result["warnings"]]
    assert paths == ["spec.analysis.interval", "spec.analysis.comparison.minRequests"]
    assert "at 5 requests/s the canary gets about 225 requests" in result["warnings"][1]["message"]


def test_a_bluegreens_preview_traffic_is_counted(tmp_path: Path) -> None:
    # 10 % of 10 requests/s mirrored for 5 looks of 1 minute: 300 green requests, short of 500
    code, output = _validate(_write(tmp_path, BLUEGREEN), "--rps", "10")
    assert code == 0, output
    assert "BlueGreen/shop: spec.analysis.comparison.minRequests: warning: at 10 requests/s" in output
    assert "about 300 requests" in output and "prePromotionAnalysis.iterations ≥ 9" in output
    assert "warning:" not in _validate(_write(tmp_path, BLUEGREEN), "--rps", "20")[1]


def test_the_shipped_examples_reach_min_requests_at_10_rps() -> None:
    code, output = _validate(str(EXAMPLES), "--rps", "10")
    assert code == 0 and "warning:" not in output, output


def test_rps_must_be_positive(tmp_path: Path) -> None:
    code, output = _validate(_write(tmp_path, CANARY), "--rps", "0")
    assert code == 2 and "--rps" in output, output
