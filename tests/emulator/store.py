"""The write path: create, update (patch/replace, per subresource) and delete with a real server's semantics.

Everything here is synchronous and runs on the emulator's event loop, so every write is atomic with respect to
other requests and to watch registration without a lock: a watcher never misses an event between a list and a
watch (the event log is replayed from the list's ``resourceVersion``).
"""

from __future__ import annotations

import copy
import random
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from . import events
from .objects import (
    ApiError,
    BuiltinBehaviour,
    Cause,
    conflict,
    invalid,
    new_uid,
    not_found,
    now_iso,
    scale_view,
    strip_server_fields,
    user_part,
)
from .patching import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from .resources import ResourceSpec
from .schemas import prune_and_default
from .services import ServiceAllocator

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

Emit = Callable[[ResourceSpec, str, dict[str, Any], dict[str, Any] | None], None]


class Store:
    """Objects by ``(storage key, namespace, name)``; every write bumps one global ``resourceVersion``."""

    def __init__(self, *, behaviour: BuiltinBehaviour, emit: Emit) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.storage_specs: dict[str, ResourceSpec] = {}  # storage key -> the storage version's spec
        self.resource_version = 0
        self.behaviour = behaviour
        # Check every write against the CRDs' openAPIV3Schema (pruning and defaults apply either way). Turned off only
        # by the scale benchmark once its objects are seeded: the stand-in API server's CPU must not limit the
        # operator it measures (a real API server validates on cores of its own).
        self.validate = True
        self._emit = emit
        self._rng = random.Random(0)
        self.services = ServiceAllocator()

    # -- reads -----------------------------------------------------------------------------------------------
    def get(self, spec: ResourceSpec, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.objects.get((spec.storage_key, namespace if spec.namespaced else None, name))

    def items(self, spec: ResourceSpec, namespace: str | None) -> list[dict[str, Any]]:
        key = spec.storage_key
        found = [
            obj for (skey, ns, _), obj in self.objects.items() if skey == key and (namespace is None or ns == namespace)
        ]
        return sorted(found, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))

    # -- create ----------------------------------------------------------------------------------------------
    def create(self, spec: ResourceSpec, namespace: str | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise ApiError(400, "BadRequest", "the body of a create must be a JSON object")
        obj = copy.deepcopy(dict(body))
        self._check_type(spec, obj)
        meta = obj.setdefault("metadata", {})
        if spec.namespaced:
            if namespace and meta.get("namespace") not in (None, namespace):
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or meta.get("namespace")
            if not namespace:
                raise ApiError(400, "BadRequest", "a namespaced object needs a namespace")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(self._rng.choice(string.ascii_lowercase + string.digits) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = meta.get("name") or ""
        if self.get(spec, namespace, name) is not None:
            details = {"name": name, "group": spec.group, "kind": spec.plural}
            raise ApiError(409, "AlreadyExists", f'{spec.qualified} "{name}" already exists', details)
        if spec.has_status:
            obj.pop("status", None)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = meta.get("creationTimestamp") or now_iso()
        if spec.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if spec.group == "events.k8s.io":
            causes: list[Cause] = list(events.create_problems(obj))
            if causes:
                raise invalid(spec, name, causes)
        if spec.to_storage is not None:
            obj = spec.to_storage(obj)
        obj = self._admit(spec, obj, None)
        return self._commit(spec, obj, None, "ADDED", settle=True)

    # -- update ----------------------------------------------------------------------------------------------
    def update(
        self,
        spec: ResourceSpec,
        namespace: str | None,
        name: str,
        subresource: str | None,
        body: Any,
        content_type: str | None,
    ) -> dict[str, Any]:
        """PATCH (``content_type`` set) or PUT (``content_type`` None) of an object or its status/scale."""
        current = self.get(spec, namespace, name)
        if current is None:
            raise not_found(spec, name)
        if subresource not in (None, "status", "scale") or (subresource and subresource not in spec.subresources):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({subresource})")
        view = spec.from_storage(current) if spec.from_storage is not None else current
        base = scale_view(spec, current) if subresource == "scale" else view
        incoming = self._apply(spec, base, body, content_type)
        if not isinstance(incoming, dict):
            raise ApiError(400, "BadRequest", "the patched object must be a JSON object")
        sent_version = (incoming.get("metadata") or {}).get("resourceVersion")
        if sent_version not in (None, "") and str(sent_version) != current["metadata"].get("resourceVersion"):
            raise conflict(spec, name)
        if subresource is None and (incoming.get("metadata") or {}).get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name in the URL")

        if subresource == "scale":
            candidate = copy.deepcopy(current)
            candidate.setdefault("spec", {})["replicas"] = (incoming.get("spec") or {}).get("replicas", 0)
        elif subresource == "status":
            candidate = copy.deepcopy(current)
            if incoming.get("status") is None:
                candidate.pop("status", None)
            else:
                candidate["status"] = incoming["status"]
        else:
            candidate = incoming
            if spec.has_status:
                candidate.pop("status", None)
                if "status" in current:
                    candidate["status"] = copy.deepcopy(current["status"])
            self._keep_server_metadata(spec, candidate, current)
        self._check_type(spec, candidate)
        if spec.to_storage is not None and subresource is None:
            candidate = spec.to_storage(candidate)
        candidate["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        candidate = self._admit(spec, candidate, current)
        if strip_server_fields(candidate) == strip_server_fields(current):
            return current  # a no-op write: no new resourceVersion, no watch event (as the real server)
        if candidate["metadata"].get("deletionTimestamp") and not candidate["metadata"].get("finalizers"):
            return self.remove(spec, candidate, old=current)  # the last finalizer is gone: deleted, no MODIFIED
        changed = user_part(candidate, has_status=spec.has_status) != user_part(current, has_status=spec.has_status)
        if spec.generation and changed:
            candidate["metadata"]["generation"] = int(current["metadata"].get("generation", 0)) + 1
        return self._commit(spec, candidate, current, "MODIFIED", settle=changed)

    def _apply(self, spec: ResourceSpec, base: dict[str, Any], body: Any, content_type: str | None) -> Any:
        try:
            if content_type is None:
                return copy.deepcopy(body)
            if content_type == MERGE_PATCH:
                return merge_patch(base, body)
            if content_type == JSON_PATCH:
                return json_patch(base, body)
            if content_type == STRATEGIC_MERGE_PATCH and spec.builtin:
                return strategic_merge_patch(base, body)
        except PatchError as exc:
            reason = "Invalid" if exc.status == 422 else "BadRequest"
            raise ApiError(exc.status, reason, str(exc)) from exc
        if content_type == APPLY_PATCH:
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not emulated")
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media "
            f"types include: {JSON_PATCH}, {MERGE_PATCH}" + (f", {STRATEGIC_MERGE_PATCH}" if spec.builtin else ""),
        )

    @staticmethod
    def _keep_server_metadata(spec: ResourceSpec, candidate: dict[str, Any], current: Mapping[str, Any]) -> None:
        meta = candidate.setdefault("metadata", {})
        old = current["metadata"]
        for key in (
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "deletionTimestamp",
            "generation",
            "deletionGracePeriodSeconds",
        ):
            if key in old:
                meta[key] = old[key]
            else:
                meta.pop(key, None)
        if old.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or ()) - set(old.get("finalizers") or ())
            if added:
                raise invalid(
                    spec,
                    old["name"],
                    [
                        (
                            "metadata.finalizers",
                            f"Forbidden: no new finalizers can be added if the object is being "
                            f"deleted, found new finalizers {sorted(added)!r}",
                        )
                    ],
                )

    # -- delete ----------------------------------------------------------------------------------------------
    def delete(self, spec: ResourceSpec, namespace: str | None, name: str, options: Any) -> dict[str, Any]:
        current = self.get(spec, namespace, name)
        if current is None:
            raise not_found(spec, name)
        options = options if isinstance(options, Mapping) else {}
        preconditions = options.get("preconditions") or {}
        meta = current["metadata"]
        for key in ("resourceVersion", "uid"):
            if preconditions.get(key) not in (None, "") and str(preconditions[key]) != str(meta.get(key)):
                raise conflict(spec, name)
        orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
        return self.delete_object(spec, current, orphan=orphan)

    def delete_object(self, spec: ResourceSpec, current: dict[str, Any], *, orphan: bool = False) -> dict[str, Any]:
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            return current
        if meta.get("finalizers"):
            candidate = copy.deepcopy(current)
            candidate["metadata"]["deletionTimestamp"] = now_iso()
            candidate["metadata"]["deletionGracePeriodSeconds"] = 0
            if spec.generation:
                candidate["metadata"]["generation"] = int(meta.get("generation", 0)) + 1
            return self._commit(spec, candidate, current, "MODIFIED")
        return self.remove(spec, current, orphan=orphan)

    def remove(
        self, spec: ResourceSpec, current: dict[str, Any], *, orphan: bool = False, old: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Drop the object for good (no finalizers left), then garbage-collect its dependents."""
        meta = current["metadata"]
        del self.objects[(spec.storage_key, meta.get("namespace") if spec.namespaced else None, meta["name"])]
        self.resource_version += 1
        gone = {**current, "metadata": {**meta, "resourceVersion": str(self.resource_version)}}
        self._emit(spec, "DELETED", gone, old if old is not None else current)
        if not orphan and meta.get("uid"):
            self._collect_dependents(meta["uid"])
        return gone

    def _collect_dependents(self, uid: str) -> None:
        """The garbage collector: delete (or mark, if finalized) every object owned by the removed one."""
        dependents = [
            (skey, obj)
            for (skey, _, _), obj in self.objects.items()
            if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or ())
        ]
        for skey, obj in dependents:
            meta = obj["metadata"]
            spec = self.storage_specs[skey]
            current = self.get(spec, meta.get("namespace"), meta["name"])
            if current is not None:
                self.delete_object(spec, current)

    # -- shared ----------------------------------------------------------------------------------------------
    @staticmethod
    def _check_type(spec: ResourceSpec, obj: dict[str, Any]) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version not in (None, spec.api_version) or kind not in (None, spec.kind):
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data ({api_version}/{kind}) does not "
                f"match the expected API version ({spec.api_version}/{spec.kind})",
            )
        obj["apiVersion"], obj["kind"] = spec.api_version, spec.kind

    def _admit(self, spec: ResourceSpec, obj: dict[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate metadata, prune/default/validate against the CRD schema, apply built-in defaults."""
        meta = obj["metadata"]
        name = str(meta.get("name") or "")
        causes: list[Cause] = []
        if not name or len(name) > 253 or not _NAME_RE.match(name):
            causes.append(
                (
                    "metadata.name",
                    f"{name!r}: a lowercase RFC 1123 subdomain must consist of lower case "
                    "alphanumeric characters, '-' or '.'",
                )
            )
        for field in ("labels", "annotations"):
            for key, value in (meta.get(field) or {}).items():
                if not isinstance(value, str):
                    raise ApiError(400, "BadRequest", f"metadata.{field}[{key}]: must be a string, got {value!r}")
                if field == "labels" and (len(value) > 63 or not _LABEL_VALUE_RE.match(value)):
                    causes.append(
                        (
                            f"metadata.labels[{key}]",
                            f"{value!r}: a valid label must be 63 characters or less, alphanumeric, '-', '_' or '.'",
                        )
                    )
        if spec.schema is not None:
            obj = prune_and_default(obj, spec.schema)
        if spec.validator is not None and self.validate:
            for error in spec.validator.errors(obj, old):
                causes.append(
                    (error.path, error.message, error.reason) if error.reason else (error.path, error.message)
                )
        if spec.builtin and spec.group == "" and spec.plural == "services":
            uid = meta.get("uid")
            others = [o for o in self.items(spec, None) if o["metadata"].get("uid") != uid]
            causes.extend(self.services.admit(obj, old, others))
        if causes:
            raise invalid(spec, name, causes)
        if spec.builtin:
            self.behaviour.prepare(spec, obj, old)
        return obj

    def _commit(
        self, spec: ResourceSpec, obj: dict[str, Any], old: dict[str, Any] | None, event: str, *, settle: bool = False
    ) -> dict[str, Any]:
        if settle and spec.group == "apps" and spec.plural == "deployments":
            self.behaviour.settle_deployment(obj)
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)
        meta = obj["metadata"]
        self.objects[(spec.storage_key, meta.get("namespace") if spec.namespaced else None, meta["name"])] = obj
        self._emit(spec, event, obj, old)
        return obj
