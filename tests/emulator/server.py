"""An emulated Kubernetes API server for Coalmine's integration tests: kmock's emulator, made strict.

``CoalmineEmulator`` subclasses kmock's ``KubernetesEmulator`` (so kmock's discovery, request log and reaction
DSL still work: ``emulator["patch", kmock.resource("apps/v1/deployments")] << 500``) but replaces its storage
and write path, because kmock only deep-merges JSON and we rely on what a real API server does.

What it does like a real API server
-----------------------------------
- **Discovery** of every registered resource (``/api``, ``/apis``, ``/apis/<group>/<version>``), including
  CustomResourceDefinitions created through the API at run time, so kopf finds and watches them. Short names and
  categories belong to main resources only (subresources list none; ``deployments/scale`` is an
  ``autoscaling/v1`` Scale), so ``kubectl get cmc`` and ``kubectl get all`` resolve as on a cluster.
- **OpenAPI** (:mod:`.openapi`): ``/openapi/v3`` (an index with hashed URLs) and ``/openapi/v3/apis/<g>/<v>``
  (``/openapi/v3/api/v1``) with each resource's paths and operations (the PATCH operation naming its kind and
  taking ``fieldValidation``) and component schemas named as upstream: built-in kinds from upstream's 1.35
  definitions, custom resources from their CRD's ``openAPIV3Schema``; ``/openapi/v2`` as JSON. Rebuilt when a
  CRD changes. ``/version`` reports v1.35. So real ``kubectl apply`` validates and ``kubectl explain`` works.
- **Field validation** (:mod:`.fieldcheck`): ``fieldValidation=Strict`` refuses unknown fields with **400**
  ``strict decoding error: unknown field "spec.x"`` (what kubectl's default ``--validate`` relies on); ``Warn``
  (the default) answers a ``Warning`` header per unknown field; then unknown fields are pruned as before.
- **Tables** (:mod:`.tables`): ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` on get, list and watch
  answers a ``meta.k8s.io/v1`` Table: a CRD's ``additionalPrinterColumns`` (``jsonPath`` evaluated, typed,
  ``date`` as an age, ``priority`` kept for ``-o wide``), reduced upstream printers for a few built-in kinds,
  ``Name``/``Age`` for the rest; rows carry ``PartialObjectMetadata`` unless ``includeObject`` says otherwise.
- **dryRun=All** on create, update, patch and delete: validated, defaulted, admitted and answered exactly like
  the write (conflicts and AlreadyExists included), then thrown away — no object, no resourceVersion, no event.
- **resourceVersion**: one global counter; every write returns a new one; a no-op write returns the old one
  and emits no watch event. An update or patch carrying a stale ``metadata.resourceVersion`` (or delete
  ``preconditions``) is answered **409 Conflict**; a failed JSON-patch ``test`` is **422**.
- **Patches**: merge patch (``null`` deletes), JSON patch, and strategic merge patch for built-in kinds only
  (keyed lists such as containers-by-name; custom resources answer **415**, like the real server). PUT replaces.
- **Subresources**: ``status`` (writes to the object ignore ``.status``; writes to ``/status`` change only
  ``.status``) and ``scale`` for Deployments (``autoscaling/v1`` Scale). ``metadata.generation`` starts at 1 and
  is bumped when anything but metadata/status changes (and when deletion starts), never by status writes.
- **Validation of custom resources** against their CRD's ``openAPIV3Schema``: unknown fields pruned, defaults
  applied, violations answered **422 Invalid** naming the fields; ``null`` in a non-nullable field dropped;
  formats (``int32``/``int64``, ``date-time``, ``byte``, ``ipv4``/``ipv6``, ``uuid``) and list-set/map uniqueness
  checked; **CEL rules** (``x-kubernetes-validations``, :mod:`.cel_rules`, cel-python with Kubernetes' duration and
  string functions; transition rules only on update; ``messageExpression``/``reason``/``fieldPath``; property
  names escaped as Kubernetes does). Metadata: name syntax, label values.
- **Istio's and Gateway API's real CRDs** (:mod:`.vendored`, unmodified from istio/api and
  kubernetes-sigs/gateway-api): VirtualService and DestinationRule, GatewayClass, Gateway, HTTPRoute and
  ReferenceGrant are pruned, defaulted and validated by those schemas, CEL included, as on a cluster.
- **Events**: core ``v1`` and ``events.k8s.io/v1`` Events are one store (:mod:`.events`, the real conversion:
  ``note``↔``message``, ``regarding``↔``involvedObject``, …), so ``kubectl describe`` shows the operator's; an
  ``events.k8s.io`` Event is validated on create (required fields, ``type``, ``note`` ≤ 1 KB).
- **Services** (:mod:`.services`): ``type`` semantics — ClusterIP default, ``clusterIP`` allocated and immutable,
  nodePorts allocated (30000–32767) for NodePort/LoadBalancer and kept when an update omits them, released when
  the type goes back to ClusterIP, ``externalTrafficPolicy`` defaulted, a nodePort on ClusterIP refused.
- **Deletion with finalizers**: DELETE sets ``deletionTimestamp``; the object disappears when the last finalizer
  is removed; no new finalizers can be added meanwhile. Owned objects (``ownerReferences``) are
  garbage-collected when the owner goes, unless ``propagationPolicy: Orphan``.
- **List and watch** with label selectors (``a=b``, ``a!=b``, ``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``),
  field selectors (``metadata.name=x``), ``limit``/``continue``, ``timeoutSeconds``, resumption from a
  ``resourceVersion`` (events replayed from a bounded log; **410 Gone** when it is too old) and
  ``sendInitialEvents`` bookmarks. Objects whose labels stop (start) matching arrive as DELETED (ADDED). Watch
  streams are ``application/json``, one event per line (kubectl refuses ``octet-stream``); with the Table
  ``Accept`` each object is a one-row Table, column definitions in the first event only (``kubectl get -w``).
- Several served versions of one resource share storage (Istio's ``v1``/``v1beta1``/``v1alpha3``, Gateway API's
  ``v1``/``v1beta1``); ``events.k8s.io`` serves the core Events converted.
- **Fault injection** (:mod:`.faults`): a seeded fraction of calls answered 500 (not applied), 409 (only where
  a real server could: PUT, resourceVersion-carrying patches, delete preconditions) or a timeout (504 after a
  delay; for writes sometimes *after* applying them — the lost reply). Watches are excluded by default.
- Fast: requests are served directly (~1 ms) unless a test added kmock reactions, which then take precedence.

What it does not do
-------------------
- No controllers: nothing creates ReplicaSets or Pods, nothing scales by HPA, no Service endpoints. The one
  stand-in is the Deployment status (:class:`.objects.BuiltinBehaviour`): on create and on every spec change
  a Deployment is reported fully rolled out and ready (opt out with ``deployments_ready=False`` or the
  ``emulator.coalmine.dev/hold-status: "true"`` annotation, then write ``/status`` yourself).
- No schema validation of built-in kinds beyond metadata and unknown fields (a Deployment with a wrong type is
  stored as written; tests validate what the operator writes with ``kubernetes-validate``), no validation
  ratcheting (an unchanged invalid value is refused on update), no CEL cost limits, no admission webhooks,
  no server-side apply (not advertised in OpenAPI either), no
  ``deletecollection``, no authentication or RBAC, no managedFields. No protobuf: a protobuf body
  (``kubectl create namespace``, ``kubectl create configmap`` — kubectl's typed clients) is answered **415**, and
  ``/openapi/v2`` asked for as protobuf **406**. Field validation skips JSON patches (the real server checks
  their result). Namespaces need
  not exist before objects are created in them, and deleting one does not delete its objects.
- Tables for built-in kinds are reduced (no ``-o wide`` columns; Events get Name/Age, not upstream's columns);
  OpenAPI operations carry no descriptions of their parameters nor responses beyond 200.
- Watch bookmarks are only sent for ``sendInitialEvents``; list continue tokens are offsets, not snapshots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import apps, rendering  # the hooks kmock documents for subclassing

from . import dryrun, fieldcheck, tables
from .faults import FaultInjector, FaultKind
from .objects import ApiError, BuiltinBehaviour, scale_view
from .openapi import Documents
from .patching import MERGE_PATCH
from .paths import check_body_type, parse_request
from .resources import (
    COALMINE_GROUP,
    COALMINE_KINDS,
    CRD_RESOURCE,
    REPO_CRDS,
    ResourceSpec,
    builtin_specs,
    crd_specs,
    schemaless_crd,
)
from .schemas import load_crd_files, parse_crd
from .selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from .store import Store
from .vendored import vendored_crds
from .watching import Watch, WatchHub, as_tables, present

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


_SERVER_VERSION = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.0-coalmine-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _has_precondition(request: rendering.Request, method: str) -> bool:
    """Whether a real server could answer this write with 409 (it asked for optimistic concurrency)."""
    data = request.data if isinstance(request.data, Mapping) else {}
    if method == "PUT":
        return True
    if method == "PATCH":
        return bool((data.get("metadata") or {}).get("resourceVersion"))
    return method == "DELETE" and bool(data.get("preconditions"))


@attrs.define(kw_only=True)
class CoalmineEmulator(kmock.KubernetesEmulator):
    """The strict emulator; see the module docstring for what it does and doesn't do.

    ``crd_paths``: CRD YAML files to serve (default: the repo's ``crds/*.yaml``); Coalmine kinds without a CRD
    file are served schemaless. ``event_log_limit``: watch events kept per resource for resumption.
    ``request_log_limit``: how many requests kmock's ``requests`` keeps (bounded for benchmarks).
    """

    crd_paths: Sequence[Path] | None = None
    deployments_ready: bool = True
    event_log_limit: int = 10_000
    request_log_limit: int | None = 2_000
    faults: FaultInjector = attrs.field(factory=FaultInjector)
    namespaces: Sequence[str] = ("default", "kube-system")
    writes: int = attrs.field(default=0, init=False)
    """Write requests served (POST, PUT, PATCH, DELETE): the benchmark's API writes per second."""
    writes_by: dict[str, int] = attrs.field(factory=dict, init=False)
    """The same, by ``METHOD resource[/subresource]`` (which of the operator's writes dominate)."""

    store: Store = attrs.field(init=False)
    _specs: dict[str, ResourceSpec] = attrs.field(factory=dict, init=False)
    watches: WatchHub = attrs.field(init=False)
    _results: dict[int, rendering.Payload] = attrs.field(factory=dict, init=False)
    _own_reactions: int = attrs.field(default=0, init=False)
    _documents: Documents = attrs.field(factory=Documents, init=False)
    _fields: fieldcheck.FieldValidation = attrs.field(factory=fieldcheck.FieldValidation, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.watches = WatchHub(event_log_limit=self.event_log_limit)
        self.store = Store(behaviour=BuiltinBehaviour(deployments_ready=self.deployments_ready), emit=self._emit)
        self.fallback["put"] << self._serve_result
        for spec in builtin_specs():
            self.register(spec)
        for crd in vendored_crds():  # Istio's and Gateway API's real CRDs, as on a cluster with them installed
            self.add_crd(crd)
        paths = list(self.crd_paths) if self.crd_paths is not None else sorted(REPO_CRDS.glob("*.yaml"))
        for body in load_crd_files(paths):
            self.add_crd(body)
        for plural, kind, short_names in COALMINE_KINDS:
            if f"{COALMINE_GROUP}/v1alpha1/{plural}" not in self._specs:
                self.add_crd(schemaless_crd(plural, kind, short_names))
        for namespace in self.namespaces:
            self.create_object("v1/namespaces", {"metadata": {"name": namespace}})
        self._own_reactions = len(self._payloads)

    # -- registration ----------------------------------------------------------------------------------------
    def register(self, spec: ResourceSpec) -> None:
        """Serve a resource (discovery, storage, watch)."""
        self._specs[spec.key] = spec
        self._documents.invalidate()
        if spec.storage_key == spec.key or spec.storage_key not in self.store.storage_specs:
            self.store.storage_specs[spec.storage_key] = spec
        self.resources[spec.key] = kmock.ResourceInfo(
            kind=spec.kind,
            singular=spec.singular or spec.kind.lower(),
            namespaced=spec.namespaced,
            verbs=set(_VERBS),
            shortnames=set(spec.short_names),
            categories=set(spec.categories),
            subresources=set(spec.subresources),
        )

    def add_crd(self, body: Mapping[str, Any]) -> None:
        """Store a CRD object (as ``kubectl apply`` would) and serve its resource."""
        info = parse_crd(body)
        if self.read_object(CRD_RESOURCE, None, info.name) is None:
            self.create_object(CRD_RESOURCE, body)  # registers through the same hook as an API create
        else:
            self._register_crd(body)

    def _register_crd(self, body: Mapping[str, Any]) -> None:
        for spec in crd_specs(parse_crd(body)):
            self.register(spec)

    def spec(self, resource: str) -> ResourceSpec:
        """The spec of a registered resource by ``group/version/plural`` (``v1/configmaps`` for core)."""
        try:
            return self._specs[resource]
        except KeyError:
            raise KeyError(f"resource {resource!r} is not registered in the emulator") from None

    # -- direct (in-process) access, with the same semantics as over HTTP --------------------------------------
    def read_object(self, resource: str, namespace: str | None, name: str) -> kmock.ObjectVersion | None:
        """The stored object, wrapped for kmock's pattern matching (``assert obj >= {"spec": {...}}``)."""
        spec = self.spec(resource)
        obj = self.store.get(spec, namespace, name)
        return None if obj is None else kmock.ObjectVersion(present(spec, obj))

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        spec = self.spec(resource)
        return [present(spec, obj) for obj in self.store.items(spec, namespace)]

    def create_object(self, resource: str, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create as ``POST`` would (validation, defaults, events). Call it on the emulator's loop thread."""
        spec = self.spec(resource)
        return present(spec, self._create(spec, namespace, body))

    def patch_object(
        self, resource: str, namespace: str | None, name: str, patch: Any, *, subresource: str | None = None
    ) -> dict[str, Any]:
        """Merge-patch as ``PATCH`` would. Call it on the emulator's loop thread."""
        spec = self.spec(resource)
        return present(spec, self.store.update(spec, namespace, name, subresource, patch, MERGE_PATCH))

    def delete_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        spec = self.spec(resource)
        return present(spec, self.store.delete(spec, namespace, name, None))

    def _create(self, spec: ResourceSpec, namespace: str | None, body: Any) -> dict[str, Any]:
        obj = self.store.create(spec, namespace, body)
        if spec.key == CRD_RESOURCE:
            self._register_crd(obj)
        return obj

    async def wait_for_watch(self, resource: str, *, timeout: float = 10.0) -> None:
        """Wait until some client watches ``resource`` — e.g. until an operator under test is listening."""
        storage_key = self.spec(resource).storage_key
        async with asyncio.timeout(timeout):
            while not self.watches.watching(storage_key):
                await asyncio.sleep(0.01)

    def watched(self) -> set[str]:
        """The ``group/version/plural`` of every resource with an open watch stream."""
        return self.watches.watched()

    def close_watches(self) -> None:
        """End every watch stream (before the server stops, so shutdown doesn't wait for idle streams)."""
        self.watches.close_all()

    # -- request handling ------------------------------------------------------------------------------------
    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """kmock's entry point, with a URL parser that understands the ``namespaces`` resource (see paths)."""
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            request = await parse_request(raw_request, id=len(self._requests))
            self._requests.append(request)
            if raw_request.method in ("POST", "PUT", "PATCH", "DELETE"):
                self.writes += 1
                kind = f"{raw_request.method} {_write_kind(raw_request.path)}"
                self.writes_by[kind] = self.writes_by.get(kind, 0) + 1
            try:
                return await self._handle(request)
            except rendering.StreamingError as exc:
                raw_response = exc.args[0]
                raise exc.__cause__ or exc from None
        except Exception as exc:
            if not self._errors:
                raise
            self._errors[-1].append(exc)
            if raw_response is None or not raw_response.prepared:
                return await self._render_error(exc)
            await self._stream_error(exc, raw_response)
            await raw_response.write_eof()
            return raw_response

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self.request_log_limit is not None and len(self._requests) > 2 * self.request_log_limit:
            del self._requests[: -self.request_log_limit]
        resource = request.resource
        path = request.url.path
        if path in ("/version", "/version/") or path.startswith("/openapi/"):  # the official client asks /version/
            return self._serve_meta(request, path)
        if resource is None or resource.plural is None:  # discovery & non-API paths: kmock's scaffold
            return await apps.RawHandler._handle(self, request)
        key = (
            f"{resource.group}/{resource.version}/{resource.plural}"
            if resource.group
            else (f"{resource.version}/{resource.plural}")
        )
        try:
            spec = self._specs.get(key)
            if spec is None or (request.namespace is not None and not spec.namespaced):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            method = str(request.method.value).upper()
            fault = self.faults.draw(
                plural=spec.plural,
                is_write=method in _WRITE_METHODS,
                is_watch=request.action == kmock.action.WATCH,
                can_conflict=_has_precondition(request, method),
            )
            if fault is not None and not fault.after_write:
                await self._fail(fault.kind)
            if method in _WRITE_METHODS and method != "DELETE":
                check_body_type(request)
            if method in _WRITE_METHODS:
                self._results[id(request)] = self._write(spec, request, method)
            if fault is not None:
                await self._fail(fault.kind)  # the write is applied, but its answer is lost
            if len(self._payloads) > self._own_reactions:  # a test added reactions: kmock's DSL decides
                return await apps.RawHandler._handle(self, request)
            # No reactions of a test's own: serve directly (kmock matches every request against its whole
            # request history, which costs tens of milliseconds per request once a few thousand were served).
            return await rendering.Response(payload=self._direct(request, method))(request)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except SelectorError as exc:
            return aiohttp.web.json_response(ApiError(400, "BadRequest", str(exc)).status(), status=400)
        finally:
            self._results.pop(id(request), None)

    async def _fail(self, fault: FaultKind) -> None:
        if fault == FaultKind.TIMEOUT:
            await asyncio.sleep(self.faults.policy.timeout_delay)
            raise ApiError(504, "Timeout", "Timeout: request did not complete within requested timeout")
        if fault == FaultKind.CONFLICT:
            raise ApiError(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified "
                "(injected fault); please apply your changes to the latest version",
            )
        raise ApiError(500, "InternalError", "Internal error occurred: injected fault")

    def _write(self, spec: ResourceSpec, request: rendering.Request, method: str) -> rendering.Payload:
        """A write as the real server answers it: field validation first, then applied — or, with
        ``dryRun=All``, computed the same way (admission, defaults, validation, conflicts) and thrown away."""
        checked = self.store.validate or request.params.get("fieldValidation") == fieldcheck.STRICT
        warnings = self._fields.check(spec, request, method) if checked else []  # unchecked: the seeded benchmark
        if not dryrun.requested(request, method):
            payload = self._apply_write(spec, request, method, register=True)
        else:
            namespace = request.namespace if spec.namespaced else None
            current = self.store.get(spec, namespace, request.name) if request.name else None
            with dryrun.isolated(self.store):
                payload = self._apply_write(spec, request, method, register=False)
            payload = dryrun.answer(payload, current)
        if warnings:
            header = ", ".join(f"299 - {json.dumps(w)}" for w in warnings)
            payload = rendering.Response(headers={"Warning": header}, payload=payload)
        return payload

    def _apply_write(
        self, spec: ResourceSpec, request: rendering.Request, method: str, *, register: bool
    ) -> rendering.Payload:
        namespace = request.namespace if spec.namespaced else None
        if method == "POST":
            if request.name is not None:
                raise ApiError(405, "MethodNotAllowed", "POST is only allowed on a collection")
            if not register:
                return rendering.Response(
                    status=201, payload=present(spec, self.store.create(spec, namespace, request.data))
                )
            return rendering.Response(status=201, payload=present(spec, self._create(spec, namespace, request.data)))
        if request.name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} of a collection is not supported by the emulator")
        if method == "DELETE":
            result = self.store.delete(spec, namespace, request.name, request.data)
            if spec.builtin and spec.key != CRD_RESOURCE and not result["metadata"].get("deletionTimestamp"):
                meta = result["metadata"]
                return {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": meta["name"], "group": spec.group, "kind": spec.plural, "uid": meta.get("uid")},
                }
            return present(spec, result)
        content_type = None if method == "PUT" else request.headers.get("Content-Type", "").split(";")[0].strip()
        result = self.store.update(spec, namespace, request.name, request.subresource, request.data, content_type)
        if spec.key == CRD_RESOURCE and register:
            self._register_crd(result)
        return scale_view(spec, result) if request.subresource == "scale" else present(spec, result)

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """kmock's resource list, with the core group's ``groupVersion`` spelled ``v1`` (not ``/v1``), and
        subresources listed as a real server lists them: no short names or categories of their own (else
        ``kubectl get cmc`` finds ``canaries/status`` too, and ``kubectl get all`` lists ``deployments/scale``),
        their own verbs, and ``scale`` as ``autoscaling/v1`` Scale."""
        payload = await super()._serve_version(request)
        if isinstance(payload, dict) and request.resource is not None and request.resource.group == "":
            payload["groupVersion"] = request.resource.version
        if isinstance(payload, dict):
            for entry in payload.get("resources") or ():
                if "/" in entry["name"]:
                    entry["shortNames"], entry["categories"] = [], []
                    entry["verbs"] = ["get", "patch", "update"]
                    if entry["name"].endswith("/scale"):
                        entry.update(kind="Scale", group="autoscaling", version="v1")
        return payload

    def _serve_meta(self, request: rendering.Request, path: str) -> aiohttp.web.StreamResponse:
        """``/version`` and the OpenAPI documents (:mod:`.openapi`); 406 for v2 unless JSON is acceptable."""
        if path in ("/version", "/version/"):
            return aiohttp.web.json_response(_SERVER_VERSION)
        self._documents.refresh(self._specs.values())
        return self._documents.respond(path, request.params.get("hash"), request.headers.get("Accept", ""))

    def _printer_columns(self, spec: ResourceSpec) -> list[dict[str, Any]]:
        """A custom resource's ``additionalPrinterColumns`` for its version, read from the stored CRD."""
        if spec.builtin:
            return []
        crd = self.store.get(self._specs[CRD_RESOURCE], None, f"{spec.plural}.{spec.group}")
        for version in ((crd or {}).get("spec") or {}).get("versions") or ():
            if version.get("name") == spec.version:
                return list(version.get("additionalPrinterColumns") or ())
        return []

    def _as_table(self, request: rendering.Request) -> str | None:
        """The ``includeObject`` of a Table request (``Metadata`` by default), or None: not a Table request."""
        if request.subresource is not None or not tables.wants_table(request.headers.get("Accept", "")):
            return None
        return request.params.get("includeObject") or "Metadata"

    def _direct(self, request: rendering.Request, method: str) -> rendering.Payload:
        if method in _WRITE_METHODS:
            return self._results[id(request)]
        if request.action == kmock.action.WATCH:
            return self._serve_watch(request)
        return self._serve_fetch(request) if request.name is not None else self._serve_list(request)

    async def _serve_result(self, request: rendering.Request) -> rendering.Payload:
        return self._results[id(request)]

    _serve_create = _serve_update = _serve_delete = _serve_result

    async def _serve_fetch(self, request: rendering.Request) -> rendering.Payload:
        spec = self.spec(self._key(request))
        obj = self.store.get(spec, request.namespace, request.name or "")
        if obj is None:
            raise ApiError(404, "NotFound", f'{spec.qualified} "{request.name}" not found')
        if request.subresource == "scale" and "scale" in spec.subresources:
            return scale_view(spec, obj)
        include = self._as_table(request)
        if include is not None:
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion")}
            return tables.table(spec, self._printer_columns(spec), [present(spec, obj)], meta, include)
        return present(spec, obj)

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        spec = self.spec(self._key(request))
        labels = parse_label_selector(request.params.get("labelSelector"))
        fields = parse_field_selector(request.params.get("fieldSelector"))
        items = [
            present(spec, obj)
            for obj in self.store.items(spec, request.namespace)
            if labels_match(labels, obj) and fields_match(fields, obj)
        ]
        start = (
            int(base64.urlsafe_b64decode(request.params["continue"]).decode()) if request.params.get("continue") else 0
        )
        limit = int(request.params.get("limit") or 0)
        end = start + limit if limit > 0 else len(items)
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        if end < len(items):
            metadata["continue"] = base64.urlsafe_b64encode(str(end).encode()).decode()
            metadata["remainingItemCount"] = len(items) - end
        include = self._as_table(request)
        if include is not None:
            return tables.table(spec, self._printer_columns(spec), items[start:end], metadata, include)
        return {
            "kind": f"{spec.kind}List",
            "apiVersion": spec.api_version,
            "metadata": metadata,
            "items": items[start:end],
        }

    def _serve_watch(self, request: rendering.Request) -> rendering.Payload:  # type: ignore[override]  # any payload
        """A watch stream as the real server sends it: ``application/json``, one event per line; each object a
        one-row Table when the client asked for Tables (``kubectl get -w``)."""
        spec = self.spec(self._key(request))
        params = request.params
        watch = Watch(
            spec=spec,
            namespace=request.namespace,
            name=request.name,
            labels=parse_label_selector(params.get("labelSelector")),
            fields=parse_field_selector(params.get("fieldSelector")),
        )
        since, initial = params.get("resourceVersion"), params.get("sendInitialEvents") == "true"
        current = None if since not in (None, "", "0") and not initial else self.store.items(spec, request.namespace)
        backlog = self.watches.open(watch, since, current, initial, self.store.resource_version)
        stream = self.watches.stream(watch, backlog, params.get("timeoutSeconds"), request._raw_request)
        include = self._as_table(request)
        if include is not None:
            stream = as_tables(stream, functools.partial(tables.table, spec, self._printer_columns(spec)), include)
        return rendering.Response(payload=stream, headers={"Content-Type": "application/json"})

    def _emit(self, spec: ResourceSpec, kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        """The store's event sink (tests may wrap ``store._emit`` to record every commit)."""
        self.watches.publish(spec, kind, new, old)

    @staticmethod
    def _key(request: rendering.Request) -> str:
        resource = request.resource
        assert resource is not None
        if resource.group:
            return f"{resource.group}/{resource.version}/{resource.plural}"
        return f"{resource.version}/{resource.plural}"


@contextlib.asynccontextmanager
async def serving(emulator: CoalmineEmulator, *, port: int | None = None) -> AsyncIterator[str]:
    """Serve the emulator on 127.0.0.1 (a free port unless given) in the current loop; yields the base URL."""
    async with emulator, kmock.Server(emulator, port=port) as server:
        try:
            yield str(server.url).rstrip("/")
        finally:
            emulator.close_watches()
            await asyncio.sleep(0)  # let the streams see their end-of-stream before the server stops


def crd_files(*paths: Path | str) -> list[Path]:
    """Expand files and directories into the CRD YAML files they hold."""
    found: list[Path] = []
    for item in map(Path, paths):
        found.extend(sorted(item.glob("*.yaml")) if item.is_dir() else [item])
    return found


__all__ = ("CoalmineEmulator", "crd_files", "present", "serving")


def _write_kind(path: str) -> str:
    """``resource[/subresource]`` of a request path (``…/namespaces/NS/canaries/X/status``: ``canaries/status``)."""
    parts = [part for part in path.split("/") if part]
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
    else:
        rest = parts[3:] if parts[:1] == ["apis"] else parts[2:]
    if not rest:
        return "namespaces"
    return rest[0] + ("/" + rest[2] if len(rest) > 2 else "")
