"""What the router does with a VirtualService: parse its HTTP routes, pick one for a request, pick a destination.
(An HTTPRoute is parsed into the same :class:`RouteTable` by :mod:`e2e.sandbox.routing_gateway`.)

Pure (no I/O) so it can be checked against the VirtualServices the operator's own builder writes
(:func:`controller.routers.istio.build_virtual_service`). Istio semantics it follows:

- routes are tried in order; a route matches when any of its ``match`` entries does (no ``match``: every request);
  within one entry every condition must hold: ``uri``, ``method``, ``authority``, ``scheme`` and ``headers``
  (``exact``/``prefix``/``regex``, regex as a full match; an empty match means "present"), ``queryParams``,
  ``withoutHeaders`` and ``ignoreUriCase``. ``sourceLabels``/``gateways`` conditions never match: sandbox
  traffic comes from outside the mesh, as from a gateway with no labelled workload;
- the destination is drawn by ``weight`` (a lone destination without a weight gets everything);
- ``mirror`` (+ ``mirrorPercentage``/``mirrorPercent``, default 100 %) sends a fire-and-forget copy;
- ``headers.response`` ``set``/``add``/``remove`` on the route and on the chosen destination (session cookies).

Not emulated: ``rewrite``, ``redirect``, ``timeout``, ``retries``, ``fault``, ``corsPolicy``, ports and subsets.
A TCP-only VirtualService is treated as one unconditional weighted route.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Object = Mapping[str, Any]


def short_host(host: str) -> str:
    """``podinfo-canary.test.svc.cluster.local`` → ``podinfo-canary`` (the Service name in the namespace)."""
    return host.split(".", 1)[0]


@dataclass(frozen=True)
class StringMatch:
    """Istio's ``StringMatch``: ``exact``, ``prefix`` or ``regex`` (full match); ``kind == ""`` means presence."""

    kind: str = ""
    value: str = ""

    @classmethod
    def parse(cls, raw: Object | None) -> StringMatch:
        for kind in ("exact", "prefix", "regex"):
            if raw and raw.get(kind) is not None:
                return cls(kind, str(raw[kind]))
        return cls()

    def matches(self, text: str | None, *, ignore_case: bool = False) -> bool:
        if text is None:
            return False
        value = self.value
        if ignore_case:
            text, value = text.lower(), value.lower()
        if self.kind == "exact":
            return text == value
        if self.kind == "prefix":
            return text.startswith(value)
        if self.kind == "regex":
            return re.fullmatch(value, text, flags=re.IGNORECASE if ignore_case else 0) is not None
        return True


@dataclass(frozen=True)
class RequestInfo:
    """The parts of a request routes can match on; ``headers``/``query`` keys are lower-cased header names."""

    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    authority: str = ""
    scheme: str = "http"


class Matcher(Protocol):
    """One match entry of a route: Istio's :class:`MatchCondition` or Gateway API's (:mod:`.routing_gateway`)."""

    def matches(self, request: RequestInfo) -> bool: ...


@dataclass(frozen=True)
class MatchCondition:
    """One entry of a route's ``match`` list: all its conditions must hold."""

    uri: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    scheme: StringMatch | None = None
    headers: tuple[tuple[str, StringMatch], ...] = ()
    without_headers: tuple[tuple[str, StringMatch], ...] = ()
    query: tuple[tuple[str, StringMatch], ...] = ()
    ignore_uri_case: bool = False
    unmatchable: bool = False  # sourceLabels/gateways: conditions about a source the sandbox does not have

    @classmethod
    def parse(cls, raw: Object) -> MatchCondition:
        def pairs(key: str) -> tuple[tuple[str, StringMatch], ...]:
            items = (raw.get(key) or {}).items()
            return tuple((str(name).lower(), StringMatch.parse(value)) for name, value in items)

        def one(key: str) -> StringMatch | None:
            return StringMatch.parse(raw[key]) if raw.get(key) is not None else None

        return cls(
            uri=one("uri"),
            method=one("method"),
            authority=one("authority"),
            scheme=one("scheme"),
            headers=pairs("headers"),
            without_headers=pairs("withoutHeaders"),
            query=pairs("queryParams"),
            ignore_uri_case=bool(raw.get("ignoreUriCase")),
            unmatchable=bool(raw.get("sourceLabels") or raw.get("gateways") or raw.get("sourceNamespace")),
        )

    def matches(self, request: RequestInfo) -> bool:
        if self.unmatchable:
            return False
        singles = (
            (self.uri, request.path, self.ignore_uri_case),
            (self.method, request.method, False),
            (self.authority, request.authority, False),
            (self.scheme, request.scheme, False),
        )
        if any(m is not None and not m.matches(text, ignore_case=case) for m, text, case in singles):
            return False
        if not all(m.matches(request.headers.get(name)) for name, m in self.headers):
            return False
        if any(m.matches(request.headers.get(name)) for name, m in self.without_headers):
            return False
        return all(m.matches(request.query.get(name)) for name, m in self.query)


@dataclass(frozen=True)
class HeaderOps:
    """``headers.response``: ``set`` (replace), ``add`` (append) and ``remove``."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    @classmethod
    def parse(cls, headers: Object | None) -> HeaderOps:
        response = (headers or {}).get("response") or {}
        return cls(
            set=tuple((str(k), str(v)) for k, v in (response.get("set") or {}).items()),
            add=tuple((str(k), str(v)) for k, v in (response.get("add") or {}).items()),
            remove=tuple(str(k) for k in response.get("remove") or ()),
        )

    def then(self, other: HeaderOps) -> HeaderOps:
        """Route-level operations followed by destination-level ones."""
        return HeaderOps(self.set + other.set, self.add + other.add, self.remove + other.remove)


@dataclass(frozen=True)
class Destination:
    """A destination host (a Service name) and its weight."""

    host: str
    weight: int
    response_headers: HeaderOps = HeaderOps()


@dataclass(frozen=True)
class HttpRoute:
    """One ``http`` route: its match entries (empty: all), weighted destinations, mirror and header operations."""

    name: str
    matches: tuple[Matcher, ...]
    destinations: tuple[Destination, ...]
    mirror: str | None = None
    mirror_percent: float = 0.0
    response_headers: HeaderOps = HeaderOps()

    def applies_to(self, request: RequestInfo) -> bool:
        return not self.matches or any(m.matches(request) for m in self.matches)


@dataclass(frozen=True)
class Decision:
    """Where one request goes: the route that matched, the destination host, an optional mirror host, headers."""

    route: str
    host: str
    mirror: str | None
    response_headers: HeaderOps


def _destinations(raw_route: Sequence[Object]) -> tuple[Destination, ...]:
    destinations = []
    for item in raw_route:
        host = short_host(str((item.get("destination") or {}).get("host", "")))
        default = 100 if len(raw_route) == 1 else 0
        weight = int(item.get("weight", default) or 0)
        destinations.append(Destination(host, weight, HeaderOps.parse(item.get("headers"))))
    return tuple(d for d in destinations if d.host)


def _mirror_percent(raw: Object) -> float:
    if raw.get("mirrorPercentage") is not None:
        return float((raw["mirrorPercentage"] or {}).get("value", 0.0))
    if raw.get("mirrorPercent") is not None:
        return float(raw["mirrorPercent"])
    return 100.0


@dataclass(frozen=True)
class RouteTable:
    """A VirtualService's routes (or an HTTPRoute's, ranked: :mod:`.routing_gateway`), in the order they are tried;
    ``source`` says where they came from (for ``/sandbox/routes``)."""

    routes: tuple[HttpRoute, ...]
    source: str

    @classmethod
    def direct(cls, host: str, missing: str = "VirtualService") -> RouteTable:
        """No VirtualService (or HTTPRoute: ``missing``) yet: every request goes to the Service ``host``, as
        kube-proxy would send it."""
        return cls((HttpRoute("direct", (), (Destination(host, 100),)),), f"no {missing}: direct to {host}")

    @classmethod
    def from_virtual_service(cls, vs: Object) -> RouteTable:
        spec = vs.get("spec") or {}
        meta = vs.get("metadata") or {}
        routes = []
        for index, raw in enumerate(spec.get("http") or ()):
            mirror = (raw.get("mirror") or {}).get("host")
            routes.append(
                HttpRoute(
                    name=str(raw.get("name") or f"http-{index}"),
                    matches=tuple(MatchCondition.parse(m) for m in raw.get("match") or ()),
                    destinations=_destinations(raw.get("route") or ()),
                    mirror=short_host(str(mirror)) if mirror else None,
                    mirror_percent=_mirror_percent(raw) if mirror else 0.0,
                    response_headers=HeaderOps.parse(raw.get("headers")),
                )
            )
        if not routes:
            for index, raw in enumerate(spec.get("tcp") or ()):
                routes.append(HttpRoute(f"tcp-{index}", (), _destinations(raw.get("route") or ())))
        source = f"VirtualService {meta.get('namespace', '')}/{meta.get('name', '')} rv {meta.get('resourceVersion')}"
        return cls(tuple(routes), source)

    def weights(self) -> dict[str, dict[str, int]]:
        """``{route name: {host: weight}}`` (what ``/sandbox/routes`` shows and tests assert on)."""
        return {route.name: {d.host: d.weight for d in route.destinations} for route in self.routes}

    def decide(self, request: RequestInfo, rng: random.Random) -> Decision | None:
        """The first route that applies and a destination drawn by weight; ``None`` when nothing can serve it
        (no route matches, or the matching route's weights are all zero)."""
        for route in self.routes:
            if not route.applies_to(request):
                continue
            total = sum(max(0, d.weight) for d in route.destinations)
            if total <= 0:
                return None
            live = [d for d in route.destinations if d.weight > 0]
            point = rng.uniform(0, total)
            chosen = live[-1]  # uniform() may return ``total`` itself
            for destination in live:
                point -= destination.weight
                if point < 0:
                    chosen = destination
                    break
            mirror = None
            if route.mirror and rng.uniform(0, 100) < route.mirror_percent:
                mirror = route.mirror
            return Decision(route.name, chosen.host, mirror, route.response_headers.then(chosen.response_headers))
        return None
