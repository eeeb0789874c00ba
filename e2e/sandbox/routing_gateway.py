"""What the router does with a Gateway API HTTPRoute: the same :class:`~e2e.sandbox.routing.RouteTable` as for a
VirtualService, built from ``gateway.networking.k8s.io/v1`` rules.

Pure (no I/O) so it can be checked against the HTTPRoutes the operator's own builder writes
(:func:`controller.routers.gatewayapi_build.build_http_route`). Gateway API semantics it follows:

- **Precedence is by match, not by rule order.** Every ``(rule, match)`` pair becomes one route and the pairs are
  ranked as the HTTPRoute spec orders them within one route: an ``Exact`` path first, then ``PathPrefix`` with
  the most characters, then a ``method`` match, then the most header matches, then the most query-parameter
  matches; ties go to the earlier rule, then the earlier match. ``RegularExpression`` paths rank after every
  prefix (the spec leaves them to the implementation; this is Istio's order: exact, prefix, regex), longer
  patterns first. For the operator's rules (``canary-match``, ``sticky-route``, ``sticky-route-primary``: the
  weighted rule's conditions plus headers) this puts them ahead of ``weighted``, wherever they stand in the list.
  Precedence across several HTTPRoutes (creation time, name) does not arise: the router reads one.
- **Matches:** ``path`` ``PathPrefix`` by whole segments (``/api`` matches ``/api`` and ``/api/x``, not ``/apix``;
  a trailing ``/`` is ignored), ``Exact``, ``RegularExpression`` (a full match); ``headers`` (names
  case-insensitive) and ``queryParams`` (names case-sensitive) ``Exact`` or ``RegularExpression``; ``method``.
  A match without ``path`` is the CRD's default, ``PathPrefix /``; a rule without ``matches`` matches everything.
  ``hostnames``, when set, must match the request's host (exactly, or ``*.`` for any one or more labels).
- **Backends:** ``backendRefs`` drawn by ``weight`` (default 1, as in Gateway API). A ref to anything but a
  Service of the route's namespace keeps its share but resolves to no backend (answered 503).
- **Filters:** ``RequestMirror`` (the first one; ``percent`` or ``fraction``, default every request) sends a
  fire-and-forget copy; ``ResponseHeaderModifier`` ``set``/``add``/``remove`` on the rule, then on the chosen
  backendRef — how the canary's session cookie is set and, after the run, expired.

Not emulated: ``RequestHeaderModifier``, ``URLRewrite``, ``RequestRedirect``, ``ExtensionRef``, ``CORS``,
``timeouts``, ``retry``, ``sessionPersistence``, ports, and ``parentRefs`` (the route is taken as attached).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from e2e.sandbox.routing import Destination, HeaderOps, HttpRoute, RequestInfo, RouteTable

Object = Mapping[str, Any]
PATH_RANKS = {"Exact": 0, "PathPrefix": 1, "RegularExpression": 2}
DEFAULT_PATH = ("PathPrefix", "/")


@dataclass(frozen=True)
class ValueMatch:
    """A header or query parameter condition: ``Exact`` (the default type) or ``RegularExpression`` (full match)."""

    name: str
    kind: str
    value: str

    def matches(self, text: str | None) -> bool:
        if text is None:
            return False
        if self.kind == "RegularExpression":
            return re.fullmatch(self.value, text) is not None
        return text == self.value


def path_matches(kind: str, value: str, path: str) -> bool:
    """Gateway API's path match types; ``PathPrefix`` compares whole ``/``-separated segments."""
    if kind == "Exact":
        return path == value
    if kind == "RegularExpression":
        return re.fullmatch(value, path) is not None
    prefix = value.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def host_matches(hostnames: Sequence[str], authority: str) -> bool:
    """``hostnames`` empty: any host. ``*.example.com`` matches ``a.example.com`` and ``a.b.example.com``."""
    if not hostnames:
        return True
    host = authority.rsplit(":", 1)[0] if not authority.endswith("]") else authority
    host = host.lower()
    for name in hostnames:
        name = name.lower()
        if name.startswith("*."):
            if host.endswith(name[1:]) and len(host) > len(name) - 1:
                return True
        elif host == name:
            return True
    return False


@dataclass(frozen=True)
class GatewayMatch:
    """One ``HTTPRouteMatch`` (all its conditions must hold) and the route's ``hostnames``."""

    path_kind: str = DEFAULT_PATH[0]
    path_value: str = DEFAULT_PATH[1]
    method: str | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()
    hostnames: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Object, hostnames: tuple[str, ...] = ()) -> GatewayMatch:
        path = raw.get("path") or {}

        def values(key: str, *, fold: bool) -> tuple[ValueMatch, ...]:
            found = []
            for item in raw.get(key) or ():
                name = str(item.get("name", ""))
                found.append(
                    ValueMatch(
                        name.lower() if fold else name, str(item.get("type") or "Exact"), str(item.get("value", ""))
                    )
                )
            return tuple(found)

        return cls(
            path_kind=str(path.get("type") or DEFAULT_PATH[0]),
            path_value=str(path.get("value") or DEFAULT_PATH[1]),
            method=str(raw["method"]) if raw.get("method") else None,
            headers=values("headers", fold=True),
            query=values("queryParams", fold=False),
            hostnames=hostnames,
        )

    def precedence(self) -> tuple[int, int, int, int, int]:
        """Sort key, most specific first (see the module docstring)."""
        rank = PATH_RANKS.get(self.path_kind, len(PATH_RANKS))
        length = 0 if self.path_kind == "Exact" else -len(self.path_value)
        return rank, length, 0 if self.method else 1, -len(self.headers), -len(self.query)

    def matches(self, request: RequestInfo) -> bool:
        if not host_matches(self.hostnames, request.authority):
            return False
        if not path_matches(self.path_kind, self.path_value, request.path):
            return False
        if self.method is not None and request.method != self.method:
            return False
        if not all(m.matches(request.headers.get(m.name)) for m in self.headers):
            return False
        return all(m.matches(request.query.get(m.name)) for m in self.query)


def header_ops(filters: Sequence[Object] | None) -> HeaderOps:
    """Every ``ResponseHeaderModifier`` of ``filters`` as one :class:`HeaderOps` (in order)."""
    ops = HeaderOps()
    for item in filters or ():
        modifier = item.get("responseHeaderModifier") if item.get("type") == "ResponseHeaderModifier" else None
        if not modifier:
            continue
        ops = ops.then(
            HeaderOps(
                set=tuple((str(h["name"]), str(h.get("value", ""))) for h in modifier.get("set") or ()),
                add=tuple((str(h["name"]), str(h.get("value", ""))) for h in modifier.get("add") or ()),
                remove=tuple(str(name) for name in modifier.get("remove") or ()),
            )
        )
    return ops


def backend_host(ref: Object, namespace: str) -> str:
    """A Service in the route's namespace is its name; anything else a host no backend answers to."""
    group, kind = str(ref.get("group", "")), str(ref.get("kind", "Service"))
    name, ref_namespace = str(ref.get("name", "")), str(ref.get("namespace") or namespace)
    if group == "" and kind == "Service" and ref_namespace == namespace:
        return name
    return f"{kind}.{group}/{ref_namespace}/{name}"


def mirror_of(filters: Sequence[Object] | None, namespace: str) -> tuple[str | None, float]:
    """The first ``RequestMirror``: its backend and the percentage of requests copied (``None``, 0 without one)."""
    for item in filters or ():
        mirror = item.get("requestMirror") if item.get("type") == "RequestMirror" else None
        if not mirror:
            continue
        host = backend_host(mirror.get("backendRef") or {}, namespace)
        if mirror.get("fraction") is not None:
            fraction = mirror["fraction"]
            denominator = Decimal(str(fraction.get("denominator", 100))) or Decimal(100)
            return host, float(Decimal(str(fraction.get("numerator", 0))) * 100 / denominator)
        return host, float(mirror.get("percent", 100))
    return None, 0.0


def _destinations(rule: Object, namespace: str) -> tuple[Destination, ...]:
    return tuple(
        Destination(backend_host(ref, namespace), int(ref.get("weight", 1)), header_ops(ref.get("filters")))
        for ref in rule.get("backendRefs") or ()
    )


def table_from_http_route(route: Object) -> RouteTable:
    """The HTTPRoute's rules as routes in Gateway API precedence (one per match; see the module docstring)."""
    spec = route.get("spec") or {}
    meta = route.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    hostnames = tuple(str(h) for h in spec.get("hostnames") or ())
    ranked: list[tuple[tuple[int, ...], HttpRoute]] = []
    for rule_index, rule in enumerate(spec.get("rules") or ()):
        name = str(rule.get("name") or f"rule-{rule_index}")
        destinations = _destinations(rule, namespace)
        mirror, percent = mirror_of(rule.get("filters"), namespace)
        headers = header_ops(rule.get("filters"))
        for match_index, raw in enumerate(rule.get("matches") or ({},)):
            match = GatewayMatch.parse(raw, hostnames)
            key = (*match.precedence(), rule_index, match_index)
            ranked.append((key, HttpRoute(name, (match,), destinations, mirror, percent, headers)))
    ranked.sort(key=lambda pair: pair[0])
    source = f"HTTPRoute {namespace}/{meta.get('name', '')} rv {meta.get('resourceVersion')}"
    return RouteTable(tuple(route for _, route in ranked), source)
