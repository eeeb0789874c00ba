"""Traffic routers: the one interface the operator drives to shift traffic, and the registry keyed by ``provider``.

A router owns the mesh objects that split traffic between ``<svc>-primary`` and ``<svc>-canary``. It is stateless
between ticks: everything it needs is read back from the cluster, so a restarted operator picks up where it was.
Adding a mesh is one new module implementing :class:`Router` plus one entry in :data:`ROUTERS` (Istio:
:mod:`controller.routers.istio`; Gateway API: :mod:`controller.routers.gatewayapi`). There is no
"no-op" router on purpose: an unknown provider is rejected, never silently treated as something else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from controller.kube.errors import KubeError
from controller.rollout.spec import CanarySpec

if TYPE_CHECKING:
    from controller.kube.client import KubeApi


class RouterError(KubeError):
    """A router cannot do what was asked; the message names the object or the provider."""


class UnknownProvider(RouterError):
    """``spec.provider`` names a mesh Coalmine has no router for."""


class InvalidRoutes(RouterError, ValueError):
    """Weights that do not describe a traffic split (outside 0..100, or not summing to 100)."""


@dataclass(frozen=True)
class Routes:
    """A traffic split: ``primary + canary == 100``; ``mirror`` is the percentage of traffic *copied* to the canary
    (``None``: no mirroring); ``match_active`` means the A/B match route sends matching requests to the canary."""

    primary: int
    canary: int
    mirror: int | None = None
    match_active: bool = False

    def check(self) -> Routes:
        """Return self, or raise :class:`InvalidRoutes` saying what is wrong."""
        if not (0 <= self.primary <= 100 and 0 <= self.canary <= 100):
            raise InvalidRoutes(f"weights must be within 0..100, got primary {self.primary}, canary {self.canary}")
        if self.primary + self.canary != 100:
            raise InvalidRoutes(
                f"weights must sum to 100, got primary {self.primary} + canary {self.canary} = "
                f"{self.primary + self.canary}"
            )
        if self.mirror is not None and not 0 <= self.mirror <= 100:
            raise InvalidRoutes(f"mirror percentage must be within 0..100, got {self.mirror}")
        return self


class Router(Protocol):
    """What the operator needs from a mesh. All methods are idempotent and talk to the API server.

    - ``reconcile``: create or update the routing objects from the spec, keeping the live weights;
    - ``set_routes``: write a split (weights always sum to 100);
    - ``get_routes``: the split read back from the cluster, ``None`` if the routing object is missing or isn't ours
      — the engine compares it with status to detect and undo manual edits (drift);
    - ``route_problem``: why the mesh or a gateway refuses the routing object (a parent that did not accept a
      route, backends that do not resolve), in one sentence, or ``None`` — traffic that does not move must be
      reported, never analysed as if it did;
    - ``finalize``: undo what Coalmine did (restore a pre-existing object) when the Canary is deleted.
    """

    def reconcile(self, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> None: ...

    def set_routes(self, primary: int, canary: int, mirror: int | None = None, match_active: bool = False) -> None: ...

    def get_routes(self) -> Routes | None: ...

    def route_problem(self) -> str | None: ...

    def finalize(self) -> None: ...


RouterFactory = Callable[["KubeApi", CanarySpec, Mapping[str, Any]], Router]


def _istio(api: KubeApi, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> Router:
    from controller.routers.istio import IstioRouter  # imported here: istio.py imports this module

    return IstioRouter(api, spec, canary_meta)


def _gateway_api(version: str) -> RouterFactory:
    def factory(api: KubeApi, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> Router:
        from controller.routers.gatewayapi import GatewayApiRouter  # imported here: it imports this module

        return GatewayApiRouter(api, spec, canary_meta, version=version)

    return factory


ROUTERS: Mapping[str, RouterFactory] = MappingProxyType(
    {"istio": _istio, "gatewayapi:v1": _gateway_api("v1"), "gatewayapi:v1beta1": _gateway_api("v1beta1")}
)


def router_for(
    spec: CanarySpec,
    canary_meta: Mapping[str, Any],
    api: KubeApi,
    routers: Mapping[str, RouterFactory] = ROUTERS,
) -> Router:
    """The router for ``spec.provider``, bound to one Canary (``canary_meta``: its object or its metadata).

    Raises :class:`UnknownProvider` listing the supported providers.
    """
    factory = routers.get(spec.provider)
    if factory is None:
        known = ", ".join(sorted(routers))
        raise UnknownProvider(f"provider {spec.provider!r} is not supported; supported providers: {known}")
    return factory(api, spec, canary_meta)
