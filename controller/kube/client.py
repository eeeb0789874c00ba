"""The effectful edge: every call Coalmine makes to the Kubernetes API goes through this module.

A thin, synchronous wrapper over the official ``kubernetes`` client's ``ApiClient`` that speaks plain dicts (the
same shape ``kubectl get -o json`` prints), so the pure builders in :mod:`controller.kube.objects` and
:mod:`controller.routers.istio` can produce and compare objects without model classes. The operator calls it from
its bounded pool of worker threads (:meth:`controller.operator.context.OperatorContext.blocking`); it never runs on
the event loop.

What it adds over raw requests:

- idempotent helpers: ``get`` answers ``None`` for 404, ``delete`` answers ``False`` when the object is already
  gone, :func:`create_or_update` re-reads and re-applies on a 409 and writes nothing when nothing changed;
- one exception tree (:mod:`controller.kube.errors`) whose messages name the object;
- an optional *recorder* told of every (verb, group, resource) before the request is sent, so the operator's RBAC
  can be derived from what the code actually does rather than maintained by hand.

Unit tests use any object implementing :class:`KubeApi` (an in-memory fake); integration tests run this client over
real HTTP against the emulated API server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from kubernetes.client import ApiClient, Configuration

from controller.kube.api import (
    CANARIES,
    CONFIGMAPS,
    DEPLOYMENTS,
    DESTINATION_RULES,
    EVENTS,
    HPAS,
    SECRETS,
    SERVICES,
    VIRTUAL_SERVICES,
    ApiCall,
    KubeApi,
    Merge,
    Object,
    PatchType,
    Recorder,
    Resource,
    describe,
    rbac_rules,
)
from controller.kube.converge import create_or_update, deep_merge, merge_desired, update_with_retry
from controller.kube.errors import (
    ApiConflict,
    ApiError,
    ApiForbidden,
    ApiInvalid,
    ApiNotFound,
    ApiUnavailable,
)
from controller.kube.objects import build_event

__all__ = [
    "CANARIES",
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "DESTINATION_RULES",
    "EVENTS",
    "HPAS",
    "SECRETS",
    "SERVICES",
    "VIRTUAL_SERVICES",
    "ApiCall",
    "KubeApi",
    "KubeClient",
    "Merge",
    "PatchType",
    "Recorder",
    "Resource",
    "create_or_update",
    "deep_merge",
    "describe",
    "merge_desired",
    "rbac_rules",
    "update_with_retry",
]


def _status_message(body: bytes | str | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    if isinstance(parsed, Mapping) and parsed.get("message"):
        return str(parsed["message"])
    return text.strip()[:300]


def _api_error(what: str, status: int, message: str) -> ApiError:
    if status == 404:
        return ApiNotFound(what, status, message or "not found")
    if status == 409:
        return ApiConflict(what, status, message or "conflict")
    if status in (400, 422):
        return ApiInvalid(what, status, message or "invalid")
    if status in (401, 403):
        return ApiForbidden(what, status, message or "forbidden")
    if status == 429 or status >= 500 or status == 0:
        return ApiUnavailable(what, status, message or "API server unavailable")
    return ApiError(what, status, message or "unexpected answer")


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _dumps(body: Any) -> bytes:
    """A request body as compact JSON (orjson; the standard library for what orjson refuses, e.g. huge ints)."""
    try:
        return orjson.dumps(body)
    except TypeError:
        return json.dumps(body, separators=(",", ":")).encode()


class KubeClient:
    """:class:`KubeApi` over HTTP with an official ``ApiClient`` (kubeconfig/in-cluster configuration is the caller's).

    ``recorder`` (optional) sees every call before it is made; ``timeout_s`` bounds each request attempt so a hung
    API server turns into :class:`ApiUnavailable` instead of a stuck handler thread — build it with
    :meth:`from_configuration` so urllib3 does not silently repeat a timed-out attempt.
    """

    def __init__(
        self,
        api_client: ApiClient,
        *,
        recorder: Recorder | None = None,
        timeout_s: float = 30.0,
        instance: str = "coalmine",
    ) -> None:
        self._api = api_client
        self._recorder = recorder
        self._timeout_s = timeout_s
        self._instance = instance

    @classmethod
    def from_configuration(
        cls,
        configuration: Configuration,
        *,
        recorder: Recorder | None = None,
        timeout_s: float = 30.0,
        instance: str = "coalmine",
    ) -> KubeClient:
        """A client whose requests take at most ``timeout_s``: connection attempts are retried, reads are not.

        urllib3's default retries a timed-out GET/PUT/DELETE three more times, so one hung request could hold a
        handler thread for four timeouts; Coalmine retries on the next tick instead, from fresh reads.
        """
        configuration.retries = urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0)
        return cls(ApiClient(configuration), recorder=recorder, timeout_s=timeout_s, instance=instance)

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        resource: Resource,
        namespace: str | None,
        name: str | None = None,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        subresource: str | None = None,
        list_call: bool = False,
        what: str | None = None,
    ) -> tuple[int, Any]:
        verb = ("list" if list_call else "get") if method == "GET" else _VERBS[method]
        plural = f"{resource.plural}/{subresource}" if subresource else resource.plural
        if self._recorder is not None:
            self._recorder(ApiCall(verb, resource.group, plural))
        path = resource.path(namespace, name, subresource)
        if query:
            path += "?" + urlencode(dict(query))
        what = what or describe(resource, namespace, name)
        status, data = self._exchange(method, path, what, body=body, content_type=content_type)
        if status >= 300:
            raise _api_error(what, status, _status_message(data))
        if not data:
            return status, {}
        try:
            return status, orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ApiUnavailable(what, status, "the API server answered with something that is not JSON") from exc

    def _headers(self, content_type: str) -> dict[str, str]:
        """The official client's default headers and the bearer token it would send (refreshed by its hook, e.g. a
        projected service-account token)."""
        headers = {**self._api.default_headers, "Accept": "application/json", "Content-Type": content_type}
        token = self._api.configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["authorization"] = token
        return headers

    def _exchange(self, method: str, path: str, what: str, *, body: Any, content_type: str) -> tuple[int, bytes]:
        """Send one request and read its whole answer: ``(status, body)``, through :meth:`_send`."""
        response = self._send(method, path, what, body=body, content_type=content_type, timeout_s=self._timeout_s)
        try:
            return int(response.status), response.data
        except urllib3.exceptions.HTTPError as exc:
            raise ApiUnavailable(what, 0, f"{method} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            response.release_conn()

    def _send(
        self,
        method: str,
        path: str,
        what: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        timeout_s: float | tuple[float, float],
    ) -> Any:
        """Send one request through the client's connection pool; the answer's body is not read yet (a watch
        streams it).

        The official client's TLS, proxy, retry and credential settings all apply: the request goes through its
        ``rest_client.pool_manager``. What is skipped is its model-oriented serialisation, which walks every value
        of a plain-dict body and cost a third of each request's CPU at thousands of Canaries.
        """
        configuration = self._api.configuration
        headers = self._headers(content_type)
        data = None if body is None else _dumps(body)
        timeout = (
            urllib3.Timeout(connect=timeout_s[0], read=timeout_s[1])
            if isinstance(timeout_s, tuple)
            else urllib3.Timeout(total=timeout_s)
        )
        try:
            return self._api.rest_client.pool_manager.request(
                method,
                configuration.host.rstrip("/") + path,
                body=data,
                headers=headers,
                timeout=timeout,
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise ApiUnavailable(what, 0, f"{method} failed: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # a header (e.g. a token) or a path that cannot be sent
            raise ApiUnavailable(what, 0, f"{method} cannot be sent: {exc}") from exc

    # -- KubeApi ----------------------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        """The object, or ``None`` if it does not exist."""
        try:
            _, obj = self._request("GET", resource, namespace, name)
        except ApiNotFound:
            return None
        return dict(obj)

    def list(
        self,
        resource: Resource,
        namespace: str,
        label_selector: str | None = None,
        *,
        field_selector: str | None = None,
    ) -> list[Object]:
        """Objects in ``namespace`` (all namespaces if empty), optionally filtered by label and field selectors."""
        selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        query = {key: value for key, value in selectors.items() if value} or None
        _, answer = self._request("GET", resource, namespace or None, query=query, list_call=True)
        return [dict(item) for item in answer.get("items") or ()]

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        name = (body.get("metadata") or {}).get("name")
        full = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        what = describe(resource, namespace, name)
        _, obj = self._request("POST", resource, namespace, None, body=full, what=what)
        return dict(obj)

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        name = str(body["metadata"]["name"])
        full = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        _, obj = self._request("PUT", resource, namespace, name, body=full)
        return dict(obj)

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Object:
        """Merge (default), strategic-merge (built-in kinds only) or JSON patch; ``subresource`` e.g. ``status``."""
        body = [dict(op) for op in patch] if patch_type is PatchType.JSON else dict(patch)  # type: ignore[arg-type]
        _, obj = self._request(
            "PATCH", resource, namespace, name, body=body, content_type=patch_type.value, subresource=subresource
        )
        return dict(obj)

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        """Delete (dependents in the background); ``False`` if it was already gone."""
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        try:
            self._request("DELETE", resource, namespace, name, body=options)
        except ApiNotFound:
            return False
        return True

    # -- conveniences the operator uses ------------------------------------------------------------------------

    def create_or_update(
        self, resource: Resource, namespace: str, desired: Mapping[str, Any], merge: Merge = merge_desired
    ) -> Object:
        """See :func:`create_or_update`."""
        return create_or_update(self, resource, namespace, desired, merge)

    def delete_if_exists(self, resource: Resource, namespace: str, name: str) -> bool:
        return self.delete(resource, namespace, name)

    def scale(self, namespace: str, name: str, replicas: int) -> Object:
        """Set a Deployment's ``spec.replicas`` (a merge patch: only that field is owned by this write)."""
        return self.patch(DEPLOYMENTS, namespace, name, {"spec": {"replicas": int(replicas)}})

    def patch_status(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        resource_version: str | None = None,
    ) -> Object:
        """Merge-patch the ``status`` subresource (a CR's spec is never touched by this). With ``resource_version``
        the server applies it only at that version and raises :class:`ApiConflict` (409) otherwise."""
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self.patch(resource, namespace, name, body, subresource="status")

    def emit_event(
        self,
        regarding: Mapping[str, Any],
        *,
        reason: str,
        note: str,
        action: str,
        type_: str = "Normal",
        now: datetime | None = None,
    ) -> Object:
        """Record an ``events.k8s.io/v1`` Event about ``regarding`` (``kubectl describe`` shows it)."""
        event = build_event(
            regarding,
            reason=reason,
            note=note,
            action=action,
            type_=type_,
            now=now or datetime.now(UTC),
            instance=self._instance,
        )
        namespace = str(event["metadata"]["namespace"])
        return self.create(EVENTS, namespace, event)
