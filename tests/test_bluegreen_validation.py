"""`coalmine validate` and the operator refuse a malformed BlueGreen, naming the field to fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from emulator.schemas import prune_and_default

from controller.rollout.bluegreen_spec import parse_valid_bluegreen
from controller.rollout.schema import crd_schema
from controller.rollout.validation import InvalidSpecError, validate_document


def valid() -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "BlueGreen",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "30s",
                "threshold": 2,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
                "webhooks": [{"name": "smoke", "type": "pre-rollout", "url": "http://tester/smoke"}],
            },
            "preview": {"mirror": True, "mirrorWeight": 50},
            "prePromotionAnalysis": {"iterations": 5},
            "autoPromotion": {"enabled": True, "afterSeconds": 60},
            "postPromotionAnalysis": {"duration": "2m"},
            "scaleDownDelaySeconds": 30,
        },
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    """The valid document with ``path`` (dotted, list indices as numbers) set to ``value`` (``...`` deletes it)."""
    doc = copy.deepcopy(valid())
    node: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return doc


def test_the_valid_document_is_valid_and_parses() -> None:
    report = validate_document(valid())
    assert report.valid, report.problems
    assert report.kind == "BlueGreen" and report.warnings == ()
    spec = parse_valid_bluegreen(valid())
    assert spec.pre_promotion is not None and spec.pre_promotion.iterations == 5
    assert spec.post_promotion is not None and spec.post_promotion.duration_s == 120
    assert spec.preview.mirror_weight == 50 and spec.auto_promotion.after_s == 60
    assert spec.canary.analysis.mirror and spec.canary.analysis.interval_s == 30


MALFORMED = [
    ("spec.prePromotionAnalysis", {}, "spec.prePromotionAnalysis", "iterations"),
    ("spec.prePromotionAnalysis", {"iterations": 3, "duration": "5m"}, "spec.prePromotionAnalysis.duration", "one"),
    ("spec.postPromotionAnalysis", {}, "spec.postPromotionAnalysis", "duration"),
    ("spec.postPromotionAnalysis", {"duration": "10s"}, "spec.postPromotionAnalysis.duration", "interval"),
    ("spec.postPromotionAnalysis.duration", "5 minutes", "spec.postPromotionAnalysis.duration", ""),
    ("spec.prePromotionAnalysis.iterations", 0, "spec.prePromotionAnalysis.iterations", ""),
    ("spec.preview.mirrorWeight", 150, "spec.preview.mirrorWeight", ""),
    ("spec.preview", {"mirrorWeight": 20}, "spec.preview.mirrorWeight", "mirror: true"),
    ("spec.preview", {"mirror": True, "mirrorWeight": 0}, "spec.preview.mirrorWeight", "mirror: false"),
    ("spec.preview", {"match": [{}]}, "spec.preview.match[0]", "every request"),
    ("spec.preview", {"match": []}, "spec.preview.match", ""),
    ("spec.autoPromotion", {"enabled": False, "afterSeconds": 30}, "spec.autoPromotion.afterSeconds", "promote"),
    ("spec.autoPromotion.afterSeconds", -1, "spec.autoPromotion.afterSeconds", ""),
    ("spec.scaleDownDelaySeconds", -5, "spec.scaleDownDelaySeconds", ""),
    ("spec.analysis.stepWeight", 10, "spec.analysis.stepWeight", ""),
    ("spec.analysis.iterations", 3, "spec.analysis.iterations", ""),
    ("spec.analysis.interval", "500ms", "spec.analysis.interval", ""),
    (
        "spec.analysis.webhooks",
        [{"name": "g", "type": "confirm-traffic-increase", "url": "http://g/"}],
        "spec.analysis.webhooks[0].type",
        "confirm-promotion",
    ),
    ("spec.analysis.webhooks", [{"name": "g", "url": "ftp://g/"}], "spec.analysis.webhooks[0].url", ""),
    ("spec.analysis.metrics", [{"name": "my-latency"}], "spec.analysis.metrics[0].templateRef", "MetricTemplate"),
    ("spec.targetRef.kind", "StatefulSet", "spec.targetRef.kind", "Deployment"),
    ("spec.service", ..., "spec.service", ""),
    ("spec.service.port", 70000, "spec.service.port", ""),
    ("spec.progressDeadlineSeconds", 0, "spec.progressDeadlineSeconds", ""),
]


@pytest.mark.parametrize(("path", "value", "reported", "hint"), MALFORMED, ids=[f"{m[0]}={m[1]!r}" for m in MALFORMED])
def test_a_malformed_bluegreen_is_reported_at_the_field(path: str, value: Any, reported: str, hint: str) -> None:
    doc = with_change(path, value)
    report = validate_document(doc)
    paths = [problem.path for problem in report.problems]
    assert reported in paths, report.problems
    message = next(problem.message for problem in report.problems if problem.path == reported)
    assert hint in message
    with pytest.raises(InvalidSpecError) as raised:
        parse_valid_bluegreen(doc)
    assert reported in str(raised.value)


def test_mirror_and_match_together_are_supported() -> None:
    doc = with_change("spec.preview", {"mirror": True, "match": [{"headers": {"x-preview": {"exact": "1"}}}]})
    assert validate_document(doc).valid


@pytest.mark.parametrize(
    ("path", "value", "warned"),
    [
        ("spec.prePromotionAnalysis", ..., "spec.prePromotionAnalysis"),
        ("spec.analysis", {"interval": "30s"}, "spec.prePromotionAnalysis"),
        ("spec.analysis", {"interval": "30s", "comparison": {}}, "spec.postPromotionAnalysis"),
    ],
)
def test_questionable_settings_are_warned_about(path: str, value: Any, warned: str) -> None:
    report = validate_document(with_change(path, value))
    assert report.valid, report.problems
    assert warned in [warning.path for warning in report.warnings]


def test_a_canary_is_not_a_bluegreen() -> None:
    doc = valid() | {"kind": "Canary"}
    with pytest.raises(InvalidSpecError, match="must be BlueGreen"):
        parse_valid_bluegreen(doc)


def test_flaggers_empty_webhook_type_means_rollout() -> None:
    doc = with_change("spec.analysis.webhooks", [{"name": "load", "type": "", "url": "http://tester/"}])
    [webhook] = parse_valid_bluegreen(doc).canary.analysis.webhooks
    assert webhook.type == "rollout"


@pytest.mark.parametrize(
    "spec",
    [
        valid()["spec"],
        {"targetRef": {"kind": "Deployment", "name": "podinfo"}, "service": {"port": 80}},
        {
            "targetRef": {"kind": "Deployment", "name": "podinfo"},
            "service": {"port": 80},
            "autoPromotion": {"enabled": False},
            "preview": {"match": [{"headers": {"x-preview": {"exact": "1"}}}]},
            "prePromotionAnalysis": {"duration": "5m"},
        },
    ],
)
def test_the_api_servers_defaults_change_nothing(spec: dict[str, Any]) -> None:
    """The API server fills the CRD's defaults before the operator sees a BlueGreen: a valid document must stay
    valid and mean the same with them (a default the rules reject would stall every such rollout)."""
    doc = valid() | {"spec": spec}
    defaulted = prune_and_default(doc, crd_schema("BlueGreen"))
    assert defaulted != doc  # the CRD does fill something in
    assert validate_document(defaulted).problems == ()
    assert parse_valid_bluegreen(defaulted) == parse_valid_bluegreen(doc)


@pytest.mark.parametrize(
    ("preview", "reported"),
    [
        ({"mirror": True, "mirrorWeight": 50}, "spec.preview.mirror: Istio cannot mirror TCP traffic"),
        ({"match": [{"headers": {"x-green": {"exact": "1"}}}]}, "spec.preview.match: needs HTTP"),
    ],
)
def test_a_tcp_bluegreen_refuses_a_preview_the_router_cannot_apply(preview: dict[str, Any], reported: str) -> None:
    document = with_change("spec.preview", preview)
    document["spec"]["service"]["appProtocol"] = "tcp"
    with pytest.raises(InvalidSpecError) as error:
        parse_valid_bluegreen(document)
    assert reported in str(error.value)


def test_a_preview_match_that_cannot_be_combined_with_service_match_is_refused() -> None:
    document = with_change("spec.preview", {"match": [{"uri": {"prefix": "/green"}}]})
    document["spec"]["service"]["match"] = [{"uri": {"prefix": "/api"}}]
    with pytest.raises(InvalidSpecError) as error:
        parse_valid_bluegreen(document)
    assert "spec.preview.match[0].uri" in str(error.value)
