"""Manifests are read as Kubernetes reads them, and what would stall or mislead the tools is refused by line.

Found under attack: ``slowThresholdMs: 1e12`` (a number to kubectl and the API server) was "must be a number" to
``coalmine validate``; a key given twice was silently resolved; a "billion laughs" document and deep nesting hung
or crashed the tools instead of answering.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli.main import app
from controller.cli.manifest_yaml import MAX_DEPTH, load_all

CANARY = """apiVersion: coalmine.dev/v1alpha1
kind: Canary
metadata: {name: shop, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: shop}
  service: {port: 80}
  analysis:
    interval: 30s
    stepWeight: 10
    comparison:
      latency: {slowThresholdMs: 2.5e3}
"""


def _validate(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "doc.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["validate", str(path)])
    return result.exit_code, result.output


def test_exponent_floats_are_numbers_as_in_kubernetes(tmp_path: Path) -> None:
    assert list(load_all("a: 1e12\nb: '1e12'\nc: 1.5\nd: 7\n")) == [{"a": 1e12, "b": "1e12", "c": 1.5, "d": 7}]
    code, output = _validate(tmp_path, CANARY)
    assert code == 0, output


def test_a_duplicate_key_is_refused_naming_its_line(tmp_path: Path) -> None:
    code, output = _validate(tmp_path, CANARY.replace("    interval: 30s\n", "    interval: 30s\n    interval: 1m\n"))
    assert code == 1 and "line 9" in output and "duplicate key 'interval'" in output, output


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 7):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        levels.append(f"a{level}: &a{level} [{refs}]")
    started = time.monotonic()
    code, output = _validate(tmp_path, "\n".join(levels) + "\n")
    assert code == 1 and "expands to" in output, output
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "text", ["x: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", "x: &a [*a]\n"], ids=["deep", "cyclic"]
)
def test_deep_or_self_containing_documents_are_refused_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    code, output = _validate(tmp_path, text)
    assert code == 1 and "nested deeper than" in output and "Traceback" not in output, output


def test_validate_simulate_and_the_operators_parse_agree_on_an_uncountable_slow_threshold(tmp_path: Path) -> None:
    """``slowThresholdMs: 1e12`` is above every histogram bucket: the operator's looks would fail every time, so
    validate and simulate refuse it too (they used to accept and promote it)."""
    from controller.rollout.validation import InvalidSpecError, parse_valid_canary

    text = CANARY.replace("2.5e3", "1e12")
    code, output = _validate(tmp_path, text)
    assert code == 1 and "slowThresholdMs: is above the largest latency histogram bucket" in output, output
    simulated = CliRunner().invoke(app, ["simulate", "-f", str(tmp_path / "doc.yaml")])
    assert simulated.exit_code != 0 and "slowThresholdMs" in simulated.output
    with pytest.raises(InvalidSpecError, match="slowThresholdMs"):
        parse_valid_canary(next(load_all(text)))
