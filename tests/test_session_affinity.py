"""Session affinity as Flagger writes it (PRs #1826 cookie attributes, #1861 primaryCookieName for Istio), held to
the router's real VirtualService output and to Istio's real schema; every other key under sessionAffinity is
refused, naming the field."""

from __future__ import annotations

from typing import Any

from fakekube import FakeKube

from controller.kube.client import VIRTUAL_SERVICES
from controller.rollout.istio_schema import istio_problems
from controller.rollout.validation import COALMINE_API_VERSION, InvalidSpecError, parse_valid_canary, validate_document
from controller.routers.istio import IstioRouter

META = {"name": "podinfo", "namespace": "test", "uid": "u-1"}
ATTRIBUTES = {
    "cookieName": "canary-cookie",
    "maxAge": 300,
    "domain": "example.com",
    "path": "/app",
    "sameSite": "Strict",
    "secure": True,
    "httpOnly": True,
    "partitioned": True,
}
SUFFIX = "Domain=example.com; HttpOnly; Max-Age=300; Partitioned; Path=/app; SameSite=Strict; Secure"


def document(affinity: dict[str, Any], service: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": COALMINE_API_VERSION,
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, **(service or {})},
            "analysis": {"interval": "1m", "stepWeight": 10, "maxWeight": 50, "sessionAffinity": affinity},
        },
    }


def problems(affinity: dict[str, Any], service: dict[str, Any] | None = None) -> dict[str, str]:
    return {p.path: p.message for p in validate_document(document(affinity, service)).problems}


def run(affinity: dict[str, Any], service: dict[str, Any] | None = None) -> tuple[FakeKube, IstioRouter]:
    spec = parse_valid_canary(document(affinity, service))
    kube = FakeKube()
    values = iter(["CANARYVAL", "PRIMARYVAL", "NEXTVALUE1", "NEXTVALUE2"])
    router = IstioRouter(kube, spec, META, cookie_factory=lambda: next(values))
    router.reconcile(spec, META)
    return kube, router


def vs_of(kube: FakeKube) -> dict[str, Any]:
    vs = kube.get(VIRTUAL_SERVICES, "test", "podinfo")
    assert vs is not None
    assert istio_problems("VirtualService", "", vs) == []  # the real Istio schema, CEL rules included
    return vs


def by_name(vs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {route["name"]: route for route in vs["spec"]["http"]}


def test_cookie_attributes_are_written_into_the_canary_set_cookie() -> None:
    kube, router = run(ATTRIBUTES)
    router.set_routes(90, 10)
    weighted = by_name(vs_of(kube))["weighted"]
    assert weighted["route"][1]["headers"] == {
        "response": {"add": {"Set-Cookie": f"canary-cookie=CANARYVAL; {SUFFIX}"}}
    }


def test_without_attributes_the_cookie_is_flaggers_default() -> None:
    kube, router = run({"cookieName": "canary-cookie"})
    router.set_routes(90, 10)
    weighted = by_name(vs_of(kube))["weighted"]
    assert weighted["route"][1]["headers"]["response"]["add"]["Set-Cookie"] == "canary-cookie=CANARYVAL; Max-Age=86400"
    assert "headers" not in weighted["route"][0]  # no primary cookie unless primaryCookieName is set


def test_the_expired_cookie_carries_domain_and_path_so_browsers_delete_it() -> None:
    kube, router = run(ATTRIBUTES)
    router.set_routes(90, 10)
    router.set_routes(100, 0)
    sticky = by_name(vs_of(kube))["sticky-route"]
    expiry = sticky["headers"]["response"]["add"]["Set-Cookie"]
    assert expiry.startswith("canary-cookie=CANARYVAL; ")
    assert "Max-Age=-1" in expiry and "Domain=example.com" in expiry and "Path=/app" in expiry


def test_primary_cookie_pins_users_who_saw_the_primary() -> None:
    kube, router = run({**ATTRIBUTES, "primaryCookieName": "primary-cookie"})
    router.set_routes(70, 30)
    routes = by_name(vs_of(kube))
    weighted = routes["weighted"]
    assert weighted["route"][0]["destination"]["host"] == "podinfo-primary"
    assert weighted["route"][0]["headers"] == {
        "response": {"add": {"Set-Cookie": f"primary-cookie=PRIMARYVAL; {SUFFIX}"}}
    }
    pinned = routes["sticky-route-primary"]
    assert pinned["match"] == [{"headers": {"Cookie": {"regex": ".*primary-cookie.*PRIMARYVAL.*"}}}]
    assert [(d["destination"]["host"], d["weight"]) for d in pinned["route"]] == [
        ("podinfo-primary", 100),
        ("podinfo-canary", 0),
    ]
    # the canary's sticky route comes first, then the primary's, then the split
    assert [r["name"] for r in vs_of(kube)["spec"]["http"]] == ["sticky-route", "sticky-route-primary", "weighted"]
    router.set_routes(50, 50)  # the cookie values are kept for the whole run
    assert by_name(vs_of(kube))["sticky-route-primary"]["match"][0]["headers"]["Cookie"]["regex"].endswith(
        "PRIMARYVAL.*"
    )
    router.set_routes(100, 0)  # run over: everyone is on the primary, the primary pin is gone
    assert "sticky-route-primary" not in by_name(vs_of(kube))
    assert "headers" not in by_name(vs_of(kube))["weighted"]["route"][0]


def test_sticky_routes_keep_the_service_match() -> None:
    service = {"match": [{"uri": {"prefix": "/api"}, "headers": {"x-tenant": {"exact": "a"}}}]}
    kube, router = run({"cookieName": "c", "primaryCookieName": "p"}, service)
    router.set_routes(90, 10)
    routes = by_name(vs_of(kube))
    for name, cookie in (("sticky-route", "c.*CANARYVAL"), ("sticky-route-primary", "p.*PRIMARYVAL")):
        assert routes[name]["match"] == [
            {
                "uri": {"prefix": "/api"},
                "headers": {"x-tenant": {"exact": "a"}, "Cookie": {"regex": f".*{cookie}.*"}},
            }
        ]


def test_unknown_keys_and_bad_values_are_refused_naming_the_field() -> None:
    path = "spec.analysis.sessionAffinity"
    found = problems({"cookieName": "c", "cookiename": "x"})
    assert f"{path}.cookiename" in found and "unknown field" in found[f"{path}.cookiename"]
    assert f"{path}.sameSite" in problems({"cookieName": "c", "sameSite": "lax"})
    assert f"{path}.secure" in problems({"cookieName": "c", "secure": "yes"})
    assert f"{path}.primaryCookieName" in problems({"cookieName": "c", "primaryCookieName": "c"})
    assert f"{path}.cookieName" in problems({"cookieName": "bad name;"})
    assert f"{path}.domain" in problems({"cookieName": "c", "domain": "a; Secure"})
    assert problems(ATTRIBUTES) == {}


def test_an_invalid_affinity_never_reaches_the_router() -> None:
    try:
        parse_valid_canary(document({"cookieName": "c", "sticky": True}))
    except InvalidSpecError as error:
        assert any(p.path == "spec.analysis.sessionAffinity.sticky" for p in error.problems)
    else:
        raise AssertionError("an unknown sessionAffinity key was accepted")
