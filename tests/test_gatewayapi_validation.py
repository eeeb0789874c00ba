"""Gateway API as a provider: what a user writes is accepted, means what it means in Flagger, or is refused naming
the field — and a route a Gateway does not accept holds the rollout instead of "progressing" on traffic that does
not move."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from rollout_world import PASS, Run, make_spec
from typer.testing import CliRunner

from controller.cli.main import app
from controller.rollout.decision import EventType, Reason
from controller.rollout.phases import Hold, Phase
from controller.rollout.provider_rules import with_default_provider
from controller.rollout.spec import metrics_query_set
from controller.rollout.validation import parse_valid_canary, validate_document
from controller.routers import ROUTERS
from controller.routers.gatewayapi import GatewayApiRouter

FLAGGER_GATEWAY_API = Path(__file__).resolve().parent / "manifests" / "flagger-gatewayapi"
MANIFESTS = sorted(FLAGGER_GATEWAY_API.glob("*.yaml"))
MINUTE = 60.0


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def _coalmine(document: dict[str, Any], provider: str = "gatewayapi:v1") -> dict[str, Any]:
    """The Flagger Canary with only its apiVersion changed, and the provider Flagger's -mesh-provider gave it."""
    changed = copy.deepcopy(document)
    changed["apiVersion"] = "coalmine.dev/v1alpha1"
    changed["spec"]["provider"] = provider
    return changed


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.stem)
def test_flaggers_gateway_api_canaries_are_accepted_and_routed_by_an_httproute(manifest: Path) -> None:
    document = _load(manifest)
    with_default = with_default_provider(document, "gatewayapi:v1")
    report = validate_document(with_default)
    assert report.valid, report.problems
    spec = parse_valid_canary(_coalmine(document))
    assert spec.provider == "gatewayapi:v1"
    assert [dict(ref) for ref in spec.service.gateway_refs] == document["spec"]["service"]["gatewayRefs"]
    router = ROUTERS[spec.provider](None, spec, {"metadata": {"name": "podinfo", "namespace": "test"}})  # type: ignore[arg-type]
    assert isinstance(router, GatewayApiRouter)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda path: path.stem)
def test_without_a_gateway_api_provider_gateway_refs_are_refused_not_ignored(manifest: Path) -> None:
    report = validate_document(_load(manifest))
    assert [problem.path for problem in report.problems] == ["spec.service.gatewayRefs"]
    assert "--default-provider gatewayapi:v1" in report.problems[0].message


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("retries", {"attempts": 3, "perTryTimeout": "1s"}, "no retry field"),
        ("trafficPolicy", {"tls": {"mode": "ISTIO_MUTUAL"}}, "DestinationRule"),
        ("corsPolicy", {"allowOrigins": [{"exact": "https://a.example"}]}, "CORS"),
        ("gateways", ["istio-system/public"], "gatewayRefs"),
    ],
)
def test_what_an_httproute_cannot_carry_is_refused_naming_the_field(field: str, value: Any, why: str) -> None:
    document = _coalmine(_load(FLAGGER_GATEWAY_API / "progressive.yaml"))
    document["spec"]["service"][field] = value
    report = validate_document(document)
    messages = {problem.path: problem.message for problem in report.problems}
    assert f"spec.service.{field}" in messages, report.problems
    assert why in messages[f"spec.service.{field}"]


def test_the_query_set_is_istio_unless_named_and_validate_says_so_for_built_in_metrics() -> None:
    document = _coalmine(_load(FLAGGER_GATEWAY_API / "bluegreen-contour.yaml"))
    report = validate_document(document)
    assert report.valid
    assert "spec.analysis.querySet" in [warning.path for warning in report.warnings]
    assert metrics_query_set(parse_valid_canary(document)) == "istio"  # Flagger's meaning
    document["spec"]["analysis"]["querySet"] = "envoy"
    report = validate_document(document)
    assert report.valid and "spec.analysis.querySet" not in [warning.path for warning in report.warnings]
    assert metrics_query_set(parse_valid_canary(document)) == "envoy"
    istio = copy.deepcopy(document)
    istio["spec"]["provider"] = "istio"
    del istio["spec"]["service"]["gatewayRefs"]
    paths = [problem.path for problem in validate_document(istio).problems]
    assert paths == ["spec.analysis.querySet"]  # Istio's sidecars do not report Contour's cluster names


def test_an_unknown_provider_is_refused_naming_the_field() -> None:
    document = _coalmine(_load(FLAGGER_GATEWAY_API / "progressive.yaml"), provider="contour")
    assert "spec.provider" in [problem.path for problem in validate_document(document).problems]


def test_validate_takes_the_operators_default_provider() -> None:
    runner = CliRunner()
    refused = runner.invoke(app, ["validate", str(FLAGGER_GATEWAY_API)])
    assert refused.exit_code == 1 and "spec.service.gatewayRefs" in refused.output
    accepted = runner.invoke(app, ["validate", "--default-provider", "gatewayapi:v1", str(FLAGGER_GATEWAY_API)])
    assert accepted.exit_code == 0, accepted.output
    assert "4 document(s) checked, 0 invalid" in accepted.output


def test_a_route_the_gateway_does_not_accept_holds_the_rollout_and_says_why() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 20}, progressDeadlineSeconds=300)).progressing()
    run.tick(advance=MINUTE)
    assert run.status.canary_weight == 20
    refused = "Gateway istio-ingress/gateway did not accept the route: NotAllowedByListeners"
    run.world.route_problem = refused
    held = run.tick(verdict=PASS, advance=MINUTE)
    assert held.status.hold is Hold.ROUTE_NOT_ACCEPTED and held.status.canary_weight == 20
    assert [(e.type, e.reason) for e in held.events] == [(EventType.WARNING, Reason.ROUTE_NOT_ACCEPTED)]
    assert refused in held.status.message
    ready = held.status.condition("Ready")
    assert ready is not None and refused in ready.message
    again = run.tick(verdict=PASS, advance=MINUTE)
    assert again.events == () and again.status.canary_weight == 20, "one Event, no step on traffic that is not moving"
    run.world.route_problem = None
    moved = run.tick(verdict=PASS, advance=MINUTE)
    assert moved.status.hold is None and moved.status.canary_weight == 40


def test_a_route_that_stays_refused_is_rolled_back_at_the_deadline() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 20}, progressDeadlineSeconds=300)).progressing()
    run.tick(advance=MINUTE)
    run.world.route_problem = "HTTPRoute podinfo: backend podinfo-canary not found (ResolvedRefs: BackendNotFound)"
    for _ in range(5):
        run.tick(verdict=PASS, advance=MINUTE)
    assert run.status.phase is Phase.PROGRESSING
    assert run.tick(verdict=PASS, advance=MINUTE).status.phase is Phase.FAILED
    assert "Progress deadline exceeded" in run.status.message
