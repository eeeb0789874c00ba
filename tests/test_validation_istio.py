"""The Istio fields a Canary passes through are held to Istio's real CRD schema, CEL rules included.

The reference is Istio's published ``customresourcedefinitions.gen.yaml`` (unmodified, istio/api); Coalmine ships
the part it needs, and these tests prove the shipped copy is that part, and that what the API server would refuse
(``perTryTimeout: 0s``) or silently prune (``perTryTimout``) is refused by ``coalmine validate`` and the operator.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.rollout.istio_schema import istio_problems, shipped_rules
from controller.rollout.kinds import BLUEGREEN, CANARY
from controller.rollout.spec import parse_canary_spec
from controller.rollout.validation import COALMINE_API_VERSION, InvalidSpecError, validate_document
from controller.routers.istio import build_destination_rules, build_virtual_service
from controller.schema import extract_istio
from controller.schema.cel import UnsupportedRule, compile_rule, go_duration_ns

REFERENCE = Path("/work/shared/reference/crds/istio")
ROOT = Path(__file__).resolve().parents[1]

SERVICE: dict[str, Any] = {
    "port": 9898,
    "hosts": ["app.example.com"],
    "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
    "match": [{"uri": {"prefix": "/api"}}],
    "rewrite": {"uri": "/"},
    "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
    "timeout": "5s",
    "headers": {"request": {"add": {"x-envoy-upstream-rq-timeout-ms": "15000"}}, "response": {"remove": ["x-b3"]}},
    "corsPolicy": {"allowOrigins": [{"exact": "https://example.com"}], "allowMethods": ["GET"], "maxAge": "24h"},
    "trafficPolicy": {
        "tls": {"mode": "ISTIO_MUTUAL"},
        "connectionPool": {"http": {"http1MaxPendingRequests": 10}, "tcp": {"connectTimeout": "1s"}},
    },
}


def canary(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": COALMINE_API_VERSION,
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": copy.deepcopy(service if service is not None else SERVICE),
            "analysis": analysis or {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
        },
    }


def problems(document: dict[str, Any]) -> dict[str, str]:
    return {problem.path: problem.message for problem in validate_document(document).problems}


def with_service(**fields: Any) -> dict[str, Any]:
    return canary({**copy.deepcopy(SERVICE), **fields})


# -- the shipped copy is the reference's ---------------------------------------------------------------------------


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs the reference Istio CRDs")
def test_the_shipped_schema_is_the_reference_crds_part_unchanged() -> None:
    with (REFERENCE / "customresourcedefinitions.gen.yaml").open(encoding="utf-8") as handle:
        expected = extract_istio.render(extract_istio.extract(yaml.safe_load_all(handle)))
    assert extract_istio.SHIPPED.read_text(encoding="utf-8") == expected
    assert (extract_istio.SHIPPED.parent / "LICENSE").read_bytes() == (REFERENCE / "LICENSE").read_bytes()


def test_the_shipped_schema_is_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"schema/istio/*.json"' in text and '"schema/istio/LICENSE"' in text


def test_every_cel_rule_of_the_shipped_schema_compiles_with_the_functions_we_provide() -> None:
    rules = shipped_rules()
    assert "duration(self) >= duration('1ms')" in rules
    for rule in rules:
        compile_rule(rule)  # raises UnsupportedRule for a function neither CEL nor our Kubernetes library has
    with pytest.raises(UnsupportedRule):
        compile_rule("self.isFrobnicated()")


@pytest.mark.parametrize(
    ("text", "ns"),
    [("1ms", 1_000_000), ("1h30m", 5_400_000_000_000), ("1.5s", 1_500_000_000), ("0", 0), ("-2s", -2_000_000_000)],
)
def test_durations_are_parsed_like_kubernetes_go_durations(text: str, ns: int) -> None:
    assert go_duration_ns(text) == ns


@pytest.mark.parametrize("text", ["1d", "", "10", "1 s", "s", "1.s.", "ms"])
def test_durations_kubernetes_refuses_are_refused(text: str) -> None:
    assert go_duration_ns(text) is None


# -- what the API server would refuse or prune is refused, naming the Canary's field ------------------------------


def test_a_full_set_of_pass_through_fields_is_accepted() -> None:
    assert problems(canary()) == {}


def test_per_try_timeout_zero_is_refused_by_istios_cel_rule() -> None:
    found = problems(with_service(retries={"attempts": 3, "perTryTimeout": "0s"}))
    assert found == {"spec.service.retries.perTryTimeout": "must be a valid duration greater than 1ms (got '0s')"}


def test_a_misspelt_istio_field_is_refused_not_pruned() -> None:
    found = problems(with_service(retries={"attempts": 3, "perTryTimout": "1s"}))
    assert list(found) == ["spec.service.retries.perTryTimout"]
    assert "did you mean perTryTimeout?" in found["spec.service.retries.perTryTimout"]


def test_the_operator_refuses_the_same_spec_with_the_same_field() -> None:
    for retries, field in (
        ({"perTryTimeout": "0s"}, "spec.service.retries.perTryTimeout"),
        ({"perTryTimout": "1s"}, "spec.service.retries.perTryTimout"),
    ):
        with pytest.raises(InvalidSpecError) as caught:
            CANARY.parse(with_service(retries=retries))
        assert [problem.path for problem in caught.value.problems] == [field]


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"timeout": "0s"}, "spec.service.timeout"),
        ({"timeout": "1d"}, "spec.service.timeout"),
        ({"corsPolicy": {"maxAge": "0.5ms"}}, "spec.service.corsPolicy.maxAge"),
        ({"corsPolicy": {"allowOrigns": [{"exact": "https://x"}]}}, "spec.service.corsPolicy.allowOrigns"),
        ({"rewrite": {"url": "/"}}, "spec.service.rewrite.url"),
        ({"headers": {"request": {"add": {"x": 1}}}}, "spec.service.headers.request.add.x"),
        ({"retries": {"attempts": "three"}}, "spec.service.retries.attempts"),
        ({"retries": {"backoff": "0ms"}}, "spec.service.retries.backoff"),
        ({"match": [{"uri": {"prefx": "/api"}}]}, "spec.service.match[0].uri.prefx"),
        ({"match": [{"header": {"x": {"exact": "y"}}}]}, "spec.service.match[0].header"),
        ({"match": [{"uri": "/api"}]}, "spec.service.match[0].uri"),
        ({"trafficPolicy": {"tls": {"mode": "MUTUAL_TLS"}}}, "spec.service.trafficPolicy.tls.mode"),
        (
            {"trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "0s"}}}},
            "spec.service.trafficPolicy.connectionPool.tcp.connectTimeout",
        ),
        (
            {"trafficPolicy": {"outlierDetection": {"baseEjectionTime": "1d"}}},
            "spec.service.trafficPolicy.outlierDetection.baseEjectionTime",
        ),
        ({"trafficPolicy": {"loadBalancr": {"simple": "LEAST_REQUEST"}}}, "spec.service.trafficPolicy.loadBalancr"),
        ({"hosts": [7]}, "spec.service.hosts[0]"),
    ],
)
def test_each_pass_through_field_is_checked_against_istio(fields: dict[str, Any], path: str) -> None:
    found = problems(with_service(**fields))
    assert path in found, found


def test_analysis_match_is_checked_against_istio() -> None:
    analysis = {"interval": "1m", "iterations": 5, "match": [{"headers": {"x-canary": {"exactt": "insider"}}}]}
    found = problems(canary({"port": 9898}, analysis))
    assert list(found) == ["spec.analysis.match[0].headers.x-canary.exactt"]


def test_a_bluegreen_is_held_to_the_same_schema() -> None:
    document = {
        "apiVersion": COALMINE_API_VERSION,
        "kind": "BlueGreen",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, "retries": {"perTryTimeout": "0s"}},
            "preview": {"match": [{"headers": {"x": {"regexx": "y"}}}]},
            "prePromotionAnalysis": {"iterations": 3},
        },
    }
    found = problems(document)
    assert "spec.service.retries.perTryTimeout" in found
    assert "spec.preview.match[0].headers.x.regexx" in found
    with pytest.raises(InvalidSpecError):
        BLUEGREEN.parse(document)


# -- the router's real output passes the same schema --------------------------------------------------------------


def test_what_the_router_writes_from_an_accepted_spec_passes_istios_schema() -> None:
    document = canary(analysis={"interval": "1m", "iterations": 5, "match": [{"headers": {"x": {"exact": "1"}}}]})
    assert problems(document) == {}
    spec = parse_canary_spec(document["spec"])
    vs = build_virtual_service(spec, "podinfo", "test")
    assert istio_problems("VirtualService", "", vs) == []
    for rule in build_destination_rules(spec, "test"):
        assert istio_problems("DestinationRule", "", rule) == []


def test_the_whole_object_check_would_catch_a_router_bug() -> None:
    vs = build_virtual_service(parse_canary_spec(canary()["spec"]), "podinfo", "test")
    broken = json.loads(json.dumps(vs))
    broken["spec"]["http"][0]["retries"]["perTryTimeout"] = "0s"
    found = istio_problems("VirtualService", "", broken)
    assert [problem.path for problem in found] == ["spec.http[0].retries.perTryTimeout"]
