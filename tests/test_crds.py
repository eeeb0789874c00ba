"""The CRDs in crds/ are what `kubectl apply` installs: they must be valid, structural, and agree with the code."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft4Validator

from controller.rollout import spec as spec_model
from controller.rollout.durations import DurationError, parse_duration
from controller.rollout.schema import CRD_DIR, CRD_FILES, crd_schema, load_crd
from controller.rollout.schema_check import DURATION_PATTERN

KINDS = sorted(CRD_FILES)
FLAGGER_NAMES = {"canary", "canaries", "metrictemplate", "metrictemplates", "alertprovider", "alertproviders"}


def _nodes(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for key, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{key}")
    if isinstance(node.get("items"), Mapping):
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _resolve(schema: Mapping[str, Any], json_path: str) -> Mapping[str, Any] | None:
    node: Mapping[str, Any] | None = schema
    for part in json_path.strip(".").split("."):
        node = (node or {}).get("properties", {}).get(part)
    return node


@pytest.mark.parametrize("kind", KINDS)
def test_crd_is_a_valid_apiextensions_v1_object(kind: str) -> None:
    crd = load_crd(kind)
    kubernetes_validate.validate(dict(crd), "1.37.0", strict=True)
    names = crd["spec"]["names"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["spec"]["group"] == "coalmine.dev"
    assert crd["metadata"]["name"] == f"{names['plural']}.coalmine.dev"
    assert names["kind"] == kind
    assert crd["spec"]["scope"] == "Namespaced"
    assert set(names["categories"]) == {"all", "coalmine"}
    [version] = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_kubernetes_validate_catches_a_misspelt_schema_keyword() -> None:
    crd = yaml.safe_load((CRD_DIR / "alertprovider.yaml").read_text())
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["tpye"] = "object"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(crd, "1.37.0", strict=True)


def test_short_names_are_unique_and_do_not_clash_with_flagger() -> None:
    short = [name for kind in KINDS for name in load_crd(kind)["spec"]["names"]["shortNames"]]
    assert len(short) == len(set(short))
    assert not set(short) & FLAGGER_NAMES
    assert {"cmc", "cmmt", "cmap"} <= set(short)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    for path, node in _nodes(crd_schema(kind)):
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            continue
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        assert not ("properties" in node and "additionalProperties" in node), path
        assert node.get("x-kubernetes-preserve-unknown-fields", True) is True, path
        for forbidden in ("oneOf", "anyOf", "allOf", "not", "$ref"):
            assert forbidden not in node, path


@pytest.mark.parametrize("kind", KINDS)
def test_every_default_is_valid_under_its_own_schema(kind: str) -> None:
    defaults = [(path, node) for path, node in _nodes(crd_schema(kind)) if "default" in node]
    if kind == "Canary":
        assert len(defaults) > 15
    for path, node in defaults:
        errors = list(Draft4Validator(node).iter_errors(node["default"]))
        assert not errors, (path, errors)


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_point_at_real_fields(kind: str) -> None:
    [version] = load_crd(kind)["spec"]["versions"]
    schema = crd_schema(kind)
    column_types = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"] == ".metadata.creationTimestamp":
            assert column["type"] == "date"
            continue
        node = _resolve(schema, column["jsonPath"])
        assert node is not None, column
        if column["type"] == "date":
            assert node.get("format") == "date-time", column
        else:
            assert column_types[column["type"]] == node["type"], column
    assert version["additionalPrinterColumns"][-1]["name"] == "Age"


def test_canary_printer_columns_show_progress() -> None:
    [version] = load_crd("Canary")["spec"]["versions"]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns == {
        "Status": ".status.phase",
        "Weight": ".status.canaryWeight",
        "Step": ".status.stepIndex",
        "FailedChecks": ".status.failedChecks",
        "NoData": ".status.noDataChecks",
        "LastTransitionTime": ".status.lastTransitionTime",
        "Age": ".metadata.creationTimestamp",
    }


def test_canary_status_lists_flagger_phases_and_leaves_room_for_the_engine() -> None:
    status = crd_schema("Canary")["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert status["properties"]["phase"]["enum"] == [
        "Initializing",
        "Initialized",
        "Waiting",
        "Progressing",
        "WaitingPromotion",
        "Promoting",
        "Finalising",
        "Succeeded",
        "Failed",
        "Terminating",
        "Terminated",
    ]
    known = set(status["properties"])
    assert {
        "canaryWeight",
        "failedChecks",
        "noDataChecks",
        "iterations",
        "stepIndex",
        "lastAppliedSpec",
        "lastPromotedSpec",
        "trackedConfigs",
        "lastTransitionTime",
        "observedGeneration",
        "conditions",
    } <= known
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"} <= set(condition)


def test_deprecated_canary_analysis_has_the_same_schema_as_analysis() -> None:
    spec = crd_schema("Canary")["properties"]["spec"]["properties"]
    assert spec["canaryAnalysis"] == spec["analysis"]


def _default(*path: str) -> Any:
    node: Mapping[str, Any] = crd_schema("Canary")["properties"]["spec"]
    for part in path:
        node = node["items"] if part == "[]" else node["properties"][part]
    return node["default"]


def test_crd_defaults_agree_with_the_typed_spec_model() -> None:
    """The API server fills CRD defaults; the spec model fills its own. A rollout must not depend on which ran."""
    analysis = spec_model.AnalysisSpec()
    comparison = spec_model.ComparisonSpec()
    metric_comparison = spec_model.MetricComparison()
    assert parse_duration(_default("analysis", "interval")) == analysis.interval_s
    assert _default("analysis", "threshold") == analysis.threshold
    assert _default("analysis", "primaryReadyThreshold") == analysis.primary_ready_threshold
    assert _default("analysis", "canaryReadyThreshold") == analysis.canary_ready_threshold
    assert parse_duration(_default("analysis", "metrics", "[]", "interval")) == spec_model.MetricSpec("m").interval_s
    assert (
        parse_duration(_default("analysis", "webhooks", "[]", "timeout")) == spec_model.WebhookSpec("w", "u").timeout_s
    )
    assert _default("analysis", "webhooks", "[]", "type") == spec_model.HookType.ROLLOUT
    assert _default("analysis", "alerts", "[]", "severity") == spec_model.Severity.INFO
    assert _default("analysis", "comparison", "alpha") == comparison.alpha
    assert _default("analysis", "comparison", "minRequests") == comparison.min_requests
    assert _default("analysis", "comparison", "requireEvidence") == comparison.require_evidence
    assert (
        _default("analysis", "comparison", "latency", "slowThresholdMs") == spec_model.LatencyPolicy().slow_threshold_ms
    )
    assert _default("analysis", "metrics", "[]", "comparison", "method") == metric_comparison.method
    assert _default("analysis", "metrics", "[]", "comparison", "direction") == metric_comparison.direction
    assert _default("analysis", "metrics", "[]", "comparison", "minPoints") == metric_comparison.min_points
    assert _default("progressDeadlineSeconds") == 600
    # No CRD default for provider: an unset provider must reach the operator, whose --default-provider decides
    # (Flagger's -mesh-provider); the spec model's own default is istio.
    assert "default" not in crd_schema("Canary")["properties"]["spec"]["properties"]["provider"]
    assert spec_model.CanarySpec.__dataclass_fields__["provider"].default == "istio"
    assert _default("service", "portName") == "http"
    assert _default("service", "gateways") == ["mesh"]


def test_crd_files_are_the_only_yaml_in_crds_dir() -> None:
    assert sorted(path.name for path in Path(CRD_DIR).glob("*.yaml")) == sorted(CRD_FILES.values())


@pytest.mark.parametrize(
    "text", ["30s", "1m", "1h30m", "250ms", "1.5h", "0s", "60", "1 m", "1d", "m", "", "-1s", "1m30", "10S"]
)
def test_every_duration_pattern_in_the_crds_agrees_with_the_parser(text: str) -> None:
    patterns = {node["pattern"] for kind in KINDS for _, node in _nodes(crd_schema(kind)) if "pattern" in node}
    assert patterns == {DURATION_PATTERN}
    try:
        parse_duration(text)
        parses = True
    except DurationError:
        parses = False
    assert bool(re.search(DURATION_PATTERN, text)) == parses
