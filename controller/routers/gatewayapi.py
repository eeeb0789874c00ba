"""Gateway API routing (``gateway.networking.k8s.io/v1`` HTTPRoute): the :class:`~controller.routers.Router` that
applies the pure builders of :mod:`controller.routers.gatewayapi_build` through :mod:`controller.kube.converge`.

It behaves like the Istio router: one HTTPRoute ``<svc>`` in the Canary's namespace, owned by the Canary when
Coalmine creates it; an existing HTTPRoute Coalmine did not create is taken over — its spec saved in the annotation
``coalmine.dev/original-configuration`` and put back by :meth:`GatewayApiRouter.finalize`, never given an owner
reference; labels and annotations others set are kept while the spec is ours. Session cookies live in the same
annotations as on a VirtualService, so the operator can be restarted mid-run.

Gateway controllers report in ``status.parents`` whether they accepted the route; :meth:`route_problem` turns a
refusal into one sentence for a condition or an Event.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

from controller.kube.api import Resource
from controller.kube.client import KubeApi, create_or_update, describe, update_with_retry
from controller.kube.errors import ApiNotFound
from controller.kube.meta import CANARY_KIND, is_owned_by
from controller.kube.objects import service_names
from controller.rollout.spec import CanarySpec
from controller.routers import Router, Routes
from controller.routers.gatewayapi_build import (
    GATEWAY_API_GROUP,
    HTTPROUTES,
    build_http_route,
    read_routes,
    route_problem,
)
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


def random_cookie() -> str:
    """A fresh session cookie value (ten letters, as Flagger's)."""
    return "".join(secrets.choice(string.ascii_letters) for _ in range(10))


_BOOKKEEPING = (SESSION_COOKIE_ANNOTATION, PREVIOUS_SESSION_COOKIE_ANNOTATION, PRIMARY_SESSION_COOKIE_ANNOTATION)


def _merge_spec(live: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """The live object with the desired spec *replacing* its own; labels and annotations others set are kept, our
    bookkeeping annotations replaced; ``status`` (the gateway controllers') is never sent back; owner references
    stay as they are (adopting a user's route never makes it garbage-collectable with the Canary)."""
    body = {k: v for k, v in live.items() if k not in ("status", "spec")}
    metadata = dict(body.get("metadata") or {})
    want = desired.get("metadata") or {}
    labels = {**(metadata.get("labels") or {}), **(want.get("labels") or {})}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k not in _BOOKKEEPING}
    annotations.update(want.get("annotations") or {})
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value or key in metadata:  # no empty maps added: an unchanged object must compare equal
            metadata[key] = value
    body["metadata"] = metadata
    body["spec"] = desired["spec"]
    return body


class GatewayApiRouter:
    """:class:`~controller.routers.Router` for Gateway API, bound to one Canary; everything is read back each call."""

    def __init__(
        self,
        api: KubeApi,
        spec: CanarySpec,
        canary_meta: Mapping[str, Any],
        cookie_factory: Callable[[], str] = random_cookie,
        version: str = "v1",
    ) -> None:
        self._api = api
        # gatewayapi:v1beta1 (Flagger's provider for clusters with Gateway API before v1.0): the same route, served
        # at v1beta1; its schema is the same.
        self._resource = Resource(GATEWAY_API_GROUP, version, HTTPROUTES.plural, HTTPROUTES.kind)
        self._cookie_factory = cookie_factory
        self._bind(spec, canary_meta)

    def _bind(self, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> None:
        meta = canary_meta.get("metadata", canary_meta)
        self._spec = spec
        self._name = str(meta["name"])
        self._uid = str(meta.get("uid", ""))
        self._namespace = str(meta["namespace"])
        self._apex = service_names(spec)[0]
        self._kind = str(canary_meta.get("kind") or CANARY_KIND)

    def _desired(self, live: Mapping[str, Any] | None, routes: Routes | None, cookies: SessionCookies | None) -> Object:
        """The HTTPRoute to write given the live one: same split (and cookies) unless told otherwise."""
        state = live_state(live, self._name, routes, cookies, lambda obj: read_routes(obj, self._apex))
        return build_http_route(
            self._spec,
            self._name,
            self._namespace,
            state.routes,
            canary_uid=self._uid,
            cookies=state.cookies,
            owned=state.owned,
            annotations=state.annotations,
            owner_kind=self._kind,
            api_version=f"{GATEWAY_API_GROUP}/{self._resource.version}",
        )

    def reconcile(self, spec: CanarySpec, canary_meta: Mapping[str, Any]) -> None:
        """Create/update the HTTPRoute, keeping the live split (and cookies); a no-op when nothing changed."""
        self._bind(spec, canary_meta)
        create_or_update(
            self._api,
            self._resource,
            self._namespace,
            self._desired(None, None, None),
            lambda live, _: _merge_spec(live, self._desired(live, None, None)),
        )

    def set_routes(self, primary: int, canary: int, mirror: int | None = None, match_active: bool = False) -> None:
        """Write the split; with session affinity, start a cookie when the canary gets traffic and expire it after."""
        routes = Routes(primary, canary, mirror, match_active).check()

        def mutate(live: Object) -> Object:
            affinity = self._spec.analysis.session_affinity
            cookies = next_cookies(live, affinity, canary, self._cookie_factory)
            return _merge_spec(live, self._desired(live, routes, cookies))

        written = update_with_retry(self._api, self._resource, self._namespace, self._apex, mutate)
        if written is None:
            what = describe(self._resource, self._namespace, self._apex)
            raise ApiNotFound(what, 404, "does not exist; the router must reconcile before setting routes")

    def get_routes(self) -> Routes | None:
        """The live split, or ``None`` when the HTTPRoute is missing or carries no primary/canary rule."""
        return read_routes(self._api.get(self._resource, self._namespace, self._apex), self._apex)

    def route_problem(self) -> str | None:
        """Why a parent Gateway (or the mesh) refuses the live HTTPRoute or cannot resolve its backends, in one
        sentence; ``None`` when the route is missing, fine, or not yet looked at by any controller."""
        return route_problem(self._api.get(self._resource, self._namespace, self._apex))

    def finalize(self) -> None:
        """Put a taken-over HTTPRoute back as it was; delete the one Coalmine created."""

        live = update_with_retry(self._api, self._resource, self._namespace, self._apex, restored)
        if live is not None and is_owned_by(live, self._name):
            self._api.delete(self._resource, self._namespace, self._apex)


_PROTOCOL_CHECK: type[Router] = GatewayApiRouter  # mypy proves GatewayApiRouter implements the Router protocol
