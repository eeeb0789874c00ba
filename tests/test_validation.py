"""Validation names the field a user got wrong, accepts Flagger's documented examples, and feeds the typed spec."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.rollout.spec import HookType, Pause, SetWeight, Severity, canary_steps
from controller.rollout.validation import (
    COALMINE_API_VERSION,
    FLAGGER_API_VERSION,
    InvalidSpecError,
    Problem,
    is_checked_document,
    parse_valid_canary,
    validate_document,
)

ROOT = Path(__file__).resolve().parents[1]
FLAGGER_DIR = Path(__file__).parent / "manifests" / "flagger"
DELETE = object()

CANARY: dict[str, Any] = {
    "apiVersion": COALMINE_API_VERSION,
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": "test"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "autoscalerRef": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"},
        "service": {"port": 9898, "targetPort": 9898},
        "analysis": {
            "interval": "1m",
            "threshold": 5,
            "maxWeight": 50,
            "stepWeight": 10,
            "metrics": [
                {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 99}},
                {
                    "name": "error-ratio",
                    "templateRef": {"name": "error-ratio"},
                    "thresholdRange": {"max": 1},
                    "templateVariables": {"route": "/api"},
                },
            ],
            "webhooks": [
                {"name": "smoke", "type": "pre-rollout", "url": "http://tester.test/", "timeout": "30s"},
                {"name": "load", "url": "http://tester.test/", "metadata": {"cmd": "hey http://podinfo-canary/"}},
            ],
            "alerts": [{"name": "on-call", "severity": "warn", "providerRef": {"name": "slack"}}],
            "comparison": {"alpha": 0.01, "minRequests": 100, "errorRate": {"maxRelativeIncrease": 0.1}},
        },
    },
}
METRIC_TEMPLATE: dict[str, Any] = {
    "apiVersion": COALMINE_API_VERSION,
    "kind": "MetricTemplate",
    "metadata": {"name": "error-ratio"},
    "spec": {
        "provider": {"type": "prometheus", "address": "http://prometheus.istio-system:9090"},
        "query": 'sum(rate(errors{namespace="{{ namespace }}",route="{{ variables.route }}"}[{{ interval }}]))',
    },
}
ALERT_PROVIDER: dict[str, Any] = {
    "apiVersion": COALMINE_API_VERSION,
    "kind": "AlertProvider",
    "metadata": {"name": "slack"},
    "spec": {"type": "slack", "channel": "deploys", "address": "https://hooks.slack.com/services/T/B/X"},
}

_KEY = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def variant(base: dict[str, Any], *changes: tuple[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with each dotted ``path`` set to ``value`` (or removed with DELETE)."""
    document = copy.deepcopy(base)
    for path, value in changes:
        keys: list[str | int] = [name if name else int(index) for name, index in _KEY.findall(path)]
        node: Any = document
        for key in keys[:-1]:
            node = node[key]
        if value is DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = copy.deepcopy(value)
    return document


A = "spec.analysis"
M0 = f"{A}.metrics[0]"
M1 = f"{A}.metrics[1]"
W0 = f"{A}.webhooks[0]"
C = f"{A}.comparison"

# (document, field path the problem must be reported at, words the message must contain)
MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("wrong-version", variant(CANARY, ("apiVersion", "coalmine.dev/v1")), "apiVersion", "coalmine.dev/v1alpha1"),
    ("flagger-alpha", variant(CANARY, ("apiVersion", "flagger.app/v1alpha3")), "apiVersion", "flagger.app/v1beta1"),
    ("unknown-kind", variant(CANARY, ("kind", "Canry")), "kind", "Canary, MetricTemplate, AlertProvider"),
    ("no-name", variant(CANARY, ("metadata.name", DELETE)), "metadata.name", "is required"),
    ("bad-name", variant(CANARY, ("metadata.name", "My_App")), "metadata.name", "Kubernetes name"),
    ("no-spec", variant(CANARY, ("spec", DELETE)), "spec", "is required"),
    ("top-level-typo", variant(CANARY, ("sepc", {})), "sepc", "did you mean spec"),
    ("no-target", variant(CANARY, ("spec.targetRef", DELETE)), "spec.targetRef", "is required"),
    ("target-kind", variant(CANARY, ("spec.targetRef.kind", "DaemonSet")), "spec.targetRef.kind", "Deployment"),
    (
        "target-api",
        variant(CANARY, ("spec.targetRef.apiVersion", "apps/v1beta1")),
        "spec.targetRef.apiVersion",
        "apps/v1",
    ),
    ("target-no-name", variant(CANARY, ("spec.targetRef.name", DELETE)), "spec.targetRef.name", "is required"),
    (
        "scaler-kind",
        variant(CANARY, ("spec.autoscalerRef.kind", "ScaledObject")),
        "spec.autoscalerRef.kind",
        "HorizontalPodAutoscaler",
    ),
    (
        "scaler-api",
        variant(CANARY, ("spec.autoscalerRef.apiVersion", "keda.sh/v1alpha1")),
        "spec.autoscalerRef.apiVersion",
        "autoscaling/v2",
    ),
    (
        "scaler-replicas",
        variant(CANARY, ("spec.autoscalerRef.primaryScalerReplicas", {"minReplicas": 5, "maxReplicas": 2})),
        "spec.autoscalerRef.primaryScalerReplicas",
        "minReplicas (5) must be ≤ maxReplicas (2)",
    ),
    ("provider", variant(CANARY, ("spec.provider", "linkerd")), "spec.provider", "must be one of: istio"),
    ("deadline", variant(CANARY, ("spec.progressDeadlineSeconds", 0)), "spec.progressDeadlineSeconds", "≥ 1"),
    ("skip-string", variant(CANARY, ("spec.skipAnalysis", "true")), "spec.skipAnalysis", "true or false"),
    ("metrics-server", variant(CANARY, ("spec.metricsServer", "prometheus:9090")), "spec.metricsServer", "http://"),
    ("no-service", variant(CANARY, ("spec.service", DELETE)), "spec.service", "is required"),
    ("port-zero", variant(CANARY, ("spec.service.port", 0)), "spec.service.port", "must be ≥ 1"),
    ("port-high", variant(CANARY, ("spec.service.port", 65536)), "spec.service.port", "must be ≤ 65535"),
    ("port-name", variant(CANARY, ("spec.service.port", "http")), "spec.service.port", "whole number"),
    ("target-port-high", variant(CANARY, ("spec.service.targetPort", 70000)), "spec.service.targetPort", "65535"),
    (
        "target-port-name",
        variant(CANARY, ("spec.service.targetPort", "Http_Port")),
        "spec.service.targetPort",
        "port name",
    ),
    (
        "target-port-quoted",
        variant(CANARY, ("spec.service.targetPort", "8080")),
        "spec.service.targetPort",
        "without quotes",
    ),
    ("service-timeout", variant(CANARY, ("spec.service.timeout", "30")), "spec.service.timeout", "duration"),
    ("service-name", variant(CANARY, ("spec.service.name", "Podinfo")), "spec.service.name", "DNS label"),
    (
        "service-host-url",
        variant(CANARY, ("spec.service.hosts", ["https://app.example.com"])),
        "spec.service.hosts[0]",
        "host name",
    ),
    ("service-gateways", variant(CANARY, ("spec.service.gateways", "mesh")), "spec.service.gateways", "a list"),
    (
        "service-typo",
        variant(CANARY, ("spec.service.portname", "http")),
        "spec.service.portname",
        "did you mean portName",
    ),
    (
        "apex-label",
        variant(CANARY, ("spec.service.apex", {"labels": {"tier": 1}})),
        "spec.service.apex.labels.tier",
        "string",
    ),
    ("flagger-only", variant(CANARY, ("spec.service.delegation", True)), "spec.service.delegation", "Flagger field"),
    ("no-analysis", variant(CANARY, ("spec.analysis", DELETE)), A, "is required"),
    ("analysis-typo", variant(CANARY, ("spec.analysys", {})), "spec.analysys", "did you mean analysis"),
    ("both-analyses", variant(CANARY, ("spec.canaryAnalysis", {"interval": "1m"})), "spec.canaryAnalysis", "not both"),
    ("interval-zero", variant(CANARY, (f"{A}.interval", "0s")), f"{A}.interval", "longer than zero"),
    ("interval-short", variant(CANARY, (f"{A}.interval", "500ms")), f"{A}.interval", "at least 1s"),
    ("interval-words", variant(CANARY, (f"{A}.interval", "1 minute")), f"{A}.interval", "duration such as 30s"),
    ("interval-number", variant(CANARY, (f"{A}.interval", 60)), f"{A}.interval", "duration such as 30s"),
    ("threshold-zero", variant(CANARY, (f"{A}.threshold", 0)), f"{A}.threshold", "≥ 1"),
    ("threshold-float", variant(CANARY, (f"{A}.threshold", 2.5)), f"{A}.threshold", "whole number"),
    ("no-mode", variant(CANARY, (f"{A}.stepWeight", DELETE)), A, "needs one of stepWeight"),
    (
        "two-modes",
        variant(CANARY, (f"{A}.stepWeights", [10, 20])),
        f"{A}.stepWeights",
        "cannot be combined with stepWeight",
    ),
    ("weight-and-iterations", variant(CANARY, (f"{A}.iterations", 5)), f"{A}.iterations", "cannot be combined"),
    ("step-weight-zero", variant(CANARY, (f"{A}.stepWeight", 0)), f"{A}.stepWeight", "≥ 1"),
    ("step-weight-high", variant(CANARY, (f"{A}.stepWeight", 120)), f"{A}.stepWeight", "≤ 100"),
    ("max-weight-high", variant(CANARY, (f"{A}.maxWeight", 150)), f"{A}.maxWeight", "≤ 100"),
    ("max-below-step", variant(CANARY, (f"{A}.maxWeight", 5)), f"{A}.maxWeight", "≥ stepWeight (10)"),
    (
        "weights-not-increasing",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.stepWeights", [10, 20, 20])),
        f"{A}.stepWeights[2]",
        "strictly increasing",
    ),
    (
        "weights-over-100",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.stepWeights", [10, 200])),
        f"{A}.stepWeights[1]",
        "≤ 100",
    ),
    (
        "weights-empty",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.stepWeights", [])),
        f"{A}.stepWeights",
        "at least 1",
    ),
    (
        "steps-decreasing",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.steps", [{"setWeight": 50}, {"setWeight": 20}])),
        f"{A}.steps[1].setWeight",
        "lower than an earlier setWeight (50)",
    ),
    (
        "steps-only-pauses",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.steps", [{"pause": {}}])),
        f"{A}.steps",
        "at least one {setWeight: N}",
    ),
    (
        "step-two-keys",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.steps", [{"setWeight": 10, "pause": {}}])),
        f"{A}.steps[0]",
        "exactly one of: pause, setWeight",
    ),
    (
        "step-bad-pause",
        variant(
            CANARY,
            (f"{A}.stepWeight", DELETE),
            (f"{A}.steps", [{"setWeight": 10}, {"pause": {"duration": "forever"}}]),
        ),
        f"{A}.steps[1].pause.duration",
        "duration",
    ),
    (
        "step-typo",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.steps", [{"setWieght": 10}])),
        f"{A}.steps[0].setWieght",
        "did you mean setWeight",
    ),
    (
        "step-weight-101",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.steps", [{"setWeight": 101}])),
        f"{A}.steps[0].setWeight",
        "≤ 100",
    ),
    (
        "iterations-zero",
        variant(CANARY, (f"{A}.stepWeight", DELETE), (f"{A}.iterations", 0)),
        f"{A}.iterations",
        "≥ 1",
    ),
    (
        "match-without-iterations",
        variant(CANARY, (f"{A}.match", [{"headers": {"x-canary": {"exact": "1"}}}])),
        f"{A}.match",
        "needs iterations",
    ),
    (
        "mirror-with-match",
        variant(
            CANARY,
            (f"{A}.stepWeight", DELETE),
            (f"{A}.iterations", 10),
            (f"{A}.match", [{"headers": {"x-canary": {"exact": "1"}}}]),
            (f"{A}.mirror", True),
        ),
        f"{A}.mirror",
        "cannot be combined with match",
    ),
    ("mirror-weight", variant(CANARY, (f"{A}.mirrorWeight", 150)), f"{A}.mirrorWeight", "≤ 100"),
    ("mirror-string", variant(CANARY, (f"{A}.mirror", "yes")), f"{A}.mirror", "true or false"),
    ("ready-threshold", variant(CANARY, (f"{A}.primaryReadyThreshold", 101)), f"{A}.primaryReadyThreshold", "≤ 100"),
    (
        "affinity-cookie",
        variant(CANARY, (f"{A}.sessionAffinity", {"maxAge": 60})),
        f"{A}.sessionAffinity.cookieName",
        "is required",
    ),
    ("metric-no-name", variant(CANARY, (f"{M0}.name", DELETE)), f"{M0}.name", "is required"),
    ("metric-not-builtin", variant(CANARY, (f"{M0}.name", "error-rate")), f"{M0}.templateRef", "not a built-in"),
    ("metric-duplicate", variant(CANARY, (f"{M1}.name", "request-success-rate")), f"{M1}.name", "duplicate metric"),
    (
        "range-inverted",
        variant(CANARY, (f"{M0}.thresholdRange", {"min": 99, "max": 90})),
        f"{M0}.thresholdRange",
        "min (99)",
    ),
    ("range-empty", variant(CANARY, (f"{M0}.thresholdRange", {})), f"{M0}.thresholdRange", "needs min, max"),
    ("range-string", variant(CANARY, (f"{M0}.thresholdRange.min", "99")), f"{M0}.thresholdRange.min", "a number"),
    ("success-over-100", variant(CANARY, (f"{M0}.thresholdRange.min", 150)), f"{M0}.thresholdRange.min", "0..100"),
    (
        "range-typo",
        variant(CANARY, (f"{M0}.thresholdRange.minimum", 1)),
        f"{M0}.thresholdRange.minimum",
        "did you mean min",
    ),
    ("metric-interval", variant(CANARY, (f"{M0}.interval", "1x")), f"{M0}.interval", "duration"),
    ("metric-both-thresholds", variant(CANARY, (f"{M0}.threshold", 99)), f"{M0}.threshold", "not both"),
    ("metric-query-and-ref", variant(CANARY, (f"{M1}.query", "up")), f"{M1}.query", "not both"),
    (
        "template-no-name",
        variant(CANARY, (f"{M1}.templateRef", {"namespace": "x"})),
        f"{M1}.templateRef.name",
        "is required",
    ),
    (
        "template-var-int",
        variant(CANARY, (f"{M1}.templateVariables.retries", 3)),
        f"{M1}.templateVariables.retries",
        "quote",
    ),
    (
        "builtin-comparison",
        variant(CANARY, (f"{M0}.comparison", {"method": "msprt"})),
        f"{M0}.comparison",
        "analysis.comparison",
    ),
    (
        "comparison-method",
        variant(CANARY, (f"{M1}.comparison", {"method": "t-test"})),
        f"{M1}.comparison.method",
        "msprt",
    ),
    (
        "comparison-direction",
        variant(CANARY, (f"{M1}.comparison", {"direction": "up"})),
        f"{M1}.comparison.direction",
        "increase, decrease, either",
    ),
    ("comparison-points", variant(CANARY, (f"{M1}.comparison", {"minPoints": 2})), f"{M1}.comparison.minPoints", "≥ 3"),
    (
        "comparison-negative",
        variant(CANARY, (f"{M1}.comparison", {"maxRelativeIncrease": -0.1})),
        f"{M1}.comparison.maxRelativeIncrease",
        "≥ 0",
    ),
    ("webhook-type", variant(CANARY, (f"{W0}.type", "pre")), f"{W0}.type", "pre-rollout"),
    ("webhook-url-no-scheme", variant(CANARY, (f"{W0}.url", "tester.test/")), f"{W0}.url", "http://"),
    ("webhook-url-ftp", variant(CANARY, (f"{W0}.url", "ftp://tester.test/")), f"{W0}.url", "http://"),
    ("webhook-url-no-host", variant(CANARY, (f"{W0}.url", "http:///path")), f"{W0}.url", "with a host"),
    ("webhook-no-url", variant(CANARY, (f"{W0}.url", DELETE)), f"{W0}.url", "is required"),
    ("webhook-timeout", variant(CANARY, (f"{W0}.timeout", "10")), f"{W0}.timeout", "duration"),
    ("webhook-retries", variant(CANARY, (f"{W0}.retries", -1)), f"{W0}.retries", "≥ 0"),
    ("webhook-metadata", variant(CANARY, (f"{W0}.metadata", {"n": 1})), f"{W0}.metadata.n", "string"),
    (
        "webhook-duplicate",
        variant(CANARY, (f"{A}.webhooks[1].name", "smoke")),
        f"{A}.webhooks[1].name",
        "duplicate webhook",
    ),
    ("webhook-tls", variant(CANARY, (f"{W0}.disableTLS", True)), f"{W0}.disableTLS", "Flagger field"),
    (
        "alert-severity",
        variant(CANARY, (f"{A}.alerts[0].severity", "critical")),
        f"{A}.alerts[0].severity",
        "info, warn, error",
    ),
    (
        "alert-no-provider",
        variant(CANARY, (f"{A}.alerts[0].providerRef", DELETE)),
        f"{A}.alerts[0].providerRef",
        "is required",
    ),
    ("alpha-zero", variant(CANARY, (f"{C}.alpha", 0)), f"{C}.alpha", "must be > 0"),
    ("alpha-high", variant(CANARY, (f"{C}.alpha", 0.6)), f"{C}.alpha", "must be ≤ 0.5"),
    ("min-requests", variant(CANARY, (f"{C}.minRequests", 0)), f"{C}.minRequests", "≥ 1"),
    (
        "error-rate-negative",
        variant(CANARY, (f"{C}.errorRate.maxRelativeIncrease", -1)),
        f"{C}.errorRate.maxRelativeIncrease",
        "≥ 0",
    ),
    (
        "slow-threshold-zero",
        variant(CANARY, (f"{C}.latency", {"slowThresholdMs": 0})),
        f"{C}.latency.slowThresholdMs",
        "> 0",
    ),
    ("evidence-string", variant(CANARY, (f"{C}.requireEvidence", "yes")), f"{C}.requireEvidence", "true or false"),
    ("comparison-typo", variant(CANARY, (f"{C}.aplha", 0.05)), f"{C}.aplha", "did you mean alpha"),
    (
        "deprecated-analysis-checked",
        variant(
            CANARY,
            ("spec.canaryAnalysis", CANARY["spec"]["analysis"]),
            ("spec.analysis", DELETE),
            ("spec.canaryAnalysis.stepWeight", 0),
        ),
        "spec.canaryAnalysis.stepWeight",
        "≥ 1",
    ),
    ("mt-provider", variant(METRIC_TEMPLATE, ("spec.provider.type", "datadog")), "spec.provider.type", "prometheus"),
    ("mt-no-provider", variant(METRIC_TEMPLATE, ("spec.provider", DELETE)), "spec.provider", "is required"),
    ("mt-no-query", variant(METRIC_TEMPLATE, ("spec.query", DELETE)), "spec.query", "is required"),
    ("mt-empty-query", variant(METRIC_TEMPLATE, ("spec.query", "")), "spec.query", "must not be empty"),
    (
        "mt-address",
        variant(METRIC_TEMPLATE, ("spec.provider.address", "prometheus:9090")),
        "spec.provider.address",
        "http://",
    ),
    (
        "mt-secret",
        variant(METRIC_TEMPLATE, ("spec.provider.secretRef", {})),
        "spec.provider.secretRef.name",
        "is required",
    ),
    (
        "mt-skip-verify",
        variant(METRIC_TEMPLATE, ("spec.provider.insecureSkipVerify", "no")),
        "spec.provider.insecureSkipVerify",
        "true or false",
    ),
    (
        "mt-placeholder",
        variant(METRIC_TEMPLATE, ("spec.query", "up{job='{{ workload }}'}")),
        "spec.query",
        "unsupported placeholder {{ workload }}",
    ),
    ("mt-unclosed", variant(METRIC_TEMPLATE, ("spec.query", "up{job='{{ target }'}")), "spec.query", "unclosed {{"),
    (
        "mt-go-syntax",
        variant(METRIC_TEMPLATE, ("spec.query", "up{ns='{{ .Namespace }}'}")),
        "spec.query",
        "{{ .Namespace }}",
    ),
    (
        "mt-flagger-only",
        variant(METRIC_TEMPLATE, ("spec.provider.region", "eu")),
        "spec.provider.region",
        "Flagger field",
    ),
    ("ap-type", variant(ALERT_PROVIDER, ("spec.type", "pagerduty")), "spec.type", "slack, msteams"),
    ("ap-no-type", variant(ALERT_PROVIDER, ("spec.type", DELETE)), "spec.type", "is required"),
    ("ap-no-address", variant(ALERT_PROVIDER, ("spec.address", DELETE)), "spec.address", "unless secretRef"),
    ("ap-address", variant(ALERT_PROVIDER, ("spec.address", "hooks.slack.com/x")), "spec.address", "http://"),
    ("ap-proxy", variant(ALERT_PROVIDER, ("spec.proxy", "socks5://proxy:1080")), "spec.proxy", "http://"),
    ("ap-channel", variant(ALERT_PROVIDER, ("spec.channel", 5)), "spec.channel", "string"),
    ("ap-unknown", variant(ALERT_PROVIDER, ("spec.webhook", "x")), "spec.webhook", "unknown field"),
    ("ap-secret", variant(ALERT_PROVIDER, ("spec.secretRef", {"key": "x"})), "spec.secretRef.name", "is required"),
]


def test_the_base_documents_are_valid() -> None:
    for document in (CANARY, METRIC_TEMPLATE, ALERT_PROVIDER):
        report = validate_document(document)
        assert report.problems == () and report.warnings == (), report


def test_there_are_at_least_forty_malformed_documents() -> None:
    assert len(MALFORMED) >= 40
    assert len({case_id for case_id, *_ in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize(("document", "path", "words"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_document_is_rejected_at_the_right_field(document: dict[str, Any], path: str, words: str) -> None:
    report = validate_document(document)
    assert not report.valid
    messages = {problem.path: problem.message for problem in report.problems}
    assert path in messages, report.problems
    assert words in messages[path]


SAME_VERSION = [case for case in MALFORMED if case[1]["apiVersion"] == COALMINE_API_VERSION]


@pytest.mark.parametrize("document", [case[1] for case in SAME_VERSION], ids=[case[0] for case in SAME_VERSION])
def test_malformed_flagger_document_is_rejected_the_same_way(document: dict[str, Any]) -> None:
    flagger = {**document, "apiVersion": FLAGGER_API_VERSION}
    assert validate_document(flagger).problems == validate_document(document).problems


def test_every_problem_in_a_document_is_reported_at_once() -> None:
    document = variant(
        CANARY,
        (f"{A}.threshold", 0),
        (f"{W0}.url", "tester"),
        (f"{M0}.thresholdRange", {"min": 99, "max": 1}),
        ("spec.service.port", 0),
    )
    paths = {problem.path for problem in validate_document(document).problems}
    assert paths == {f"{A}.threshold", f"{W0}.url", f"{M0}.thresholdRange", "spec.service.port"}


def test_a_field_with_the_wrong_type_gets_one_problem_not_two() -> None:
    report = validate_document(variant(CANARY, (f"{A}.interval", 60)))
    assert [problem.path for problem in report.problems] == [f"{A}.interval"]


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        (
            (("spec.canaryAnalysis", CANARY["spec"]["analysis"]), ("spec.analysis", DELETE)),
            "spec.canaryAnalysis",
            "rename",
        ),
        (((f"{M0}.threshold", 99), (f"{M0}.thresholdRange", DELETE)), f"{M0}.threshold", "use thresholdRange"),
        (
            ((f"{M1}.query", "sum(rate(x[1m]))"), (f"{M1}.templateRef", DELETE), (f"{M1}.templateVariables", DELETE)),
            f"{M1}.query",
            "MetricTemplate",
        ),
        (((f"{A}.interval", "5s"),), f"{A}.interval", "Flagger's minimum of 10s"),
        (((f"{A}.stepWeight", DELETE), (f"{A}.stepWeights", [5, 10])), f"{A}.maxWeight", "ignored with stepWeights"),
        (((f"{A}.mirrorWeight", 50),), f"{A}.mirrorWeight", "unless mirror is true"),
        (((f"{M0}.thresholdRange", DELETE),), M0, "only fail when its query returns no data"),
    ],
    ids=["canaryAnalysis", "threshold", "query", "short-interval", "maxWeight-ignored", "mirrorWeight", "no-range"],
)
def test_questionable_but_accepted_forms_give_warnings(
    changes: tuple[tuple[str, Any], ...], path: str, words: str
) -> None:
    report = validate_document(variant(CANARY, *changes))
    assert report.valid, report.problems
    assert any(warning.path == path and words in warning.message for warning in report.warnings), report.warnings


def _flagger_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(FLAGGER_DIR.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            found.append((f"{path.stem}-{index}", document))
    return found


FLAGGER_DOCUMENTS = _flagger_documents()


def test_the_flagger_examples_cover_every_kind() -> None:
    kinds = [document["kind"] for _, document in FLAGGER_DOCUMENTS]
    assert sorted(set(kinds)) == ["AlertProvider", "Canary", "MetricTemplate"]
    assert kinds.count("Canary") >= 4


@pytest.mark.parametrize("document", [d for _, d in FLAGGER_DOCUMENTS], ids=[i for i, _ in FLAGGER_DOCUMENTS])
def test_flagger_documented_example_is_accepted_as_is_and_as_coalmine(document: dict[str, Any]) -> None:
    assert document["apiVersion"] == FLAGGER_API_VERSION
    as_flagger = validate_document(document)
    assert (as_flagger.valid, as_flagger.flagger, as_flagger.warnings) == (True, True, ()), as_flagger
    as_coalmine = validate_document({**document, "apiVersion": COALMINE_API_VERSION})
    assert (as_coalmine.valid, as_coalmine.flagger, as_coalmine.warnings) == (True, False, ()), as_coalmine


def _load(name: str, index: int = 0) -> dict[str, Any]:
    documents: list[dict[str, Any]] = list(yaml.safe_load_all((FLAGGER_DIR / name).read_text()))
    return documents[index]


@pytest.mark.parametrize("api_version", [FLAGGER_API_VERSION, COALMINE_API_VERSION])
def test_progressive_example_parses_to_flagger_semantics(api_version: str) -> None:
    spec = parse_valid_canary({**_load("podinfo-progressive.yaml"), "apiVersion": api_version})
    assert spec.target_ref.name == "podinfo" and spec.target_ref.kind == "Deployment"
    assert spec.autoscaler_ref is not None and spec.autoscaler_ref.kind == "HorizontalPodAutoscaler"
    assert spec.progress_deadline_s == 60
    assert spec.service.port == 9898 and spec.service.target_port == 9898
    assert spec.service.hosts == ("app.example.com",)
    assert spec.service.retries == {
        "attempts": 3,
        "perTryTimeout": "1s",
        "retryOn": "gateway-error,connect-failure,refused-stream",
    }
    analysis = spec.analysis
    assert (analysis.interval_s, analysis.threshold, analysis.step_weight, analysis.max_weight) == (60, 5, 10, 50)
    assert canary_steps(analysis) == tuple(SetWeight(weight) for weight in (10, 20, 30, 40, 50))
    success, duration = analysis.metrics
    assert (success.name, success.threshold_min, success.threshold_max, success.interval_s) == (
        "request-success-rate",
        99,
        None,
        60,
    )
    assert (duration.threshold_max, duration.interval_s, duration.is_builtin) == (500, 30, True)
    smoke, load = analysis.webhooks
    assert (smoke.type, smoke.timeout_s, smoke.metadata["type"]) == (HookType.PRE_ROLLOUT, 30, "bash")
    assert (load.type, load.timeout_s) == (HookType.ROLLOUT, 5)


def test_ab_testing_example_parses_to_iterations_and_match() -> None:
    spec = parse_valid_canary(_load("abtest.yaml"))
    assert spec.analysis.iterations == 10 and spec.analysis.threshold == 10
    assert spec.analysis.match[0] == {"headers": {"x-canary": {"regex": ".*insider.*"}}}
    assert len(spec.analysis.match) == 2
    assert canary_steps(spec.analysis) == ()


def test_mirroring_example_parses_to_a_mirrored_blue_green() -> None:
    spec = parse_valid_canary(_load("bluegreen-mirror.yaml"))
    assert (spec.analysis.iterations, spec.analysis.mirror, spec.analysis.mirror_weight) == (10, True, 100)
    assert spec.analysis.match == ()


def test_custom_metric_and_alert_example_parses_references() -> None:
    spec = parse_valid_canary(_load("metric-template-and-alerts.yaml", 2))
    [metric] = spec.analysis.metrics
    assert metric.template_ref is not None
    assert (metric.template_ref.name, metric.template_ref.namespace) == ("not-found-percentage", "istio-system")
    assert not metric.is_builtin and metric.threshold_max == 5
    [alert] = spec.analysis.alerts
    assert (alert.severity, alert.provider_ref.name, alert.provider_ref.namespace) == (
        Severity.ERROR,
        "on-call",
        "flagger",
    )


def test_coalmine_example_parses_steps_and_comparison() -> None:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "podinfo-canary.yaml").read_text()))
    spec = parse_valid_canary(documents[1])
    assert canary_steps(spec.analysis) == (SetWeight(5), Pause(600), SetWeight(25), SetWeight(50), Pause(None))
    comparison = spec.analysis.comparison
    assert comparison is not None and comparison.require_evidence
    assert comparison.latency is not None and comparison.latency.slow_threshold_ms == 250
    assert spec.analysis.metrics[2].comparison is not None
    assert spec.analysis.metrics[2].comparison.method == "mann-whitney"


def test_flagger_empty_enum_values_mean_the_defaults() -> None:
    document = variant(CANARY, (f"{W0}.type", ""), (f"{A}.alerts[0].severity", ""))
    spec = parse_valid_canary(document)
    assert spec.analysis.webhooks[0].type == HookType.ROLLOUT
    assert spec.analysis.alerts[0].severity == Severity.INFO
    assert document["spec"]["analysis"]["webhooks"][0]["type"] == "", "the caller's document is not modified"


def test_deprecated_threshold_is_read_as_a_minimum_for_success_rate() -> None:
    spec = parse_valid_canary(variant(CANARY, (f"{M0}.thresholdRange", DELETE), (f"{M0}.threshold", 95)))
    assert spec.analysis.metrics[0].threshold_min == 95


def test_parse_valid_canary_refuses_an_invalid_spec_with_every_problem() -> None:
    document = variant(CANARY, (f"{A}.threshold", 0), ("spec.provider", "nginx"))
    with pytest.raises(InvalidSpecError) as caught:
        parse_valid_canary(document)
    assert {problem.path for problem in caught.value.problems} == {f"{A}.threshold", "spec.provider"}
    assert "spec.provider: must be one of: istio" in str(caught.value)


def test_parse_valid_canary_refuses_other_kinds() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        parse_valid_canary(METRIC_TEMPLATE)
    assert caught.value.problems == (Problem("kind", "must be Canary (got 'MetricTemplate')"),)


def test_only_coalmine_and_flagger_groups_are_checked() -> None:
    assert is_checked_document(CANARY)
    assert is_checked_document({**CANARY, "apiVersion": FLAGGER_API_VERSION})
    assert not is_checked_document({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert not is_checked_document(["not", "a", "mapping"])
    report = validate_document({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})
    assert [problem.path for problem in report.problems] == ["apiVersion", "kind"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
FIELD_PATHS = [
    "spec",
    "spec.service",
    "spec.targetRef",
    "spec.analysis",
    "spec.analysis.steps",
    "spec.analysis.stepWeights",
    "spec.analysis.metrics",
    f"{M0}.thresholdRange",
    f"{M1}.comparison",
    "spec.analysis.webhooks",
    f"{W0}.url",
    "spec.analysis.alerts",
    "spec.analysis.comparison",
    "metadata",
]


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(FIELD_PATHS), value=JSON_VALUES)
def test_any_garbage_is_reported_never_raised(path: str, value: Any) -> None:
    report = validate_document(variant(CANARY, (path, value)))
    assert all(problem.path and problem.message for problem in report.problems)
    if report.valid:
        parse_valid_canary(variant(CANARY, (path, value)))
