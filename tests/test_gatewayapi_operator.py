"""The operator end to end on Gateway API: the emulated API server has Gateway API's real CRDs installed (its
schema and CEL rules check every HTTPRoute the operator writes), the operator runs with the Gateway API router.

Weights step and promote, a failing check rolls back, A/B routes matching requests to the canary, a mirror copies
traffic, a BlueGreen switches, a Flagger Canary without ``spec.provider`` is routed by ``--default-provider``, and a
route a Gateway does not accept holds the rollout with an Event instead of "progressing".
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    VIRTUAL_SERVICES,
    History,
    ScriptedPrometheus,
    canary,
    deployment,
    events_of,
    image_of,
    new_image,
    operator,
    scripted_prometheus,
    status_of,
    test_config,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.timeout(90)

HTTPROUTES = "gateway.networking.k8s.io/v1/httproutes"
BLUEGREENS = "coalmine.dev/v1alpha1/bluegreens"
STEPS = [(100, 0), (75, 25), (50, 50), (25, 75), (100, 0)]
GATEWAY = {"provider": "gatewayapi:v1"}
SERVICE = {"port": 9898, "hosts": ["www.example.com"], "gatewayRefs": [{"name": "gateway", "namespace": "ingress"}]}


@pytest.fixture
def prom() -> Any:
    with scripted_prometheus() as responder:
        yield responder


def route_of(emulator: CoalmineEmulator, name: str = "podinfo") -> dict[str, Any] | None:
    route: dict[str, Any] | None = emulator.read_object(HTTPROUTES, NS, name)
    return route


def rule(route: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    for item in ((route or {}).get("spec") or {}).get("rules") or ():
        if item.get("name") == name:
            found: dict[str, Any] = item
            return found
    return None


def route_weights(route: dict[str, Any] | None) -> tuple[int, int] | None:
    weighted = rule(route, "weighted")
    if weighted is None:
        return None
    by_name = {ref["name"].rsplit("-", 1)[-1]: int(ref.get("weight", 1)) for ref in weighted["backendRefs"]}
    return by_name["primary"], by_name["canary"]


def history_weights(history: History, name: str = "podinfo") -> list[tuple[int, int]]:
    seen: list[tuple[int, int]] = []
    for write in history.of("/httproutes", name):
        weights = route_weights(write.obj) if write.kind != "DELETED" else None
        if weights is not None and (not seen or seen[-1] != weights):
            seen.append(weights)
    return seen


def bluegreen_phase(emulator: CoalmineEmulator) -> str:
    return str(((emulator.read_object(BLUEGREENS, NS, "podinfo") or {}).get("status") or {}).get("phase", ""))


def gateway_canary(name: str = "podinfo", **changes: Any) -> dict[str, Any]:
    document = canary(name, **GATEWAY, **changes)
    document["spec"]["service"] = copy.deepcopy(SERVICE)
    document["spec"]["analysis"]["querySet"] = "istio"
    return document


async def test_weights_step_on_the_httproute_and_the_release_is_promoted(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    history = History.install(emulator)
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, gateway_canary(), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        route = route_of(emulator)
        assert route is not None and route_weights(route) == (100, 0)
        assert route["spec"]["parentRefs"] == [
            {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway", "namespace": "ingress"}
        ]
        assert route["spec"]["hostnames"] == ["www.example.com"]
        assert route["metadata"]["ownerReferences"][0]["kind"] == "Canary"
        assert emulator.read_object(VIRTUAL_SERVICES, NS, "podinfo") is None, "no Istio object on Gateway API"
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
    assert history_weights(history) == STEPS
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:2"


async def test_a_failing_check_rolls_the_httproute_back(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    history = History.install(emulator)
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, gateway_canary(), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        prom.script("podinfo", success_rate=80.0)
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_phase(emulator, "podinfo", "Failed", timeout=30)
    assert history_weights(history) == [(100, 0), (75, 25), (100, 0)]
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:1"


async def test_ab_testing_routes_matching_requests_to_the_canary(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    match = [{"headers": {"x-canary": {"exact": "insider"}}}]
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(
        CANARIES,
        gateway_canary(analysis={"stepWeight": None, "maxWeight": None, "iterations": 3, "match": match}),
        NS,
    )
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        new_image(emulator, "podinfo", "podinfo:2")

        def matched() -> dict[str, Any] | None:
            found = rule(route_of(emulator), "canary-match")
            return (
                found
                if found
                and any(int(r.get("weight", 1)) == 100 and r["name"].endswith("-canary") for r in found["backendRefs"])
                else None
            )

        ab = await wait_for("the canary-match rule sending insiders to the canary", matched)
        assert {"name": "x-canary", "type": "Exact", "value": "insider"} in ab["matches"][0]["headers"]
        assert route_weights(route_of(emulator)) == (100, 0), "everyone else stays on the primary"
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
        final = rule(route_of(emulator), "canary-match")
        assert final is None or all(
            not r["name"].endswith("-canary") or int(r.get("weight", 1)) == 0 for r in final["backendRefs"]
        )


async def test_mirroring_copies_traffic_to_the_canary(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, gateway_canary(analysis={"mirror": True, "mirrorWeight": 50}), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        new_image(emulator, "podinfo", "podinfo:2")

        def mirroring() -> dict[str, Any] | None:
            weighted = rule(route_of(emulator), "weighted") or {}
            for item in weighted.get("filters") or ():
                if item.get("type") == "RequestMirror":
                    found: dict[str, Any] = item["requestMirror"]
                    return found
            return None

        mirror = await wait_for("a RequestMirror filter", mirroring)
        assert mirror["backendRef"]["name"] == "podinfo-canary" and mirror.get("percent") == 50
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
        assert mirroring() is None


async def test_a_flagger_canary_without_a_provider_is_routed_by_the_default_provider(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    document = gateway_canary()
    del document["spec"]["provider"]
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, document, NS)
    async with operator(emulator, test_config(prom, default_provider="gatewayapi:v1")):
        await wait_phase(emulator, "podinfo", "Initialized")
        assert route_weights(route_of(emulator)) == (100, 0)


async def test_a_route_the_gateway_refuses_holds_the_rollout_with_an_event(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, gateway_canary(), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        route = route_of(emulator)
        assert route is not None
        refused = {
            "parents": [
                {
                    "parentRef": {
                        "group": "gateway.networking.k8s.io",
                        "kind": "Gateway",
                        "name": "gateway",
                        "namespace": "ingress",
                    },
                    "controllerName": "example.com/gateway-controller",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "False",
                            "reason": "NotAllowedByListeners",
                            "message": "no listener allows routes from namespace test",
                            "observedGeneration": route["metadata"].get("generation", 1),
                            "lastTransitionTime": "2026-12-07T00:00:00Z",
                        }
                    ],
                }
            ]
        }
        emulator.patch_object(HTTPROUTES, NS, "podinfo", {"status": refused}, subresource="status")
        new_image(emulator, "podinfo", "podinfo:2")
        held = await wait_for(
            "the RouteNotAccepted hold",
            lambda: (s := status_of(emulator, "podinfo")).get("hold") == "RouteNotAccepted" and s,
        )
        assert "NotAllowedByListeners" in held["message"]
        await wait_for(
            "the Warning Event",
            lambda: any(reason == "RouteNotAccepted" for reason, _ in events_of(emulator, "podinfo")),
        )
        assert status_of(emulator, "podinfo")["canaryWeight"] == 0, "no step on traffic that does not move"


async def test_a_bluegreen_switches_on_the_httproute(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    history = History.install(emulator)
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    bluegreen = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "BlueGreen",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": copy.deepcopy(SERVICE),
            "progressDeadlineSeconds": 60,
            "analysis": {
                "interval": "1s",
                "threshold": 2,
                "querySet": "istio",
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
            },
            "preview": {"mirror": True, "mirrorWeight": 100},
            "prePromotionAnalysis": {"iterations": 2},
            "autoPromotion": {"enabled": True},
            "scaleDownDelaySeconds": 0,
        },
    }
    emulator.create_object(BLUEGREENS, bluegreen, NS)
    async with operator(emulator, test_config(prom)):
        await wait_for("Initialized", lambda: bluegreen_phase(emulator) == "Initialized")
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_for("Succeeded", lambda: bluegreen_phase(emulator) == "Succeeded", timeout=40)
    weights = history_weights(history)
    assert weights[0] == (100, 0) and (0, 100) in weights and weights[-1] == (100, 0)
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:2"
