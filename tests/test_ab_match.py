"""A/B conditions reach the canary route whole, ANDed with ``service.match`` (never replacing it), or the spec is
refused naming the field; a TCP service refuses every field its TCP route cannot carry. Checked on the router's
real VirtualService output, held to Istio's real schema."""

from __future__ import annotations

from typing import Any

import pytest

from controller.rollout.istio_schema import istio_problems
from controller.rollout.validation import COALMINE_API_VERSION, parse_valid_canary, validate_document
from controller.routers import Routes
from controller.routers.istio import build_virtual_service


def document(analysis: dict[str, Any], service: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": COALMINE_API_VERSION,
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, **(service or {})},
            "analysis": {"interval": "1m", **analysis},
        },
    }


def ab(match: list[dict[str, Any]]) -> dict[str, Any]:
    return {"iterations": 5, "match": match}


def problems(analysis: dict[str, Any], service: dict[str, Any] | None = None) -> dict[str, str]:
    return {p.path: p.message for p in validate_document(document(analysis, service)).problems}


def canary_match(analysis: dict[str, Any], service: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    spec = parse_valid_canary(document(analysis, service))
    vs = build_virtual_service(spec, "podinfo", "test", Routes(100, 0, match_active=True))
    assert istio_problems("VirtualService", "", vs) == []
    route = next(r for r in vs["spec"]["http"] if r["name"] == "canary-match")
    assert [(d["destination"]["host"], d["weight"]) for d in route["route"]] == [
        ("podinfo-primary", 0),
        ("podinfo-canary", 100),
    ]
    match: list[dict[str, Any]] = route["match"]
    return match


EVERY_CONDITION = {
    "name": "testers",
    "uri": {"prefix": "/v2"},
    "scheme": {"exact": "https"},
    "method": {"exact": "GET"},
    "authority": {"exact": "app.example.com"},
    "headers": {"x-canary": {"exact": "insider"}},
    "queryParams": {"canary": {"exact": "yes"}},
    "withoutHeaders": {"x-no-canary": {"exact": "1"}},
    "ignoreUriCase": True,
    "port": 9898,
    "sourceLabels": {"app": "tester"},
    "sourceNamespace": "qa",
    "statPrefix": "ab",
}


def test_every_istio_condition_reaches_the_canary_route() -> None:
    assert canary_match(ab([EVERY_CONDITION])) == [EVERY_CONDITION]


@pytest.mark.parametrize(
    "condition",
    [
        {"queryParams": {"canary": {"exact": "yes"}}},
        {"method": {"exact": "POST"}},
        {"withoutHeaders": {"x-beta": {"exact": "no"}}},
        {"uri": {"prefix": "/api/v2"}},
        {"authority": {"exact": "beta.example.com"}},
        {"sourceNamespace": "qa"},
    ],
)
def test_non_header_conditions_are_kept_next_to_the_service_match(condition: dict[str, Any]) -> None:
    service = {"match": [{"uri": {"prefix": "/api"}}]} if "uri" not in condition else {"match": [{"port": 9898}]}
    merged = canary_match(ab([condition]), service)
    assert merged == [{**service["match"][0], **condition}]


def test_service_headers_are_combined_not_replaced() -> None:
    service = {"match": [{"headers": {"x-tenant": {"exact": "a"}}}, {"uri": {"prefix": "/api"}}]}
    merged = canary_match(ab([{"headers": {"x-canary": {"exact": "yes"}}}]), service)
    assert merged == [
        {"headers": {"x-tenant": {"exact": "a"}, "x-canary": {"exact": "yes"}}},
        {"uri": {"prefix": "/api"}, "headers": {"x-canary": {"exact": "yes"}}},
    ]


def test_conditions_that_cannot_be_combined_are_refused_naming_the_field() -> None:
    service = {"match": [{"uri": {"prefix": "/api"}, "headers": {"x-tenant": {"exact": "a"}}}]}
    found = problems(ab([{"uri": {"prefix": "/v2"}}]), service)
    assert "spec.analysis.match[0].uri" in found and "service.match[0].uri" in found["spec.analysis.match[0].uri"]
    found = problems(ab([{"headers": {"x-tenant": {"exact": "b"}}}]), service)
    assert "spec.analysis.match[0].headers.x-tenant" in found
    # ignoreUriCase on the A/B side would make the service's /api prefix match /API too: wider than the service
    assert "spec.analysis.match[0].ignoreUriCase" in problems(ab([{"ignoreUriCase": True}]), service)
    assert problems(ab([{"uri": {"prefix": "/api"}}]), service) == {}  # the same value is no conflict


TCP = {"appProtocol": "tcp"}


@pytest.mark.parametrize(
    ("service", "analysis", "path"),
    [
        ({"match": [{"uri": {"prefix": "/"}}]}, {}, "spec.service.match[0].uri"),
        ({"rewrite": {"uri": "/"}}, {}, "spec.service.rewrite"),
        ({"retries": {"attempts": 3}}, {}, "spec.service.retries"),
        ({"timeout": "5s"}, {}, "spec.service.timeout"),
        ({"headers": {"request": {"set": {"a": "b"}}}}, {}, "spec.service.headers"),
        ({"corsPolicy": {"allowMethods": ["GET"]}}, {}, "spec.service.corsPolicy"),
        ({}, {"mirror": True}, "spec.analysis.mirror"),
        ({}, {"sessionAffinity": {"cookieName": "c"}}, "spec.analysis.sessionAffinity"),
    ],
)
def test_tcp_services_refuse_what_a_tcp_route_cannot_carry(
    service: dict[str, Any], analysis: dict[str, Any], path: str
) -> None:
    found = problems({"stepWeight": 10, **analysis}, {**TCP, **service})
    assert path in found and "tcp" in found[path].lower()


def test_tcp_services_refuse_ab_matching() -> None:
    found = problems(ab([{"headers": {"x": {"exact": "y"}}}]), TCP)
    assert "spec.analysis.match" in found


def test_a_tcp_port_match_is_honoured() -> None:
    spec = parse_valid_canary(document({"stepWeight": 10}, {**TCP, "match": [{"port": 9898}]}))
    vs = build_virtual_service(spec, "podinfo", "test", Routes(90, 10))
    assert istio_problems("VirtualService", "", vs) == []
    assert vs["spec"]["tcp"][0]["match"] == [{"port": 9898}]
