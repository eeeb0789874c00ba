"""The Istio router: VirtualService/DestinationRule builders validated against Istio's own schema (the pydantic
models of cloudcoil-models-istio), reading weights back, and IstioRouter's behaviour against an in-memory API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudcoil.models.istio.networking.v1beta1 import DestinationRule, VirtualService
from fakekube import FakeKube

from controller.kube.client import DESTINATION_RULES, VIRTUAL_SERVICES
from controller.kube.errors import ApiConflict, ApiNotFound
from controller.rollout.spec import CanarySpec, parse_canary_spec
from controller.routers import InvalidRoutes, Routes, UnknownProvider, router_for
from controller.routers.istio import (
    MATCH_ROUTE,
    STICKY_ROUTE,
    WEIGHTED_ROUTE,
    IstioRouter,
    build_destination_rules,
    build_virtual_service,
    read_routes,
    read_weights,
)
from controller.routers.takeover import ORIGINAL_CONFIGURATION_ANNOTATION, SESSION_COOKIE_ANNOTATION

CANARY_META = {"name": "podinfo", "namespace": "test", "uid": "u-1"}


def istio_valid(obj: dict[str, Any]) -> dict[str, Any]:
    """Validate against Istio's schema. The models ignore unknown fields, so also require a lossless round trip:
    a misspelt field would be dropped and the comparison would fail."""
    model = {"VirtualService": VirtualService, "DestinationRule": DestinationRule}[obj["kind"]]
    parsed = model.model_validate(obj)
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key in ("metadata",):  # object metadata is Kubernetes', checked elsewhere
        dumped.pop(key, None)
    assert dumped == {k: v for k, v in obj.items() if k != "metadata"}
    return obj


def spec_of(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None, **extra: Any) -> CanarySpec:
    return parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, **(service or {})},
            "analysis": analysis or {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
            **extra,
        }
    )


FULL_SERVICE = {
    "hosts": ["app.example.com"],
    "gateways": ["public-gateway.istio-system.svc.cluster.local", "mesh"],
    "match": [{"uri": {"prefix": "/api"}}, {"uri": {"prefix": "/v2"}}],
    "rewrite": {"uri": "/"},
    "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
    "timeout": "5s",
    "headers": {"request": {"add": {"x-envoy-upstream-rq-timeout-ms": "15000"}}, "response": {"remove": ["x-b3"]}},
    "corsPolicy": {
        "allowOrigins": [{"exact": "https://example.com"}],
        "allowMethods": ["GET", "POST"],
        "maxAge": "24h",
    },
    "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "connectionPool": {"http": {"http1MaxPendingRequests": 10}}},
    "apex": {"labels": {"exposed": "true"}, "annotations": {"team": "a"}},
}


def routes_of(vs: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    return {
        r.get("name", "?"): [(d["destination"]["host"], d["weight"]) for d in r["route"]] for r in vs["spec"]["http"]
    }


# -- builders ---------------------------------------------------------------------------------------------------


def test_default_virtual_service_routes_everything_to_the_primary() -> None:
    vs = istio_valid(build_virtual_service(spec_of(), "podinfo", "test", canary_uid="u-1"))
    assert vs["metadata"]["name"] == "podinfo"
    assert vs["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert vs["spec"]["hosts"] == ["podinfo"]
    assert vs["spec"]["gateways"] == ["mesh"]
    assert routes_of(vs) == {WEIGHTED_ROUTE: [("podinfo-primary", 100), ("podinfo-canary", 0)]}


def test_service_options_are_copied_onto_the_route() -> None:
    spec = spec_of(FULL_SERVICE)
    vs = istio_valid(build_virtual_service(spec, "podinfo", "test", Routes(70, 30)))
    assert vs["spec"]["hosts"] == ["app.example.com", "podinfo"]
    assert vs["spec"]["gateways"] == FULL_SERVICE["gateways"]
    assert vs["metadata"]["labels"] == {"exposed": "true"} and vs["metadata"]["annotations"] == {"team": "a"}
    (route,) = vs["spec"]["http"]
    for ours, theirs in [
        ("match", "match"),
        ("rewrite", "rewrite"),
        ("retries", "retries"),
        ("timeout", "timeout"),
        ("headers", "headers"),
        ("corsPolicy", "corsPolicy"),
    ]:
        assert route[ours] == FULL_SERVICE[theirs]
    assert routes_of(vs) == {WEIGHTED_ROUTE: [("podinfo-primary", 70), ("podinfo-canary", 30)]}


@pytest.mark.parametrize("hosts", [["podinfo", "x.example.com"], ["*"]])
def test_the_apex_host_is_not_added_twice(hosts: list[str]) -> None:
    vs = build_virtual_service(spec_of({"hosts": hosts}), "podinfo", "test")
    assert vs["spec"]["hosts"] == hosts


def test_destination_rules_carry_the_traffic_policy() -> None:
    primary, canary = build_destination_rules(spec_of(FULL_SERVICE), "test", CANARY_META)
    for rule, host in ((primary, "podinfo-primary"), (canary, "podinfo-canary")):
        istio_valid(rule)
        assert rule["metadata"]["name"] == host and rule["spec"]["host"] == host
        assert rule["spec"]["trafficPolicy"] == FULL_SERVICE["trafficPolicy"]
        assert rule["metadata"]["ownerReferences"][0]["name"] == "podinfo"
    bare, _ = build_destination_rules(spec_of({"name": "front"}))
    assert istio_valid(bare)["spec"] == {"host": "front-primary"}


def test_ab_testing_sends_matching_requests_to_the_canary_while_active() -> None:
    analysis = {
        "interval": "1m",
        "iterations": 10,
        "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
        ],
    }
    spec = spec_of({"match": [{"uri": {"prefix": "/api"}}]}, analysis)
    active = istio_valid(build_virtual_service(spec, "podinfo", "test", Routes(100, 0, match_active=True)))
    first, default = active["spec"]["http"]
    assert first["name"] == MATCH_ROUTE
    # Every A/B condition is narrowed by the service's own match (Flagger's merge).
    assert first["match"] == [
        {"uri": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "insider"}}},
        {"uri": {"prefix": "/api"}, "headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}},
    ]
    assert routes_of(active)[MATCH_ROUTE] == [("podinfo-primary", 0), ("podinfo-canary", 100)]
    assert default["match"] == [{"uri": {"prefix": "/api"}}]
    assert routes_of(active)[WEIGHTED_ROUTE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert read_routes(active, "podinfo") == Routes(100, 0, None, True)

    idle = istio_valid(build_virtual_service(spec, "podinfo", "test"))
    assert routes_of(idle)[MATCH_ROUTE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert read_routes(idle, "podinfo") == Routes(100, 0, None, False)


def test_mirroring_copies_traffic_to_the_canary() -> None:
    spec = spec_of(analysis={"interval": "1m", "iterations": 5, "mirror": True, "mirrorWeight": 30})
    vs = istio_valid(build_virtual_service(spec, "podinfo", "test", Routes(100, 0, mirror=30)))
    (route,) = vs["spec"]["http"]
    assert route["mirror"] == {"host": "podinfo-canary"}
    assert route["mirrorPercentage"] == {"value": 30.0}
    assert read_routes(vs) == Routes(100, 0, 30)
    assert "mirror" not in build_virtual_service(spec, "podinfo", "test", Routes(100, 0))["spec"]["http"][0]


@pytest.mark.parametrize(
    "routes", [Routes(90, 20), Routes(-10, 110), Routes(50, 50, mirror=120)], ids=["sum", "range", "mirror"]
)
def test_weights_that_are_not_a_split_are_refused(routes: Routes) -> None:
    with pytest.raises(InvalidRoutes):
        build_virtual_service(spec_of(), "podinfo", "test", routes)


def test_tcp_services_get_a_weighted_tcp_route() -> None:
    spec = spec_of({"appProtocol": "tcp", "match": [{"port": 9898}]})
    vs = istio_valid(build_virtual_service(spec, "podinfo", "test", Routes(60, 40)))
    assert "http" not in vs["spec"]
    assert vs["spec"]["tcp"][0]["match"] == [{"port": 9898}]
    assert read_weights(vs, "podinfo") == (60, 40)


def test_port_discovery_behind_a_gateway_sets_destination_ports() -> None:
    spec = spec_of({"portDiscovery": True, "gateways": ["public-gateway"]})
    vs = istio_valid(build_virtual_service(spec, "podinfo", "test"))
    assert {d["destination"]["port"]["number"] for d in vs["spec"]["http"][0]["route"]} == {9898}


def test_read_weights_recognises_only_our_split() -> None:
    ours = build_virtual_service(spec_of(), "podinfo", "test", Routes(80, 20))
    assert read_weights(ours, "podinfo") == (80, 20)
    assert read_weights(ours) == (80, 20)
    assert read_weights(None) is None
    foreign = {"spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}}]}]}}
    assert read_weights(foreign, "podinfo") is None
    other_apex = build_virtual_service(spec_of({"name": "other"}), "podinfo", "test")
    assert read_weights(other_apex, "podinfo") is None
    # A hand edit is reported as found, even when it no longer sums to 100: that is drift for the engine.
    edited = json.loads(json.dumps(ours))
    edited["spec"]["http"][0]["route"][1]["weight"] = 35
    assert read_weights(edited, "podinfo") == (80, 35)
    # Tools that drop zero values: a missing weight next to another destination is 0.
    del edited["spec"]["http"][0]["route"][1]["weight"]
    assert read_weights(edited, "podinfo") == (80, 0)


# -- IstioRouter against an in-memory API -----------------------------------------------------------------------


def vs_in(kube: FakeKube) -> dict[str, Any]:
    vs = kube.get(VIRTUAL_SERVICES, "test", "podinfo")
    assert vs is not None
    return vs


def test_reconcile_creates_owned_objects_at_primary_100_and_is_then_write_free() -> None:
    kube = FakeKube()
    spec = spec_of(FULL_SERVICE)
    router = IstioRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    assert sorted(kube.writes) == [
        ("create", "DestinationRule", "podinfo-canary"),
        ("create", "DestinationRule", "podinfo-primary"),
        ("create", "VirtualService", "podinfo"),
    ]
    istio_valid({k: v for k, v in vs_in(kube).items()})
    assert router.get_routes() == Routes(100, 0)
    kube.writes.clear()
    router.reconcile(spec, CANARY_META)
    assert kube.writes == []


def test_set_routes_then_reconcile_keeps_the_split_and_applies_spec_changes() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = IstioRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    router.set_routes(80, 20)
    assert router.get_routes() == Routes(80, 20)
    changed = spec_of({"timeout": "3s", "trafficPolicy": {"tls": {"mode": "DISABLE"}}})
    router.reconcile(changed, CANARY_META)
    vs = istio_valid(vs_in(kube))
    assert vs["spec"]["http"][0]["timeout"] == "3s"
    assert router.get_routes() == Routes(80, 20)
    rule = kube.get(DESTINATION_RULES, "test", "podinfo-canary")
    assert rule is not None and rule["spec"]["trafficPolicy"] == {"tls": {"mode": "DISABLE"}}
    # Removing the policy from the spec removes it from the DestinationRule (the spec is replaced, not merged).
    router.reconcile(spec, CANARY_META)
    rule = kube.get(DESTINATION_RULES, "test", "podinfo-canary")
    assert rule is not None and "trafficPolicy" not in rule["spec"]


def test_a_manual_edit_of_the_weights_is_visible_and_put_back() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = IstioRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    router.set_routes(90, 10)
    vs = vs_in(kube)
    vs["spec"]["http"][0]["route"][0]["weight"] = 50
    vs["spec"]["http"][0]["route"][1]["weight"] = 50
    kube.replace(VIRTUAL_SERVICES, "test", vs)
    assert router.get_routes() == Routes(50, 50)  # the engine compares this with status.canaryWeight
    router.reconcile(spec, CANARY_META)
    assert router.get_routes() == Routes(50, 50)  # reconcile alone never changes weights (Flagger's rule)
    router.set_routes(90, 10)
    assert router.get_routes() == Routes(90, 10)


def test_an_existing_virtual_service_is_saved_taken_over_and_restored() -> None:
    kube = FakeKube()
    original_spec = {
        "hosts": ["podinfo"],
        "http": [{"route": [{"destination": {"host": "podinfo", "port": {"number": 9898}}}], "timeout": "30s"}],
    }
    kube.put(
        VIRTUAL_SERVICES,
        "test",
        {
            "metadata": {"name": "podinfo", "labels": {"owner": "platform"}, "annotations": {"note": "hand-made"}},
            "spec": original_spec,
        },
    )
    spec = spec_of()
    router = IstioRouter(kube, spec, CANARY_META)
    assert router.get_routes() is None  # not ours yet
    router.reconcile(spec, CANARY_META)
    taken = istio_valid(vs_in(kube))
    assert json.loads(taken["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION]) == original_spec
    assert "ownerReferences" not in taken["metadata"]  # deleting the Canary must not delete the user's object
    assert taken["metadata"]["labels"] == {"owner": "platform"}
    assert router.get_routes() == Routes(100, 0)
    router.set_routes(70, 30)
    router.reconcile(spec, CANARY_META)  # the saved original is never overwritten by our own spec
    assert json.loads(vs_in(kube)["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION]) == original_spec
    assert router.get_routes() == Routes(70, 30)

    router.finalize()
    restored = vs_in(kube)
    assert restored["spec"] == original_spec
    assert restored["metadata"]["annotations"] == {"note": "hand-made"}
    assert restored["metadata"]["labels"] == {"owner": "platform"}
    assert kube.get(DESTINATION_RULES, "test", "podinfo-primary") is None
    assert kube.get(DESTINATION_RULES, "test", "podinfo-canary") is None


def test_finalize_deletes_what_coalmine_created_and_tolerates_absence() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = IstioRouter(kube, spec, CANARY_META)
    router.finalize()  # nothing there yet: nothing to do
    router.reconcile(spec, CANARY_META)
    router.finalize()
    assert kube.objects == {}


def test_set_routes_needs_a_reconciled_virtual_service() -> None:
    router = IstioRouter(FakeKube(), spec_of(), CANARY_META)
    with pytest.raises(ApiNotFound, match="VirtualService test/podinfo"):
        router.set_routes(90, 10)


def test_conflicting_writers_are_retried_then_reported() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = IstioRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    kube.conflicts = 2
    router.set_routes(60, 40)
    assert router.get_routes() == Routes(60, 40)
    assert vs_in(kube)["metadata"]["annotations"]["someone-else"]  # the other writer's change survived
    kube.conflicts = 100
    with pytest.raises(ApiConflict, match="VirtualService test/podinfo"):
        router.set_routes(50, 50)


def test_session_affinity_keeps_a_user_on_the_canary_and_expires_the_cookie_afterwards() -> None:
    kube = FakeKube()
    analysis = {
        "interval": "1m",
        "stepWeight": 10,
        "maxWeight": 50,
        "sessionAffinity": {"cookieName": "flagger-cookie", "maxAge": 21600},
    }
    spec = spec_of(analysis=analysis)
    router = IstioRouter(kube, spec, CANARY_META, cookie_factory=lambda: "abcdefghij")
    router.reconcile(spec, CANARY_META)
    router.set_routes(90, 10)
    vs = istio_valid(vs_in(kube))
    assert vs["metadata"]["annotations"][SESSION_COOKIE_ANNOTATION] == "flagger-cookie=abcdefghij"
    sticky, weighted = vs["spec"]["http"]
    assert sticky["name"] == STICKY_ROUTE
    assert sticky["match"] == [{"headers": {"Cookie": {"regex": ".*flagger-cookie.*abcdefghij.*"}}}]
    assert routes_of(vs)[STICKY_ROUTE] == [("podinfo-primary", 0), ("podinfo-canary", 100)]
    assert weighted["route"][1]["headers"] == {
        "response": {"add": {"Set-Cookie": "flagger-cookie=abcdefghij; Max-Age=21600"}}
    }
    assert router.get_routes() == Routes(90, 10)

    router.set_routes(80, 20)
    router.reconcile(spec, CANARY_META)
    assert vs_in(kube)["metadata"]["annotations"][SESSION_COOKIE_ANNOTATION] == "flagger-cookie=abcdefghij"
    assert router.get_routes() == Routes(80, 20)

    router.set_routes(100, 0)
    done = istio_valid(vs_in(kube))
    assert SESSION_COOKIE_ANNOTATION not in done["metadata"]["annotations"]
    sticky = done["spec"]["http"][0]
    assert sticky["headers"]["response"]["add"]["Set-Cookie"] == "flagger-cookie=abcdefghij; Max-Age=-1"
    assert routes_of(done)[STICKY_ROUTE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert router.get_routes() == Routes(100, 0)


def test_the_registry_knows_its_routers_and_rejects_anything_else() -> None:
    kube = FakeKube()
    assert isinstance(router_for(spec_of(), CANARY_META, kube), IstioRouter)
    with pytest.raises(
        UnknownProvider,
        match="'linkerd' is not supported; supported providers: gatewayapi:v1, gatewayapi:v1beta1, istio",
    ):
        router_for(spec_of(provider="linkerd"), CANARY_META, kube)


def test_a_virtual_service_left_by_flagger_is_saved_not_adopted_and_restore_survives_conflicts() -> None:
    kube = FakeKube()
    flagger_spec = {
        "hosts": ["podinfo"],
        "http": [
            {
                "route": [
                    {"destination": {"host": "podinfo-primary"}, "weight": 100},
                    {"destination": {"host": "podinfo-canary"}, "weight": 0},
                ]
            }
        ],
    }
    flagger_owner = {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "name": "podinfo",
        "uid": "f-1",
        "controller": True,
    }
    kube.put(
        VIRTUAL_SERVICES,
        "test",
        {"metadata": {"name": "podinfo", "ownerReferences": [flagger_owner]}, "spec": flagger_spec},
    )
    spec = spec_of()
    router = IstioRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    router.set_routes(75, 25)
    taken = vs_in(kube)
    assert json.loads(taken["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION]) == flagger_spec
    assert taken["metadata"]["ownerReferences"] == [flagger_owner]
    kube.conflicts = 2
    router.finalize()
    assert vs_in(kube)["spec"] == flagger_spec
