"""Istio routing: a VirtualService ``<svc>`` splitting traffic between ``<svc>-primary`` and ``<svc>-canary``.

Pure builders (:func:`build_virtual_service`, :func:`build_destination_rules`, :func:`read_routes`) sit next to the
effectful :class:`IstioRouter`, which applies them through :mod:`controller.kube.client`.

Shape of the VirtualService (Flagger's): ``hosts`` = ``service.hosts`` plus ``<svc>``, ``gateways`` (default
``mesh``), and HTTP routes carrying ``service.match/rewrite/retries/timeout/headers/corsPolicy``:

1. ``canary-match`` (A/B only, ``analysis.match`` merged with ``service.match``): matching requests go to the
   canary (100) while the A/B analysis runs, to the primary otherwise;
2. ``sticky-route`` (``analysis.sessionAffinity`` only): requests carrying the canary's cookie stay on the canary;
   ``sticky-route-primary`` (with ``primaryCookieName``): requests carrying the primary's cookie stay on the primary;
3. ``weighted``: the primary/canary split, with ``mirror``/``mirrorPercentage`` when mirroring; while the canary
   has traffic, responses of each destination set its session cookie (Flagger's ``Set-Cookie`` values).

Match conditions are combined by :mod:`controller.rollout.match_merge` (every field kept, ANDed with
``service.match``); validation has refused the specs whose conditions cannot be combined or that a TCP route could
not carry, so nothing is dropped here.

An existing VirtualService Coalmine did not create is taken over: its spec is saved in the annotation
``coalmine.dev/original-configuration`` and put back by :meth:`IstioRouter.finalize`; it never gets an owner
reference, so deleting the Canary can't garbage-collect a user's object.
"""

from __future__ import annotations

import copy
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

from controller.kube.client import (
    DESTINATION_RULES,
    VIRTUAL_SERVICES,
    KubeApi,
    create_or_update,
    describe,
    update_with_retry,
)
from controller.kube.errors import ApiNotFound
from controller.kube.meta import CANARY_KIND, copyable_annotations, is_owned_by, owner_reference
from controller.kube.objects import service_names
from controller.rollout.match_merge import merge_match
from controller.rollout.spec import CanarySpec, SessionAffinity
from controller.routers import Router, Routes
from controller.routers.takeover import (
    PREVIOUS_SESSION_COOKIE_ANNOTATION,
    PRIMARY_SESSION_COOKIE_ANNOTATION,
    SESSION_COOKIE_ANNOTATION,
    SessionCookies,
    live_state,
    next_cookies,
    restored,
)

Object = dict[str, Any]

ISTIO_API_VERSION = "networking.istio.io/v1beta1"
MATCH_ROUTE = "canary-match"
STICKY_ROUTE = "sticky-route"
STICKY_PRIMARY_ROUTE = "sticky-route-primary"
WEIGHTED_ROUTE = "weighted"
DEFAULT_COOKIE_MAX_AGE_S = 86400
_RE2_SPECIAL = frozenset("\\.^$|?*+()[]{}")


def _is_tcp(spec: CanarySpec) -> bool:
    return (spec.service.app_protocol or "").lower() == "tcp"


def _destination(spec: CanarySpec, host: str, weight: int) -> Object:
    destination: Object = {"host": host}
    # Behind an ingress gateway with port discovery the destination port must be explicit (Flagger's rule).
    if spec.service.port_discovery and spec.service.gateways and spec.service.gateways[0] != "mesh":
        destination["port"] = {"number": spec.service.port}
    return {"destination": destination, "weight": weight}


def _route_options(spec: CanarySpec) -> Object:
    service = spec.service
    options: Object = {}
    for key, value in (
        ("match", [dict(m) for m in service.match]),
        ("rewrite", service.rewrite),
        ("timeout", service.timeout),
        ("retries", service.retries),
        ("headers", service.headers),
        ("corsPolicy", service.cors_policy),
    ):
        if value:
            options[key] = copy.deepcopy(value)
    return options


def _re2_literal(text: str) -> str:
    return "".join(f"\\{char}" if char in _RE2_SPECIAL else char for char in text)


def _cookie_match(spec: CanarySpec, cookie: str) -> list[Object]:
    """Flagger's cookie condition (``.*<name>.*<value>.*`` on ``Cookie``; metacharacters escaped), ANDed with
    ``service.match`` so a sticky route never matches what the service does not."""
    name, _, value = cookie.partition("=")
    condition = {"headers": {"Cookie": {"regex": f".*{_re2_literal(name)}.*{_re2_literal(value)}.*"}}}
    return merge_match([condition], spec.service.match)


def set_cookie_value(affinity: SessionAffinity, cookie: str, max_age: int | None = None) -> str:
    """The ``Set-Cookie`` value for ``cookie`` (``name=value``) with the attributes of ``sessionAffinity``, as
    Flagger's ``BuildCookie`` writes it (attributes in alphabetical order); ``max_age`` overrides ``maxAge``
    (``-1`` expires the cookie, and then Domain/Path must be the same for a browser to delete it)."""
    parts = [cookie]
    if affinity.domain:
        parts.append(f"Domain={affinity.domain}")
    if affinity.http_only:
        parts.append("HttpOnly")
    parts.append(f"Max-Age={affinity.max_age if max_age is None else max_age}")
    if affinity.partitioned:
        parts.append("Partitioned")
    if affinity.path:
        parts.append(f"Path={affinity.path}")
    if affinity.same_site:
        parts.append(f"SameSite={affinity.same_site}")
    if affinity.secure:
        parts.append("Secure")
    return "; ".join(parts)


def _with_response_header(headers: Mapping[str, Any] | None, name: str, value: str) -> Object:
    result = copy.deepcopy(dict(headers or {}))
    response = result.setdefault("response", {})
    response.setdefault("add", {})[name] = value
    return result


def _http_routes(spec: CanarySpec, routes: Routes, cookies: SessionCookies, apex: str) -> list[Object]:
    primary, canary = f"{apex}-primary", f"{apex}-canary"
    options = _route_options(spec)
    http: list[Object] = []
    if spec.analysis.match:
        active = routes.match_active
        http.append(
            {
                "name": MATCH_ROUTE,
                **options,
                "match": merge_match(spec.analysis.match, spec.service.match),
                "route": [
                    _destination(spec, primary, 0 if active else 100),
                    _destination(spec, canary, 100 if active else 0),
                ],
            }
        )
    weighted: Object = {
        "name": WEIGHTED_ROUTE,
        **options,
        "route": [_destination(spec, primary, routes.primary), _destination(spec, canary, routes.canary)],
    }
    affinity = spec.analysis.session_affinity
    if affinity and cookies.current and routes.canary > 0:
        set_cookie = set_cookie_value(affinity, cookies.current)
        weighted["route"][1]["headers"] = {"response": {"add": {"Set-Cookie": set_cookie}}}
        sticky = {**options, "name": STICKY_ROUTE, "match": _cookie_match(spec, cookies.current)}
        sticky["route"] = [_destination(spec, primary, 0), _destination(spec, canary, 100)]
        http.append(sticky)
        if affinity.primary_cookie_name and cookies.primary:
            set_primary = set_cookie_value(affinity, cookies.primary)
            weighted["route"][0]["headers"] = {"response": {"add": {"Set-Cookie": set_primary}}}
            pinned = {**options, "name": STICKY_PRIMARY_ROUTE, "match": _cookie_match(spec, cookies.primary)}
            pinned["route"] = [_destination(spec, primary, 100), _destination(spec, canary, 0)]
            http.append(pinned)
    elif affinity and cookies.previous and routes.canary == 0:
        expire = set_cookie_value(affinity, cookies.previous, max_age=-1)
        sticky = {**options, "name": STICKY_ROUTE, "match": _cookie_match(spec, cookies.previous)}
        sticky["headers"] = _with_response_header(options.get("headers"), "Set-Cookie", expire)
        sticky["route"] = [_destination(spec, primary, 100), _destination(spec, canary, 0)]
        http.append(sticky)
    if routes.mirror:
        weighted["mirror"] = {"host": canary}
        weighted["mirrorPercentage"] = {"value": float(routes.mirror)}
    http.append(weighted)
    return http


def build_virtual_service(
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
) -> Object:
    """The VirtualService ``<svc>`` for ``weights`` (checked: each in 0..100, summing to 100).

    ``owned`` adds a controller owner reference to the Canary (only for a VirtualService Coalmine creates);
    ``annotations`` are extra bookkeeping (the saved original configuration, session cookies).
    """
    weights.check()
    apex, primary, canary = service_names(spec)
    hosts = list(spec.service.hosts)
    if apex not in hosts and "*" not in hosts:
        hosts.append(apex)
    body: Object = {"hosts": hosts, "gateways": list(spec.service.gateways or ("mesh",))}
    if _is_tcp(spec):
        tcp: Object = {
            "route": [_destination(spec, primary, weights.primary), _destination(spec, canary, weights.canary)]
        }
        ports = [{"port": m["port"]} for m in spec.service.match if m.get("port")]
        if ports:
            tcp["match"] = ports
        body["tcp"] = [tcp]
    else:
        body["http"] = _http_routes(spec, weights, cookies, apex)
    custom = spec.service.apex or {}
    metadata: Object = {"name": apex, "namespace": namespace, "labels": dict(custom.get("labels") or {})}
    merged_annotations = {**copyable_annotations(custom.get("annotations")), **dict(annotations or {})}
    if merged_annotations:
        metadata["annotations"] = merged_annotations
    if owned:
        metadata["ownerReferences"] = [
            owner_reference({"kind": owner_kind, "metadata": {"name": canary_name, "uid": canary_uid}})
        ]
    return {"apiVersion": ISTIO_API_VERSION, "kind": "VirtualService", "metadata": metadata, "spec": body}


def build_destination_rules(
    spec: CanarySpec, namespace: str | None = None, canary_owner: Mapping[str, Any] | None = None
) -> tuple[Object, Object]:
    """DestinationRules ``<svc>-primary`` and ``<svc>-canary`` carrying ``service.trafficPolicy``."""
    _, primary, canary = service_names(spec)
    rules = []
    for host in (primary, canary):
        metadata: Object = {"name": host}
        if namespace:
            metadata["namespace"] = namespace
        if canary_owner is not None:
            metadata["ownerReferences"] = [owner_reference(canary_owner)]
        body: Object = {"host": host}
        if spec.service.traffic_policy:
            body["trafficPolicy"] = copy.deepcopy(dict(spec.service.traffic_policy))
        rules.append({"apiVersion": ISTIO_API_VERSION, "kind": "DestinationRule", "metadata": metadata, "spec": body})
    return rules[0], rules[1]


def _weights(route: Mapping[str, Any], primary: str, canary: str) -> tuple[int, int] | None:
    destinations = route.get("route") or ()
    found: dict[str, int] = {}
    for dest in destinations:
        host = str((dest.get("destination") or {}).get("host", ""))
        # A lone destination without a weight gets all the traffic; otherwise a missing weight is 0.
        weight = int(dest.get("weight", 100 if len(destinations) == 1 else 0))
        if host == primary or (not primary and host.endswith("-primary")):
            found["primary"] = weight
        elif host == canary or (not canary and host.endswith("-canary")):
            found["canary"] = weight
    if "primary" not in found or "canary" not in found:
        return None
    return found["primary"], found["canary"]


def read_routes(vs: Mapping[str, Any] | None, apex: str | None = None) -> Routes | None:
    """The split in a live VirtualService, or ``None`` if it has no primary/canary route (it isn't ours).

    Weights are returned as found (a manual edit may not sum to 100: that is drift for the engine to undo).
    ``apex`` pins the expected hosts; without it any ``*-primary``/``*-canary`` pair is recognised.
    """
    if not vs:
        return None
    primary = f"{apex}-primary" if apex else ""
    canary = f"{apex}-canary" if apex else ""
    spec = vs.get("spec") or {}
    http = [r for r in spec.get("http") or () if isinstance(r, Mapping)]
    named = [r for r in http if r.get("name") == WEIGHTED_ROUTE]
    candidates = named or [r for r in reversed(http) if _weights(r, primary, canary) is not None]
    if candidates:
        route = candidates[0]
        weights = _weights(route, primary, canary)
        if weights is None:
            return None
        mirror = None
        mirror_host = str((route.get("mirror") or {}).get("host", ""))
        if mirror_host and (mirror_host == canary or (not canary and mirror_host.endswith("-canary"))):
            mirror = round(float((route.get("mirrorPercentage") or {}).get("value", 100)))
        match_active = any(
            r.get("name") == MATCH_ROUTE and (_weights(r, primary, canary) or (100, 0))[1] == 100 for r in http
        )
        return Routes(weights[0], weights[1], mirror, match_active)
    for route in spec.get("tcp") or ():
        weights = _weights(route, primary, canary)
        if weights is not None:
            return Routes(weights[0], weights[1])
    return None


def read_weights(vs: Mapping[str, Any] | None, apex: str | None = None) -> tuple[int, int] | None:
    """``(primary, canary)`` from a live VirtualService, or ``None`` if it doesn't look like ours."""
    routes = read_routes(vs, apex)
    return None if routes is None else (routes.primary, routes.canary)


def _random_cookie() -> str:
    return "".join(secrets.choice(string.ascii_letters) for _ in range(10))


_BOOKKEEPING = (SESSION_COOKIE_ANNOTATION, PREVIOUS_SESSION_COOKIE_ANNOTATION, PRIMARY_SESSION_COOKIE_ANNOTATION)


def _merge_spec(live: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """The live object with the desired spec *replacing* its own (a removed field goes away); labels and
    annotations others set are kept, our bookkeeping annotations replaced.

    Nothing is copied deeply: the answer shares values with ``live`` and ``desired``, which are the caller's own
    (every :class:`~controller.kube.api.KubeApi` read returns a fresh object) and are only compared and sent."""
    body = {k: v for k, v in live.items() if k not in ("status", "spec")}  # spec: replaced below
    metadata = dict(body.get("metadata") or {})
    want = desired.get("metadata") or {}
    labels = {**(metadata.get("labels") or {}), **(want.get("labels") or {})}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _BOOKKEEPING}
    annotations.update(want.get("annotations") or {})
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value or key in metadata:  # don't add empty maps: an unchanged object must compare equal
            metadata[key] = value
    # Owner references are set only when Coalmine creates an object: adopting a user's object never makes it
    # garbage-collectable with the Canary.
    body["metadata"] = metadata
    body["spec"] = desired["spec"]
    return body


class IstioRouter:
    """:class:`~controller.routers.Router` for Istio, bound to one Canary; everything is read back each call."""

    def __init__(
        self,
        api: KubeApi,
        spec: CanarySpec,
        canary_meta: Mapping[str, Any],
        cookie_factory: Callable[[], str] = _random_cookie,
    ) -> None:
        self._api = api
        self._cookie_factory = cookie_factory
        self._bind(spec, canary_meta)

    def _bind(self, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> None:
        meta = canary_meta.get("metadata", canary_meta)
        self._spec = spec
        self._name = str(meta["name"])
        self._uid = str(meta.get("uid", ""))
        self._namespace = str(meta["namespace"])
        self._apex = service_names(spec)[0]
        self._kind = str(canary_meta.get("kind") or CANARY_KIND)  # a Canary or a BlueGreen owns the objects

    def _desired(self, live: Mapping[str, Any] | None, routes: Routes | None, cookies: SessionCookies | None) -> Object:
        """The VirtualService to write given the live one: same split unless ``routes`` says otherwise."""
        state = live_state(live, self._name, routes, cookies, lambda obj: read_routes(obj, self._apex))
        return build_virtual_service(
            self._spec,
            self._name,
            self._namespace,
            state.routes,
            canary_uid=self._uid,
            cookies=state.cookies,
            owned=state.owned,
            annotations=state.annotations,
            owner_kind=self._kind,
        )

    def reconcile(self, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> None:
        """Create/update both DestinationRules and the VirtualService, keeping the live split (and cookies)."""
        self._bind(spec, canary_meta)
        owner = {"kind": self._kind, "metadata": {"name": self._name, "uid": self._uid}}
        for rule in build_destination_rules(spec, self._namespace, owner):
            create_or_update(self._api, DESTINATION_RULES, self._namespace, rule, _merge_spec)
        initial = self._desired(None, None, None)
        create_or_update(
            self._api,
            VIRTUAL_SERVICES,
            self._namespace,
            initial,
            lambda live, _: _merge_spec(live, self._desired(live, None, None)),
        )

    def set_routes(self, primary: int, canary: int, mirror: int | None = None, match_active: bool = False) -> None:
        """Write the split; with session affinity, start a cookie when the canary gets traffic and expire it after."""
        routes = Routes(primary, canary, mirror, match_active).check()

        def mutate(live: Object) -> Object:
            affinity = self._spec.analysis.session_affinity
            cookies = next_cookies(live, affinity, canary, self._cookie_factory)
            return _merge_spec(live, self._desired(live, routes, cookies))

        written = update_with_retry(self._api, VIRTUAL_SERVICES, self._namespace, self._apex, mutate)
        if written is None:
            what = describe(VIRTUAL_SERVICES, self._namespace, self._apex)
            raise ApiNotFound(what, 404, "does not exist; the router must reconcile before setting routes")

    def get_routes(self) -> Routes | None:
        """The live split, or ``None`` when the VirtualService is missing or carries no primary/canary route."""
        return read_routes(self._api.get(VIRTUAL_SERVICES, self._namespace, self._apex), self._apex)

    def route_problem(self) -> str | None:
        """Istio does not report per-object acceptance on a VirtualService (istiod's analysis is optional and
        asynchronous), so there is nothing to read back: ``None``."""
        return None

    def finalize(self) -> None:
        """Put a taken-over VirtualService back as it was; delete the routing objects Coalmine created."""

        live = update_with_retry(self._api, VIRTUAL_SERVICES, self._namespace, self._apex, restored)
        if live is not None and is_owned_by(live, self._name):
            self._api.delete(VIRTUAL_SERVICES, self._namespace, self._apex)
        for rule in build_destination_rules(self._spec):
            name = rule["metadata"]["name"]
            existing = self._api.get(DESTINATION_RULES, self._namespace, name)
            if existing is not None and is_owned_by(existing, self._name):
                self._api.delete(DESTINATION_RULES, self._namespace, name)


_PROTOCOL_CHECK: type[Router] = IstioRouter  # mypy proves IstioRouter implements the Router protocol
