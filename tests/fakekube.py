"""An in-memory stand-in for :class:`controller.kube.client.KubeApi` for unit tests of routers and appliers.

It keeps what routers rely on from a real API server: ``resourceVersion`` bumped on every write and a 409 for a
replace carrying a stale one, 409 for creating an existing name, ``generation`` bumped on spec changes, and a log
of writes so tests can assert "nothing was written". ``conflicts`` makes the next N replaces fail with 409 after
someone else's write, to exercise re-read-and-re-apply. Integration tests use the emulated API server instead.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from controller.kube.client import PatchType, Resource, deep_merge
from controller.kube.errors import ApiConflict, ApiNotFound

Key = tuple[str, str, str, str]  # (group, plural, namespace, name)


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name)
        self.conflicts = 0
        self._version = 0

    def _key(self, resource: Resource, namespace: str, name: str) -> Key:
        return (resource.group, resource.plural, namespace, name)

    def _stamp(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)

    def put(self, resource: Resource, namespace: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Seed an object (as if a user had applied it); not logged as a write."""
        stored = copy.deepcopy(dict(obj))
        stored.setdefault("apiVersion", resource.api_version)
        stored.setdefault("kind", resource.kind)
        stored["metadata"].setdefault("namespace", namespace)
        stored["metadata"].setdefault("generation", 1)
        self._stamp(stored)
        self.objects[self._key(resource, namespace, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get(self._key(resource, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, resource: Resource, namespace: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        wanted = dict(part.split("=", 1) for part in (label_selector or "").split(",") if part)
        return [
            copy.deepcopy(obj)
            for (group, plural, ns, _), obj in sorted(self.objects.items())
            if (group, plural) == (resource.group, resource.plural)
            and (not namespace or ns == namespace)
            and all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        ]

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if self._key(resource, namespace, name) in self.objects:
            raise ApiConflict(f"{resource.kind} {namespace}/{name}", 409, "already exists")
        self.writes.append(("create", resource.kind, name))
        return self.put(resource, namespace, body)

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        key = self._key(resource, namespace, name)
        what = f"{resource.kind} {namespace}/{name}"
        if key not in self.objects:
            raise ApiNotFound(what, 404, "not found")
        live = self.objects[key]
        if self.conflicts > 0:
            self.conflicts -= 1
            live["metadata"].setdefault("annotations", {})["someone-else"] = str(self._version)
            self._stamp(live)
        if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise ApiConflict(
                what, 409, "the object has been modified; please apply your changes to the latest version"
            )
        stored = copy.deepcopy(dict(body))
        stored["metadata"]["generation"] = live["metadata"].get("generation", 1) + (
            1 if stored.get("spec") != live.get("spec") else 0
        )
        self._stamp(stored)
        self.objects[key] = stored
        self.writes.append(("update", resource.kind, name))
        return copy.deepcopy(stored)

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        assert patch_type is PatchType.MERGE and isinstance(patch, Mapping), "the fake only merge-patches"
        live = self.get(resource, namespace, name)
        if live is None:
            raise ApiNotFound(f"{resource.kind} {namespace}/{name}", 404, "not found")
        return self.replace(resource, namespace, deep_merge(live, patch))

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        self.writes.append(("delete", resource.kind, name))
        return self.objects.pop(self._key(resource, namespace, name), None) is not None
