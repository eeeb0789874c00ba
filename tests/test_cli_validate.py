"""`coalmine validate` as a pre-commit hook or CI step sees it: exit codes, one line per problem, JSON for tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
VALID_CANARY = """\
apiVersion: coalmine.dev/v1alpha1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    stepWeight: 20
    metrics:
      - {name: request-success-rate, thresholdRange: {min: 99}}
"""
INVALID_CANARY = VALID_CANARY.replace("stepWeight: 20", "stepWeight: 0").replace("min: 99", "min: 99, max: 1")
DEPLOYMENT = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_valid_file_exits_zero_and_says_ok(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "canary.yaml", VALID_CANARY)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: Canary/podinfo: OK" in result.output.splitlines()


def test_invalid_file_exits_one_with_a_line_per_problem(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "canary.yaml", INVALID_CANARY)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{path}: Canary/podinfo: spec.analysis.stepWeight: must be ≥ 1 (got 0)" in lines
    assert any(
        line.startswith(f"{path}: Canary/podinfo: spec.analysis.metrics[0].thresholdRange: min (99)") for line in lines
    )
    assert not any(line.endswith(": OK") for line in lines)


def test_flagger_canary_is_reported_as_compatible(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "flagger.yaml", VALID_CANARY.replace("coalmine.dev/v1alpha1", "flagger.app/v1beta1"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert f"{path}: Canary/podinfo: OK (Flagger-compatible)" in result.output


def test_multi_document_yaml_checks_each_and_skips_other_kinds(runner: CliRunner, tmp_path: Path) -> None:
    text = f"{DEPLOYMENT}---\n{VALID_CANARY}---\n{INVALID_CANARY.replace('name: podinfo', 'name: broken', 1)}"
    path = _write(tmp_path, "app.yaml", text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: Canary/podinfo: OK" in result.output
    assert f"{path}: Canary/broken: spec.analysis.stepWeight" in result.output
    assert not any("Deployment/" in line for line in result.output.splitlines())  # no line of its own
    # ...but the summary names what was skipped, so "0 invalid" is never read as "everything was checked"
    assert result.output.splitlines()[-1] == (
        "2 document(s) checked, 1 invalid, 1 other document(s) skipped: 1 Deployment"
    )


def test_kubernetes_list_items_are_checked(runner: CliRunner, tmp_path: Path) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [json.loads(json.dumps(_canary_dict(stepWeight=0)))]}
    path = _write(tmp_path, "list.json", json.dumps(listed))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert "spec.analysis.stepWeight" in result.output


def _canary_dict(**analysis: object) -> dict[str, object]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo"},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80},
            "analysis": {"interval": "1m", **analysis},
        },
    }


def test_directories_are_searched_recursively_for_manifests(runner: CliRunner, tmp_path: Path) -> None:
    _write(tmp_path, "apps/a/canary.yaml", VALID_CANARY)
    _write(tmp_path, "apps/b/canary.yml", INVALID_CANARY)
    _write(tmp_path, "apps/c/canary.json", json.dumps(_canary_dict(stepWeight=10)))
    _write(tmp_path, "apps/c/README.md", "stepWeight: 0")
    _write(tmp_path, "apps/.git/hidden.yaml", INVALID_CANARY)
    result = runner.invoke(app, ["validate", str(tmp_path / "apps")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'apps/a/canary.yaml'}: Canary/podinfo: OK" in result.output
    assert f"{tmp_path / 'apps/b/canary.yml'}: Canary/podinfo: spec.analysis.stepWeight" in result.output
    assert f"{tmp_path / 'apps/c/canary.json'}: Canary/podinfo: OK" in result.output
    assert ".git" not in result.output
    assert "3 document(s) checked, 1 invalid" in result.output


def test_stdin_is_read_with_dash(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", "-"], input=INVALID_CANARY)
    assert result.exit_code == 1
    assert "<stdin>: Canary/podinfo: spec.analysis.stepWeight: must be ≥ 1" in result.output
    assert runner.invoke(app, ["validate", "-"], input=VALID_CANARY).exit_code == 0


def test_yaml_syntax_error_is_invalid_input_with_its_line(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.yaml", VALID_CANARY + "  bad: [unclosed\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: line 14: YAML syntax error" in result.output


def test_yaml_syntax_errors_say_in_plain_words_what_is_usually_wrong_and_where(
    runner: CliRunner, tmp_path: Path
) -> None:
    cases = {
        "tab.yaml": ("spec:\n\tanalysis: {}\n", "line 2: ", "(column 1): a tab in the indentation"),
        "list.yaml": ("a: [1, 2\nb: 3\n", "line 2: ", "a [list] is not closed with ']'"),
        "dash.yaml": ("a:\n  - 1\n - 2\n", "line 3: ", "a '- item' is indented less than the items above it"),
        "quote.yaml": ('a: "open\n', "line 2: ", "close the quote"),
    }
    for name, (text, line, words) in cases.items():
        path = _write(tmp_path, name, text)
        output = runner.invoke(app, ["validate", str(path)]).output
        assert f"{path}: {line}YAML syntax error: " in output, output
        assert words in output, output


def test_documents_before_a_syntax_error_are_still_checked(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "two.yaml", f"{VALID_CANARY}---\nkind: Canary\nmetadata: name: x\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: Canary/podinfo: OK" in result.output
    assert f"{path}: line 15: YAML syntax error: mapping values are not allowed here" in result.output


def test_json_syntax_error_names_its_line(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.json", '{\n  "kind": "Canary",\n  oops\n}')
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: line 3: JSON syntax error" in result.output


def test_missing_path_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    valid = _write(tmp_path, "canary.yaml", VALID_CANARY)
    result = runner.invoke(app, ["validate", str(valid), str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: no such file or directory" in result.output


def test_no_path_is_a_usage_error(runner: CliRunner) -> None:
    assert runner.invoke(app, ["validate"]).exit_code == 2


def test_json_output_lists_every_document(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "app.yaml", f"{VALID_CANARY}---\n{DEPLOYMENT}---\n{INVALID_CANARY}")
    broken = _write(tmp_path, "broken.yaml", "a: [\n")
    result = runner.invoke(app, ["validate", "--output", "json", str(path), str(broken)])
    assert result.exit_code == 1
    entries = json.loads(result.output)
    assert [(entry["file"], entry["kind"], entry["valid"]) for entry in entries] == [
        (str(path), "Canary", True),
        (str(path), "Canary", False),
        (str(broken), None, False),
    ]
    assert set(entries[0]) == {"file", "kind", "name", "valid", "flagger", "problems", "warnings"}
    assert {"path": "spec.analysis.stepWeight", "message": "must be ≥ 1 (got 0)"} in entries[1]["problems"]
    assert entries[2]["problems"][0]["message"].startswith("line 2: YAML syntax error")


def test_warnings_are_printed_and_fail_only_with_strict(runner: CliRunner, tmp_path: Path) -> None:
    path = _write(tmp_path, "old.yaml", VALID_CANARY.replace("analysis:", "canaryAnalysis:"))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert f"{path}: Canary/podinfo: spec.canaryAnalysis: warning: deprecated" in result.output
    assert runner.invoke(app, ["validate", "--strict", str(path)]).exit_code == 1


def test_shipped_examples_and_crds_validate(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", str(ROOT / "examples"), str(ROOT / "crds")])
    assert result.exit_code == 0, result.output
    assert ", 0 invalid," in result.output
    for name in ("podinfo-canary.yaml: Canary/podinfo", "metric-template.yaml: MetricTemplate", "alert-provider.yaml"):
        assert any(name in line and line.endswith(": OK") for line in result.output.splitlines()), name
    assert "warning" not in result.output


def test_scrape_interval_warns_about_intervals_it_cannot_serve(runner: CliRunner, tmp_path: Path) -> None:
    """30 s looks on 30 s scrapes are fine; 15 s looks and Flagger's 30 s rate() window are not."""
    short = VALID_CANARY.replace("interval: 1m", "interval: 15s").replace(
        "{name: request-success-rate, thresholdRange", "{name: request-success-rate, interval: 30s, thresholdRange"
    )
    path = _write(tmp_path, "canary.yaml", short)
    result = runner.invoke(app, ["validate", "--scrape-interval", "30s", "--output", "json", str(path)])
    assert result.exit_code == 0, result.output
    warnings = {w["path"]: w["message"] for w in json.loads(result.output)[0]["warnings"]}
    assert "shorter than the scrape interval 30s" in warnings["spec.analysis.interval"]
    assert "two scrape intervals" in warnings["spec.analysis.metrics[0].interval"]
    strict = runner.invoke(app, ["validate", "--scrape-interval", "30s", "--strict", str(path)])
    assert strict.exit_code == 1
    fine = runner.invoke(app, ["validate", "--scrape-interval", "15s", "--output", "json", str(path)])
    assert json.loads(fine.output)[0]["warnings"] == []
    bad = runner.invoke(app, ["validate", "--scrape-interval", "soon", str(path)])
    assert bad.exit_code == 2 and "--scrape-interval" in bad.output


ARGO_ROLLOUT = """\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: podinfo
spec:
  strategy: {canary: {steps: [{setWeight: 20}]}}
"""


def test_an_argo_rollout_or_unknown_kind_is_reported_as_skipped_and_why(runner: CliRunner, tmp_path: Path) -> None:
    """A migrating Argo user must not read "0 invalid" as "your Rollout was checked"."""
    other = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n"
    path = _write(tmp_path, "rollout.yaml", f"{ARGO_ROLLOUT}---\n{other}---\n{DEPLOYMENT}")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: Rollout/podinfo: skipped: argoproj.io/v1alpha1 Rollout is an Argo Rollouts kind" in result.output
    assert "add a Canary that targets it" in result.output
    assert f"{path}: Widget/w: skipped: example.com/v1 Widget is not a Coalmine kind" in result.output
    assert "Deployment/" not in result.output  # Kubernetes' own kinds are skipped silently
    assert result.output.splitlines()[-1] == (
        "0 document(s) checked, 0 invalid, 3 other document(s) skipped: 1 Deployment, 1 Rollout, 1 Widget"
    )
    as_json = json.loads(runner.invoke(app, ["validate", "-o", "json", str(path)]).output)
    assert [(entry["kind"], entry["skipped"].split(":")[0]) for entry in as_json] == [
        ("Rollout", "skipped"),
        ("Widget", "skipped"),
    ]
