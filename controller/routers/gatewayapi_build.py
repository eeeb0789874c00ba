"""Gateway API routing, the pure part: the HTTPRoute ``<svc>`` splitting traffic between ``<svc>-primary`` and
``<svc>-canary``, reading the split and the route's status back. :mod:`controller.routers.gatewayapi` applies it.

Shape of the HTTPRoute (Flagger's, with the rule order of Coalmine's VirtualService): ``parentRefs`` =
``service.gatewayRefs`` — or, without them, the apex Service itself (GAMMA: the mesh routes traffic addressed to
``<svc>``) — ``hostnames`` = ``service.hosts``, and named rules, each carrying the service's header filters,
URL rewrite and request timeout:

1. ``canary-match`` (A/B only, ``analysis.match`` ANDed with ``service.match``): matching requests go to the
   canary (weight 100) while the A/B analysis runs, to the primary otherwise;
2. ``sticky-route`` (``analysis.sessionAffinity``): requests carrying the canary's cookie stay on the canary, and
   once the run is over that rule sends them to the primary and expires the cookie (``Max-Age=-1``);
   ``sticky-route-primary`` (``primaryCookieName``) keeps requests carrying the primary's cookie on the primary;
3. ``weighted``: the primary/canary split; while the canary has traffic each backend's responses set its session
   cookie (a ``ResponseHeaderModifier`` on the backendRef); with mirroring, a ``RequestMirror`` filter copies
   ``percent`` of the requests to the canary.

Gateway API ranks matches by how specific they are (not by rule order): the A/B and cookie rules are the weighted
rule's matches with more conditions, so they win where both match. Everything is written in the form the API
server stores (schema defaults filled in), so an unchanged route compares equal and is never rewritten. What the
standard channel cannot express is refused (:class:`GatewayApiUnsupported`), never dropped.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from controller.kube.api import Resource
from controller.kube.meta import CANARY_KIND, copyable_annotations, owner_reference
from controller.kube.objects import service_names
from controller.rollout.gatewayapi_schema import httproute_problems, with_defaults
from controller.rollout.gatewayapi_translate import (
    ab_matches,
    cookie_matches,
    gateway_duration,
    header_filter,
    percent_of,
    service_matches,
    spec_problems,
)
from controller.rollout.problems import Findings
from controller.rollout.spec import CanarySpec
from controller.routers import RouterError, Routes
from controller.routers.istio import set_cookie_value
from controller.routers.takeover import SessionCookies

Object = dict[str, Any]

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_VERSION = f"{GATEWAY_API_GROUP}/v1"
HTTPROUTES = Resource(GATEWAY_API_GROUP, "v1", "httproutes", "HTTPRoute")
MATCH_RULE = "canary-match"
STICKY_RULE = "sticky-route"
STICKY_PRIMARY_RULE = "sticky-route-primary"
WEIGHTED_RULE = "weighted"


class GatewayApiUnsupported(RouterError, ValueError):
    """The Canary asks for routing an HTTPRoute (standard channel) cannot express; the message names the fields."""


def parent_refs(spec: CanarySpec) -> list[Object]:
    """``service.gatewayRefs`` as written, or the apex Service (GAMMA) on ``service.port``."""
    if spec.service.gateway_refs:
        return [copy.deepcopy(dict(ref)) for ref in spec.service.gateway_refs]
    apex = service_names(spec)[0]
    return [{"group": "", "kind": "Service", "name": apex, "port": spec.service.port}]


def _backend(spec: CanarySpec, name: str, weight: int | None = None) -> Object:
    ref: Object = {"group": "", "kind": "Service", "name": name, "port": spec.service.port}
    if weight is not None:
        ref["weight"] = weight
    return ref


def _set_cookie_filter(value: str) -> Object:
    return {
        "type": "ResponseHeaderModifier",
        "responseHeaderModifier": {"add": [{"name": "Set-Cookie", "value": value}]},
    }


def _with_set_cookie(filters: list[Object], value: str) -> list[Object]:
    """``filters`` with ``Set-Cookie: value`` added to the response modifier (one only: CEL refuses repeats)."""
    result = copy.deepcopy(filters)
    for item in result:
        if item.get("type") == "ResponseHeaderModifier":
            modifier = item["responseHeaderModifier"]
            others = [h for h in modifier.get("add", ()) if str(h["name"]).lower() != "set-cookie"]
            modifier["add"] = sorted([*others, {"name": "Set-Cookie", "value": value}], key=lambda h: str(h["name"]))
            return result
    return [*result, _set_cookie_filter(value)]


def _service_filters(spec: CanarySpec) -> list[Object]:
    """The filters every rule carries: ``service.headers`` request/response operations, ``service.rewrite``."""
    filters: list[Object] = []
    headers = spec.service.headers or {}
    ignored = Findings()  # spec_problems reported them before anything is built
    for side, kind, key in (
        ("request", "RequestHeaderModifier", "requestHeaderModifier"),
        ("response", "ResponseHeaderModifier", "responseHeaderModifier"),
    ):
        modifier = header_filter(headers.get(side), f"spec.service.headers.{side}", ignored)
        if modifier:
            filters.append({"type": kind, key: modifier})
    rewrite = spec.service.rewrite or {}
    if rewrite.get("uri") or rewrite.get("authority"):
        body: Object = {}
        if rewrite.get("authority"):
            body["hostname"] = str(rewrite["authority"])
        if rewrite.get("uri"):
            body["path"] = {"type": "ReplacePrefixMatch", "replacePrefixMatch": str(rewrite["uri"])}
        filters.append({"type": "URLRewrite", "urlRewrite": body})
    return filters


def _rule(spec: CanarySpec, name: str, matches: list[Object], primary: int, canary: int) -> Object:
    _, primary_name, canary_name = service_names(spec)
    rule: Object = {
        "name": name,
        "matches": matches,
        "backendRefs": [_backend(spec, primary_name, primary), _backend(spec, canary_name, canary)],
    }
    filters = _service_filters(spec)
    if filters:
        rule["filters"] = filters
    if spec.service.timeout is not None:
        rule["timeouts"] = {"request": gateway_duration(str(spec.service.timeout))}
    return rule


def _rules(spec: CanarySpec, routes: Routes, cookies: SessionCookies) -> list[Object]:
    canary_name = service_names(spec)[2]
    ignored = Findings()
    rules: list[Object] = []
    if spec.analysis.match:
        active = routes.match_active
        rules.append(_rule(spec, MATCH_RULE, ab_matches(spec, ignored), 0 if active else 100, 100 if active else 0))
    weighted = _rule(spec, WEIGHTED_RULE, service_matches(spec, ignored), routes.primary, routes.canary)
    affinity = spec.analysis.session_affinity
    if affinity and cookies.current and routes.canary > 0:
        weighted["backendRefs"][1]["filters"] = [_set_cookie_filter(set_cookie_value(affinity, cookies.current))]
        rules.append(_rule(spec, STICKY_RULE, cookie_matches(spec, cookies.current), 0, 100))
        if affinity.primary_cookie_name and cookies.primary:
            weighted["backendRefs"][0]["filters"] = [_set_cookie_filter(set_cookie_value(affinity, cookies.primary))]
            rules.append(_rule(spec, STICKY_PRIMARY_RULE, cookie_matches(spec, cookies.primary), 100, 0))
    elif affinity and cookies.previous and routes.canary == 0:
        sticky = _rule(spec, STICKY_RULE, cookie_matches(spec, cookies.previous), 100, 0)
        expire = set_cookie_value(affinity, cookies.previous, max_age=-1)
        sticky["filters"] = _with_set_cookie(sticky.get("filters", []), expire)
        rules.append(sticky)
    if routes.mirror:
        mirror: Object = {"backendRef": _backend(spec, canary_name)}
        if routes.mirror < 100:
            mirror["percent"] = routes.mirror  # Gateway API mirrors every request unless told a share
        weighted["filters"] = [*weighted.get("filters", []), {"type": "RequestMirror", "requestMirror": mirror}]
    rules.append(weighted)
    return rules


def build_http_route(
    spec: CanarySpec,
    canary_name: str,
    namespace: str,
    weights: Routes = Routes(100, 0),
    *,
    canary_uid: str = "",
    cookies: SessionCookies = SessionCookies(),
    owned: bool = True,
    annotations: Mapping[str, str] | None = None,
    owner_kind: str = CANARY_KIND,
    api_version: str = GATEWAY_API_VERSION,
) -> Object:
    """The HTTPRoute ``<svc>`` for ``weights`` (checked: each in 0..100, summing to 100), in the defaulted form the
    API server stores. Raises :class:`GatewayApiUnsupported` for a spec it cannot express (:func:`spec_problems`).

    ``owned`` adds a controller owner reference to the Canary (only for an HTTPRoute Coalmine creates);
    ``annotations`` are extra bookkeeping (the saved original configuration, session cookies).
    """
    weights.check()
    problems = spec_problems(spec)
    if problems:
        listed = "; ".join(f"{problem.path}: {problem.message}" for problem in problems)
        raise GatewayApiUnsupported(f"the Gateway API router cannot apply this Canary: {listed}")
    apex = service_names(spec)[0]
    body: Object = {"parentRefs": parent_refs(spec)}
    if spec.service.hosts:
        body["hostnames"] = list(spec.service.hosts)
    body["rules"] = _rules(spec, weights, cookies)
    custom = spec.service.apex or {}
    metadata: Object = {"name": apex, "namespace": namespace, "labels": dict(custom.get("labels") or {})}
    merged_annotations = {**copyable_annotations(custom.get("annotations")), **dict(annotations or {})}
    if merged_annotations:
        metadata["annotations"] = merged_annotations
    if owned:
        metadata["ownerReferences"] = [
            owner_reference({"kind": owner_kind, "metadata": {"name": canary_name, "uid": canary_uid}})
        ]
    route_spec = with_defaults(body, "spec")
    # What the API server would refuse is refused here, naming the route's field: schema and CEL, as it would.
    refused = httproute_problems(route_spec, "spec")
    if refused:
        listed = "; ".join(f"HTTPRoute {apex}: {problem.path}: {problem.message}" for problem in refused)
        raise GatewayApiUnsupported(f"Gateway API's schema refuses the route this Canary needs: {listed}")
    return {"apiVersion": api_version, "kind": "HTTPRoute", "metadata": metadata, "spec": route_spec}


def _weights(rule: Mapping[str, Any], primary: str, canary: str) -> tuple[int, int] | None:
    found: dict[str, int] = {}
    for ref in rule.get("backendRefs") or ():
        if not isinstance(ref, Mapping) or ref.get("group", "") != "" or ref.get("kind", "Service") != "Service":
            continue
        name = str(ref.get("name", ""))
        weight = int(ref.get("weight", 1))  # Gateway API's default weight
        if name == primary or (not primary and name.endswith("-primary")):
            found["primary"] = weight
        elif name == canary or (not canary and name.endswith("-canary")):
            found["canary"] = weight
    if "primary" not in found or "canary" not in found:
        return None
    return found["primary"], found["canary"]


def _mirror(rule: Mapping[str, Any], canary: str) -> int | None:
    for item in rule.get("filters") or ():
        mirror = item.get("requestMirror") if isinstance(item, Mapping) else None
        if item.get("type") != "RequestMirror" or not isinstance(mirror, Mapping):
            continue
        name = str((mirror.get("backendRef") or {}).get("name", ""))
        if name == canary or (not canary and name.endswith("-canary")):
            if "fraction" in mirror:
                return percent_of(mirror["fraction"])
            return int(mirror.get("percent", 100))
    return None


def read_routes(route: Mapping[str, Any] | None, apex: str | None = None) -> Routes | None:
    """The split in a live HTTPRoute, or ``None`` if no rule sends traffic to both primary and canary (not ours).

    Weights are returned as found (a manual edit may not sum to 100: that is drift for the engine to undo); a
    backendRef without a weight has Gateway API's default, 1. ``apex`` pins the expected Services; without it any
    ``*-primary``/``*-canary`` pair is recognised.
    """
    if not route:
        return None
    primary = f"{apex}-primary" if apex else ""
    canary = f"{apex}-canary" if apex else ""
    rules = [r for r in (route.get("spec") or {}).get("rules") or () if isinstance(r, Mapping)]
    named = [r for r in rules if r.get("name") == WEIGHTED_RULE]
    candidates = named or [r for r in reversed(rules) if _weights(r, primary, canary) is not None]
    if not candidates:
        return None
    weights = _weights(candidates[0], primary, canary)
    if weights is None:
        return None
    match_active = any(
        r.get("name") == MATCH_RULE and (_weights(r, primary, canary) or (100, 0))[1] == 100 for r in rules
    )
    return Routes(weights[0], weights[1], _mirror(candidates[0], canary), match_active)


def _parent_key(ref: Mapping[str, Any], namespace: str) -> tuple[str, str, str, str, str, int | None]:
    defaulted = with_defaults(dict(ref), "spec.parentRefs[]")
    return (
        str(defaulted.get("group", "")),
        str(defaulted.get("kind", "")),
        str(defaulted.get("namespace") or namespace),
        str(defaulted.get("name", "")),
        str(defaulted.get("sectionName") or ""),
        defaulted.get("port"),
    )


def _describe_parent(ref: Mapping[str, Any], namespace: str) -> str:
    _, kind, ns, name, section, port = _parent_key(ref, namespace)
    where = f"{kind} {ns}/{name}"
    if section:
        where += f" (section {section})"
    if port:
        where += f" (port {port})"
    return where


def route_problem(route: Mapping[str, Any] | None) -> str | None:
    """Why a parent (Gateway or mesh) does not route by this HTTPRoute, from ``status.parents[].conditions``:
    ``Accepted`` or ``ResolvedRefs`` false for the route's current generation. ``None`` when every parent that has
    answered is fine, or none has answered yet (a condition about an older generation is not an answer)."""
    if not route:
        return None
    metadata = route.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    generation = metadata.get("generation")
    ours = {_parent_key(ref, namespace) for ref in (route.get("spec") or {}).get("parentRefs") or ()}
    found: list[str] = []
    for parent in (route.get("status") or {}).get("parents") or ():
        ref = parent.get("parentRef") or {}
        if _parent_key(ref, namespace) not in ours:
            continue  # a parent the route no longer names: its status is stale
        for condition in parent.get("conditions") or ():
            observed = condition.get("observedGeneration")
            if generation is not None and observed is not None and int(observed) < int(generation):
                continue
            if condition.get("type") not in ("Accepted", "ResolvedRefs") or condition.get("status") != "False":
                continue
            what = "did not accept the route" if condition["type"] == "Accepted" else "cannot resolve its references"
            detail = ": ".join(str(part) for part in (condition.get("reason"), condition.get("message")) if part)
            controller = parent.get("controllerName")
            by = f" ({controller})" if controller else ""
            found.append(f"{_describe_parent(ref, namespace)}{by} {what}" + (f": {detail}" if detail else ""))
    return "; ".join(found) if found else None
