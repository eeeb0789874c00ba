"""The Gateway API router: HTTPRoute builders held to Gateway API's real CRD schema (standard channel, CEL rules
included), reading weights and status back, and GatewayApiRouter's behaviour against an in-memory API."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulator.schemas import prune_and_default
from fakekube import FakeKube

from controller.kube.errors import ApiConflict, ApiNotFound
from controller.rollout.gatewayapi_schema import httproute_problems, shipped_rules, subschema
from controller.rollout.gatewayapi_translate import gateway_duration, spec_problems, translate_match
from controller.rollout.problems import Findings
from controller.rollout.spec import CanarySpec, SetWeight, canary_steps, parse_canary_spec
from controller.routers import InvalidRoutes, Routes
from controller.routers.gatewayapi import GatewayApiRouter
from controller.routers.gatewayapi_build import (
    HTTPROUTES,
    MATCH_RULE,
    STICKY_PRIMARY_RULE,
    STICKY_RULE,
    WEIGHTED_RULE,
    GatewayApiUnsupported,
    build_http_route,
    read_routes,
    route_problem,
)
from controller.routers.takeover import (
    ORIGINAL_CONFIGURATION_ANNOTATION,
    PREVIOUS_SESSION_COOKIE_ANNOTATION,
    SESSION_COOKIE_ANNOTATION,
    SessionCookies,
)
from controller.schema import extract_gateway
from controller.schema.cel import compile_rule

REFERENCE = Path("/work/shared/reference/crds/gateway-api")
ROOT = Path(__file__).resolve().parents[1]
CANARY_META = {"name": "podinfo", "namespace": "test", "uid": "u-1"}
GATEWAY = {"name": "public", "namespace": "gateways", "sectionName": "https"}


def spec_of(service: dict[str, Any] | None = None, analysis: dict[str, Any] | None = None, **extra: Any) -> CanarySpec:
    return parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, **(service or {})},
            "analysis": analysis or {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
            "provider": "gatewayapi",
            **extra,
        }
    )


def valid(route: dict[str, Any]) -> dict[str, Any]:
    """The route passes the real schema and CEL rules, and is already in the form the API server stores (so a
    reconcile against a real server compares equal and writes nothing)."""
    assert httproute_problems(route) == []
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route["kind"] == "HTTPRoute"
    assert prune_and_default(route, crd_schema()) == route
    return route


@cache
def crd_schema() -> dict[str, Any]:
    with (REFERENCE / "httproutes.yaml").open(encoding="utf-8") as handle:
        crd = yaml.safe_load(handle)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def rules_of(route: dict[str, Any]) -> dict[str, list[tuple[str, int]]]:
    return {r["name"]: [(b["name"], b["weight"]) for b in r["backendRefs"]] for r in route["spec"]["rules"]}


def rule(route: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [r for r in route["spec"]["rules"] if r["name"] == name]
    assert len(found) == 1
    return found[0]


def filters_of(item: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in item.get("filters", ()) if f["type"] == kind]


# -- the shipped schema -----------------------------------------------------------------------------------------


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs the reference Gateway API CRDs")
def test_the_shipped_schema_is_the_reference_crds_part_unchanged() -> None:
    with (REFERENCE / "httproutes.yaml").open(encoding="utf-8") as handle:
        expected = extract_gateway.render(extract_gateway.extract(yaml.safe_load_all(handle)))
    assert extract_gateway.SHIPPED.read_text(encoding="utf-8") == expected
    assert (extract_gateway.SHIPPED.parent / "LICENSE").read_bytes() == (REFERENCE / "LICENSE").read_bytes()
    assert json.loads(expected)["schemas"]["HTTPRoute"] == crd_schema()  # the very schema the emulator applies


def test_the_shipped_schema_is_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"schema/gateway-api/*.json"' in text and '"schema/gateway-api/LICENSE"' in text


def test_every_cel_rule_of_the_shipped_schema_compiles_with_the_functions_we_provide() -> None:
    rules = shipped_rules()
    assert "!(has(self.percent) && has(self.fraction))" in rules
    for text in rules:
        compile_rule(text)


def test_the_standard_channel_has_no_retry_so_retries_are_refused() -> None:
    # If a Gateway API upgrade adds ``retry`` to the standard channel, this fails: map service.retries onto it.
    assert "retry" not in subschema("spec.rules[]")["properties"]
    assert set(subschema("spec.rules[].filters[].requestMirror")["properties"]) >= {"percent", "fraction"}
    spec = spec_of({"retries": {"attempts": 3, "perTryTimeout": "1s"}})
    assert [p.path for p in spec_problems(spec)] == ["spec.service.retries"]
    with pytest.raises(GatewayApiUnsupported, match=r"spec\.service\.retries: the standard channel"):
        build_http_route(spec, "podinfo", "test")


# -- builders ---------------------------------------------------------------------------------------------------


def test_without_gateway_refs_the_route_attaches_to_the_apex_service() -> None:
    route = valid(build_http_route(spec_of(), "podinfo", "test", canary_uid="u-1"))
    assert route["metadata"]["name"] == "podinfo" and route["metadata"]["namespace"] == "test"
    assert route["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "podinfo", "port": 9898}]
    assert "hostnames" not in route["spec"]
    (weighted,) = route["spec"]["rules"]
    assert weighted["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rules_of(route) == {WEIGHTED_RULE: [("podinfo-primary", 100), ("podinfo-canary", 0)]}
    assert {b["port"] for b in weighted["backendRefs"]} == {9898}


def test_gateway_refs_and_hosts_are_the_parents_and_hostnames() -> None:
    spec = spec_of({"gatewayRefs": [GATEWAY], "hosts": ["app.example.com", "*.example.org"]})
    route = valid(build_http_route(spec, "podinfo", "test"))
    assert route["spec"]["parentRefs"] == [{**GATEWAY, "group": "gateway.networking.k8s.io", "kind": "Gateway"}]
    assert route["spec"]["hostnames"] == ["app.example.com", "*.example.org"]


@pytest.mark.parametrize(
    "analysis",
    [
        {"interval": "1m", "stepWeight": 10, "maxWeight": 50},
        {"interval": "1m", "stepWeights": [1, 5, 25, 80]},
        {"interval": "1m", "stepWeight": 33},
    ],
)
def test_every_weight_step_is_written_and_read_back(analysis: dict[str, Any]) -> None:
    spec = spec_of(analysis=analysis)
    for step in canary_steps(spec.analysis):
        assert isinstance(step, SetWeight)
        route = valid(build_http_route(spec, "podinfo", "test", Routes(100 - step.weight, step.weight)))
        assert rules_of(route)[WEIGHTED_RULE] == [
            ("podinfo-primary", 100 - step.weight),
            ("podinfo-canary", step.weight),
        ]
        assert read_routes(route, "podinfo") == Routes(100 - step.weight, step.weight)


@pytest.mark.parametrize(
    "routes", [Routes(90, 20), Routes(-10, 110), Routes(50, 50, mirror=120)], ids=["sum", "range", "mirror"]
)
def test_weights_that_are_not_a_split_are_refused(routes: Routes) -> None:
    with pytest.raises(InvalidRoutes):
        build_http_route(spec_of(), "podinfo", "test", routes)


def test_ab_testing_sends_matching_requests_to_the_canary_while_active() -> None:
    analysis = {
        "interval": "1m",
        "iterations": 10,
        "match": [
            {"headers": {"x-canary": {"exact": "insider"}}},
            {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}, "queryParams": {"v": {"exact": "2"}}},
        ],
    }
    spec = spec_of({"match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"}}]}, analysis)
    active = valid(build_http_route(spec, "podinfo", "test", Routes(100, 0, match_active=True)))
    ab, weighted = active["spec"]["rules"]
    assert ab["name"] == MATCH_RULE
    # Every A/B condition is ANDed with the service's own match, as for Istio.
    assert ab["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "method": "GET",
            "headers": [{"name": "x-canary", "type": "Exact", "value": "insider"}],
        },
        {
            "path": {"type": "PathPrefix", "value": "/api"},
            "method": "GET",
            "headers": [{"name": "cookie", "type": "RegularExpression", "value": "^(.*?;)?(canary=always)(;.*)?$"}],
            "queryParams": [{"name": "v", "type": "Exact", "value": "2"}],
        },
    ]
    assert rules_of(active)[MATCH_RULE] == [("podinfo-primary", 0), ("podinfo-canary", 100)]
    assert weighted["matches"] == [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET"}]
    assert rules_of(active)[WEIGHTED_RULE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert read_routes(active, "podinfo") == Routes(100, 0, None, True)

    idle = valid(build_http_route(spec, "podinfo", "test"))
    assert rules_of(idle)[MATCH_RULE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    assert read_routes(idle, "podinfo") == Routes(100, 0, None, False)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"uri": {"exact": "/login"}}, {"path": {"type": "Exact", "value": "/login"}}),
        ({"uri": {"prefix": "/api"}}, {"path": {"type": "PathPrefix", "value": "/api"}}),
        ({"uri": {"regex": "/v[0-9]+/.*"}}, {"path": {"type": "RegularExpression", "value": "/v[0-9]+/.*"}}),
        ({"method": {"exact": "POST"}}, {"method": "POST"}),
        ({"headers": {"x-a": {"exact": "1"}}}, {"headers": [{"name": "x-a", "type": "Exact", "value": "1"}]}),
        (
            {"headers": {"x-a": {"regex": "1.*"}}},
            {"headers": [{"name": "x-a", "type": "RegularExpression", "value": "1.*"}]},
        ),
        (
            {"headers": {"user-agent": {"prefix": "Mozilla/5.0 (X"}}},
            {"headers": [{"name": "user-agent", "type": "RegularExpression", "value": r"^Mozilla/5\.0 \(X.*"}]},
        ),
        ({"queryParams": {"v": {"exact": "2"}}}, {"queryParams": [{"name": "v", "type": "Exact", "value": "2"}]}),
        (
            {"name": "insiders", "ignoreUriCase": False, "uri": {"prefix": "/"}},
            {"path": {"type": "PathPrefix", "value": "/"}},
        ),
    ],
)
def test_istio_match_conditions_translate_like_flaggers_gateway_router(
    condition: dict[str, Any], expected: dict[str, Any]
) -> None:
    out = Findings()
    assert translate_match(condition, "m", out) == expected
    assert out.problems == []
    route = build_http_route(spec_of({"match": [condition]}), "podinfo", "test")
    assert httproute_problems(route) == []


@pytest.mark.parametrize(
    ("condition", "path"),
    [
        ({"withoutHeaders": {"x-a": {"exact": "1"}}}, "spec.service.match[0].withoutHeaders"),
        ({"sourceLabels": {"app": "x"}}, "spec.service.match[0].sourceLabels"),
        ({"port": 8080}, "spec.service.match[0].port"),
        ({"authority": {"exact": "a"}}, "spec.service.match[0].authority"),
        ({"ignoreUriCase": True, "uri": {"prefix": "/a"}}, "spec.service.match[0].ignoreUriCase"),
        ({"method": {"regex": "GET|POST"}}, "spec.service.match[0].method"),
        ({"headers": {":authority": {"exact": "a"}}}, "spec.service.match[0].headers.:authority"),
        ({"headers": {"x-a": {"exact": ""}}}, "spec.service.match[0].headers.x-a.exact"),
    ],
)
def test_match_fields_an_httproute_cannot_express_are_refused_not_dropped(condition: dict[str, Any], path: str) -> None:
    spec = spec_of({"match": [condition]})
    assert [p.path for p in spec_problems(spec)] == [path]
    with pytest.raises(GatewayApiUnsupported):
        build_http_route(spec, "podinfo", "test")


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ({"appProtocol": "tcp"}, "spec.service.appProtocol"),
        ({"gateways": ["public-gateway"]}, "spec.service.gateways"),
        ({"corsPolicy": {"allowOrigins": [{"exact": "https://a"}]}}, "spec.service.corsPolicy"),
        ({"trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}}, "spec.service.trafficPolicy"),
        ({"hosts": ["*"]}, "spec.service.hosts[0]"),
        ({"hosts": ["App.Example.com"]}, "spec.service.hosts[0]"),
        ({"timeout": "1500us"}, "spec.service.timeout"),
        ({"rewrite": {"uriRegexRewrite": {"match": "a", "rewrite": "b"}}}, "spec.service.rewrite.uriRegexRewrite"),
        (
            {"rewrite": {"uri": "/"}, "match": [{"uri": {"prefix": "/a"}}, {"uri": {"prefix": "/b"}}]},
            "spec.service.rewrite.uri",
        ),
        ({"rewrite": {"uri": "/"}, "match": [{"uri": {"exact": "/a"}}]}, "spec.service.rewrite.uri"),
        ({"headers": {"request": {"append": {"a": "b"}}}}, "spec.service.headers.request.append"),
    ],
)
def test_service_fields_an_httproute_cannot_express_are_refused(service: dict[str, Any], path: str) -> None:
    spec = spec_of(service)
    assert [p.path for p in spec_problems(spec)] == [path]
    with pytest.raises(GatewayApiUnsupported, match=path.replace(".", r"\.").replace("[", r"\[")):
        build_http_route(spec, "podinfo", "test")


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [("5s", "5s"), ("1.5s", "1s500ms"), ("100ms", "100ms"), ("1h30m", "1h30m"), ("0s", "0s"), ("250000s", "69h26m40s")],
)
def test_timeouts_become_the_request_timeout_of_every_rule(timeout: str, expected: str) -> None:
    assert gateway_duration(timeout) == expected
    analysis = {"interval": "1m", "iterations": 5, "match": [{"headers": {"x": {"exact": "1"}}}]}
    route = valid(build_http_route(spec_of({"timeout": timeout}, analysis), "podinfo", "test"))
    assert [r["timeouts"] for r in route["spec"]["rules"]] == [{"request": expected}] * 2


def test_header_operations_become_header_modifier_filters_on_every_rule() -> None:
    headers = {
        "request": {"set": {"x-b": "2", "x-a": "1"}, "add": {"x-c": "3"}, "remove": ["x-d"]},
        "response": {"remove": ["x-b3", "server"]},
    }
    analysis = {"interval": "1m", "iterations": 5, "match": [{"headers": {"x": {"exact": "1"}}}]}
    route = valid(build_http_route(spec_of({"headers": headers}, analysis), "podinfo", "test"))
    for item in route["spec"]["rules"]:
        assert filters_of(item, "RequestHeaderModifier") == [
            {
                "type": "RequestHeaderModifier",
                "requestHeaderModifier": {
                    "set": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}],
                    "add": [{"name": "x-c", "value": "3"}],
                    "remove": ["x-d"],
                },
            }
        ]
        assert filters_of(item, "ResponseHeaderModifier") == [
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["x-b3", "server"]}}
        ]


def test_a_prefix_rewrite_becomes_a_url_rewrite_filter() -> None:
    spec = spec_of({"match": [{"uri": {"prefix": "/api"}}], "rewrite": {"uri": "/", "authority": "backend.internal"}})
    route = valid(build_http_route(spec, "podinfo", "test"))
    assert filters_of(route["spec"]["rules"][0], "URLRewrite") == [
        {
            "type": "URLRewrite",
            "urlRewrite": {
                "hostname": "backend.internal",
                "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"},
            },
        }
    ]


@pytest.mark.parametrize(("mirror", "percent"), [(30, 30), (1, 1), (100, None)])
def test_mirroring_copies_a_share_of_the_requests_to_the_canary(mirror: int, percent: int | None) -> None:
    spec = spec_of(analysis={"interval": "1m", "iterations": 5, "mirror": True, "mirrorWeight": mirror})
    route = valid(build_http_route(spec, "podinfo", "test", Routes(100, 0, mirror=mirror)))
    (weighted,) = route["spec"]["rules"]
    (filter_,) = filters_of(weighted, "RequestMirror")
    expected: dict[str, Any] = {"backendRef": {"group": "", "kind": "Service", "name": "podinfo-canary", "port": 9898}}
    if percent is not None:
        expected["percent"] = percent
    assert filter_["requestMirror"] == expected
    assert read_routes(route, "podinfo") == Routes(100, 0, mirror)
    no_mirror = build_http_route(spec, "podinfo", "test", Routes(100, 0))
    assert "filters" not in no_mirror["spec"]["rules"][0]
    # A route edited by hand to use a fraction is read back as a percentage.
    filter_["requestMirror"].pop("percent", None)
    filter_["requestMirror"]["fraction"] = {"numerator": 1, "denominator": 4}
    assert read_routes(route, "podinfo") == Routes(100, 0, 25)


def test_session_cookies_stick_users_to_their_backend_and_expire_afterwards() -> None:
    analysis = {
        "interval": "1m",
        "stepWeight": 10,
        "sessionAffinity": {"cookieName": "flagger-cookie", "primaryCookieName": "primary-cookie", "maxAge": 600},
    }
    spec = spec_of({"headers": {"response": {"add": {"x-served-by": "coalmine"}}}}, analysis)
    cookies = SessionCookies("flagger-cookie=abc.def", None, "primary-cookie=xyz")
    route = valid(build_http_route(spec, "podinfo", "test", Routes(90, 10), cookies=cookies))
    assert [r["name"] for r in route["spec"]["rules"]] == [STICKY_RULE, STICKY_PRIMARY_RULE, WEIGHTED_RULE]
    assert rule(route, STICKY_RULE)["matches"] == [
        {
            "path": {"type": "PathPrefix", "value": "/"},
            "headers": [{"name": "Cookie", "type": "RegularExpression", "value": r".*flagger-cookie.*abc\.def.*"}],
        }
    ]
    assert rules_of(route)[STICKY_RULE] == [("podinfo-primary", 0), ("podinfo-canary", 100)]
    assert rules_of(route)[STICKY_PRIMARY_RULE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    primary_ref, canary_ref = rule(route, WEIGHTED_RULE)["backendRefs"]
    assert canary_ref["filters"] == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": "flagger-cookie=abc.def; Max-Age=600"}]},
        }
    ]
    assert primary_ref["filters"][0]["responseHeaderModifier"]["add"][0]["value"] == "primary-cookie=xyz; Max-Age=600"
    assert read_routes(route, "podinfo") == Routes(90, 10)

    over = valid(build_http_route(spec, "podinfo", "test", cookies=SessionCookies(None, "flagger-cookie=abc.def")))
    sticky, weighted = over["spec"]["rules"]
    assert rules_of(over)[STICKY_RULE] == [("podinfo-primary", 100), ("podinfo-canary", 0)]
    # The expiring Set-Cookie joins the service's own response modifier: Gateway API refuses a repeated filter.
    assert filters_of(sticky, "ResponseHeaderModifier") == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {
                "add": [
                    {"name": "Set-Cookie", "value": "flagger-cookie=abc.def; Max-Age=-1"},
                    {"name": "x-served-by", "value": "coalmine"},
                ]
            },
        }
    ]
    assert all("filters" not in ref for ref in weighted["backendRefs"])


def test_read_routes_recognises_only_our_split() -> None:
    ours = build_http_route(spec_of(), "podinfo", "test", Routes(80, 20))
    assert read_routes(ours, "podinfo") == Routes(80, 20)
    assert read_routes(ours) == Routes(80, 20)
    assert read_routes(None) is None
    foreign = {"spec": {"rules": [{"backendRefs": [{"name": "podinfo", "port": 80}]}]}}
    assert read_routes(foreign, "podinfo") is None
    assert read_routes(build_http_route(spec_of({"name": "other"}), "podinfo", "test"), "podinfo") is None
    edited = copy.deepcopy(ours)
    edited["spec"]["rules"][0]["backendRefs"][1]["weight"] = 35
    assert read_routes(edited, "podinfo") == Routes(80, 35)  # drift, reported as found
    del edited["spec"]["rules"][0]["backendRefs"][1]["weight"]
    assert read_routes(edited, "podinfo") == Routes(80, 1)  # Gateway API's default weight


# -- every built route validates; a wrong one is refused by the CEL rules ----------------------------------------

AB = {"interval": "1m", "iterations": 10, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}
SPECS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "default": ({}, None),
    # Same Gateway name in another namespace: another parent. The CEL rule only sees that through the escaped
    # ``__namespace__`` property (unescaped, both refs would look alike and the route would be refused).
    "gateway": (
        {
            "gatewayRefs": [GATEWAY, {**GATEWAY, "sectionName": "http"}, {**GATEWAY, "namespace": "other"}],
            "hosts": ["app.example.com"],
        },
        None,
    ),
    "full": (
        {
            "gatewayRefs": [GATEWAY],
            "hosts": ["app.example.com"],
            "match": [{"uri": {"prefix": "/api"}}],
            "rewrite": {"uri": "/"},
            "timeout": "2.5s",
            "headers": {"request": {"set": {"x-a": "1"}}, "response": {"add": {"x-b": "2"}, "remove": ["server"]}},
        },
        None,
    ),
    "ab": ({"match": [{"uri": {"regex": "/v[0-9]+/.*"}}, {"uri": {"exact": "/login"}}]}, AB),
    "mirror": ({"timeout": "5s"}, {"interval": "1m", "iterations": 5, "mirror": True, "mirrorWeight": 40}),
    "sticky": (
        {"match": [{"queryParams": {"beta": {"exact": "1"}}}], "headers": {"response": {"set": {"x-c": "3"}}}},
        {"interval": "1m", "stepWeight": 20, "sessionAffinity": {"cookieName": "c", "primaryCookieName": "p"}},
    ),
}
STATES = {
    "idle": (Routes(100, 0), SessionCookies()),
    "progressing": (Routes(60, 40, None, True), SessionCookies("c=abcdefghij", None, "p=klmnopqrst")),
    "mirroring": (Routes(100, 0, 40), SessionCookies()),
    "over": (Routes(100, 0), SessionCookies(None, "c=abcdefghij")),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", SPECS)
def test_every_built_route_passes_the_real_schema_and_its_cel_rules(name: str, state: str) -> None:
    service, analysis = SPECS[name]
    routes, cookies = STATES[state]
    valid(build_http_route(spec_of(service, analysis), "podinfo", "test", routes, cookies=cookies))


def _broken(change: str) -> dict[str, Any]:
    spec = spec_of(*SPECS["full"])
    route = build_http_route(spec, "podinfo", "test", Routes(50, 50, 20))
    weighted = route["spec"]["rules"][0]
    if change == "repeated-filter":
        weighted["filters"].append(copy.deepcopy(weighted["filters"][0]))
    elif change == "filter-type":
        weighted["filters"][0]["type"] = "RequestMirror"
    elif change == "service-port":
        del weighted["backendRefs"][1]["port"]
    elif change == "mirror-share":
        filters_of(weighted, "RequestMirror")[0]["requestMirror"]["fraction"] = {"numerator": 1}
    elif change == "relative-path":
        weighted["matches"][0]["path"]["value"] = "api"
    elif change == "rewrite-two-prefixes":
        weighted["matches"].append({"path": {"type": "PathPrefix", "value": "/v2"}})
    elif change == "same-parent-twice":
        route["spec"]["parentRefs"].append(copy.deepcopy(route["spec"]["parentRefs"][0]))
    elif change == "backend-timeout":
        weighted["timeouts"]["backendRequest"] = "10s"
    return route


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ("repeated-filter", "spec.rules[0].filters", "RequestHeaderModifier filter cannot be repeated"),
        ("filter-type", "spec.rules[0].filters[0]", "filter.requestHeaderModifier must be nil"),
        ("service-port", "spec.rules[0].backendRefs[1]", "Must have port for Service reference"),
        ("mirror-share", "spec.rules[0].filters[3].requestMirror", "Only one of percent or fraction"),
        ("relative-path", "spec.rules[0].matches[0].path", "value must be an absolute path"),
        ("rewrite-two-prefixes", "spec.rules[0]", "exactly one PathPrefix match must be specified"),
        ("same-parent-twice", "spec.parentRefs", "sectionName must be unique"),  # needs __namespace__ escaping
        ("backend-timeout", "spec.rules[0].timeouts", "backendRequest timeout cannot be longer than request timeout"),
    ],
)
def test_a_wrong_route_is_refused_by_the_cel_rules(change: str, path: str, message: str) -> None:
    found = httproute_problems(_broken(change))
    assert [p.path for p in found] == [path]
    assert message in found[0].message


def test_duplicate_keys_of_a_list_map_are_refused() -> None:
    route = build_http_route(spec_of(*SPECS["full"]), "podinfo", "test")
    modifier = route["spec"]["rules"][0]["filters"][0]["requestHeaderModifier"]
    modifier["set"].append({"name": "x-a", "value": "again"})
    assert [p.path for p in httproute_problems(route)] == ["spec.rules[0].filters[0].requestHeaderModifier.set[1]"]


# -- route status ------------------------------------------------------------------------------------------------


def _with_status(
    *conditions: dict[str, Any], parent: dict[str, Any] | None = None, generation: int = 2
) -> dict[str, Any]:
    route = build_http_route(spec_of({"gatewayRefs": [GATEWAY]}), "podinfo", "test")
    route["metadata"]["generation"] = generation
    ref = parent if parent is not None else dict(GATEWAY)  # controllers echo the ref as written, defaults or not
    route["status"] = {
        "parents": [{"parentRef": ref, "controllerName": "example.com/gateway", "conditions": list(conditions)}]
    }
    return route


def cond(kind: str, status: str, reason: str = "", message: str = "", generation: int = 2) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (None, None),
        (build_http_route(spec_of(), "podinfo", "test"), None),
        (_with_status(cond("Accepted", "True", "Accepted"), cond("ResolvedRefs", "True", "ResolvedRefs")), None),
        (
            _with_status(cond("Accepted", "False", "NotAllowedByListeners", "no listener allows HTTPRoute")),
            "Gateway gateways/public (section https) (example.com/gateway) did not accept the route: "
            "NotAllowedByListeners: no listener allows HTTPRoute",
        ),
        (
            _with_status(cond("Accepted", "True"), cond("ResolvedRefs", "False", "BackendNotFound", "podinfo-canary")),
            "Gateway gateways/public (section https) (example.com/gateway) cannot resolve its references: "
            "BackendNotFound: podinfo-canary",
        ),
        (_with_status(cond("Accepted", "False", "NoMatchingParent", generation=1)), None),  # about an older spec
        (_with_status(cond("Accepted", "Unknown", "Pending")), None),
        (_with_status(cond("Accepted", "False", "NotAllowed"), parent={"name": "elsewhere"}), None),  # not a parent
    ],
    ids=["missing", "no-status", "fine", "refused", "unresolved", "stale", "pending", "foreign-parent"],
)
def test_route_problem_reads_the_parents_conditions(route: dict[str, Any] | None, expected: str | None) -> None:
    assert route_problem(route) == expected


# -- GatewayApiRouter against an in-memory API --------------------------------------------------------------------


def route_in(kube: FakeKube) -> dict[str, Any]:
    route = kube.get(HTTPROUTES, "test", "podinfo")
    assert route is not None
    return route


def test_reconcile_creates_an_owned_route_at_primary_100_and_is_then_write_free() -> None:
    kube = FakeKube()
    spec = spec_of(*SPECS["full"])
    router = GatewayApiRouter(kube, spec, CANARY_META)
    assert router.get_routes() is None and router.route_problem() is None
    router.reconcile(spec, CANARY_META)
    assert kube.writes == [("create", "HTTPRoute", "podinfo")]
    assert httproute_problems(route_in(kube)) == []
    assert route_in(kube)["metadata"]["ownerReferences"][0]["name"] == "podinfo"
    assert router.get_routes() == Routes(100, 0)
    kube.writes.clear()
    router.reconcile(spec, CANARY_META)
    assert kube.writes == []


def test_set_routes_then_reconcile_keeps_the_split_and_applies_spec_changes() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = GatewayApiRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    router.set_routes(80, 20)
    assert router.get_routes() == Routes(80, 20)
    router.reconcile(spec_of({"timeout": "3s"}), CANARY_META)
    assert route_in(kube)["spec"]["rules"][0]["timeouts"] == {"request": "3s"}
    assert router.get_routes() == Routes(80, 20)
    router.reconcile(spec, CANARY_META)  # removing the timeout from the spec removes it from the route
    assert "timeouts" not in route_in(kube)["spec"]["rules"][0]
    router.set_routes(100, 0, mirror=50)
    assert router.get_routes() == Routes(100, 0, 50)


def test_a_manual_edit_of_the_weights_is_visible_and_put_back() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = GatewayApiRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    router.set_routes(90, 10)
    route = route_in(kube)
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        ref["weight"] = 50
    kube.replace(HTTPROUTES, "test", route)
    assert router.get_routes() == Routes(50, 50)
    router.reconcile(spec, CANARY_META)
    assert router.get_routes() == Routes(50, 50)  # reconcile alone never changes weights
    router.set_routes(90, 10)
    assert router.get_routes() == Routes(90, 10)


def test_an_existing_route_is_saved_taken_over_with_its_metadata_and_restored() -> None:
    kube = FakeKube()
    original_spec = {
        "parentRefs": [{"name": "public", "namespace": "gateways"}],
        "rules": [{"backendRefs": [{"name": "podinfo", "port": 9898}]}],
    }
    kube.put(
        HTTPROUTES,
        "test",
        {
            "metadata": {"name": "podinfo", "labels": {"owner": "platform"}, "annotations": {"note": "hand-made"}},
            "spec": original_spec,
            "status": {"parents": []},
        },
    )
    spec = spec_of({"gatewayRefs": [GATEWAY], "apex": {"labels": {"exposed": "true"}}})
    router = GatewayApiRouter(kube, spec, CANARY_META)
    assert router.get_routes() is None  # not ours yet
    router.reconcile(spec, CANARY_META)
    taken = route_in(kube)
    assert httproute_problems(taken) == []
    assert json.loads(taken["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION]) == original_spec
    assert taken["metadata"]["annotations"]["note"] == "hand-made"
    assert taken["metadata"]["labels"] == {"owner": "platform", "exposed": "true"}
    assert "ownerReferences" not in taken["metadata"]  # deleting the Canary must not delete the user's route
    assert router.get_routes() == Routes(100, 0)
    router.set_routes(70, 30)
    router.reconcile(spec, CANARY_META)  # the saved original is never overwritten by our own spec
    assert json.loads(route_in(kube)["metadata"]["annotations"][ORIGINAL_CONFIGURATION_ANNOTATION]) == original_spec
    assert router.get_routes() == Routes(70, 30)

    router.finalize()
    restored = route_in(kube)
    assert restored["spec"] == original_spec
    assert restored["metadata"]["annotations"] == {"note": "hand-made"}


def test_finalize_deletes_the_route_coalmine_created_and_tolerates_absence() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = GatewayApiRouter(kube, spec, CANARY_META)
    router.finalize()
    router.reconcile(spec, CANARY_META)
    router.finalize()
    assert kube.objects == {}


def test_set_routes_needs_a_reconciled_route_and_conflicts_are_retried() -> None:
    kube = FakeKube()
    spec = spec_of()
    router = GatewayApiRouter(kube, spec, CANARY_META)
    with pytest.raises(ApiNotFound, match="HTTPRoute test/podinfo"):
        router.set_routes(90, 10)
    router.reconcile(spec, CANARY_META)
    kube.conflicts = 2
    router.set_routes(60, 40)
    assert router.get_routes() == Routes(60, 40)
    assert route_in(kube)["metadata"]["annotations"]["someone-else"]  # the other writer's change survived
    kube.conflicts = 100
    with pytest.raises(ApiConflict, match="HTTPRoute test/podinfo"):
        router.set_routes(50, 50)


def test_session_cookies_are_kept_across_set_routes_and_expired_after_the_run() -> None:
    kube = FakeKube()
    analysis = {"interval": "1m", "stepWeight": 10, "sessionAffinity": {"cookieName": "flagger-cookie"}}
    spec = spec_of(analysis=analysis)
    router = GatewayApiRouter(kube, spec, CANARY_META, cookie_factory=lambda: "abcdefghij")
    router.reconcile(spec, CANARY_META)
    router.set_routes(90, 10)
    route = route_in(kube)
    assert httproute_problems(route) == []
    assert route["metadata"]["annotations"][SESSION_COOKIE_ANNOTATION] == "flagger-cookie=abcdefghij"
    assert [r["name"] for r in route["spec"]["rules"]] == [STICKY_RULE, WEIGHTED_RULE]
    router.set_routes(80, 20)
    router.reconcile(spec, CANARY_META)
    assert route_in(kube)["metadata"]["annotations"][SESSION_COOKIE_ANNOTATION] == "flagger-cookie=abcdefghij"
    assert router.get_routes() == Routes(80, 20)
    router.set_routes(100, 0)
    done = route_in(kube)
    assert SESSION_COOKIE_ANNOTATION not in done["metadata"]["annotations"]
    assert done["metadata"]["annotations"][PREVIOUS_SESSION_COOKIE_ANNOTATION] == "flagger-cookie=abcdefghij"
    sticky = rule(done, STICKY_RULE)
    assert filters_of(sticky, "ResponseHeaderModifier")[0]["responseHeaderModifier"]["add"] == [
        {"name": "Set-Cookie", "value": "flagger-cookie=abcdefghij; Max-Age=-1"}
    ]
    assert router.get_routes() == Routes(100, 0)


def test_route_problem_reads_the_live_route() -> None:
    kube = FakeKube()
    spec = spec_of({"gatewayRefs": [GATEWAY]})
    router = GatewayApiRouter(kube, spec, CANARY_META)
    router.reconcile(spec, CANARY_META)
    assert router.route_problem() is None
    route = route_in(kube)
    route["status"] = {
        "parents": [
            {
                "parentRef": {**GATEWAY, "group": "gateway.networking.k8s.io", "kind": "Gateway"},
                "controllerName": "example.com/gateway",
                "conditions": [cond("Accepted", "False", "NotAllowedByListeners", "nope", generation=1)],
            }
        ]
    }
    kube.replace(HTTPROUTES, "test", route)
    assert router.route_problem() == (
        "Gateway gateways/public (section https) (example.com/gateway) did not accept the route: "
        "NotAllowedByListeners: nope"
    )
