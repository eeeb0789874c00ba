"""Converging a live object on a desired one through any :class:`~controller.kube.api.KubeApi`: merge rules that
keep what the API server and other tools own, no-op detection, and re-read-and-re-apply on ``409 Conflict``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.kube.api import KubeApi, Merge, Object, Resource
from controller.kube.errors import ApiConflict


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> Object:
    """Merge ``overlay`` into a copy of ``base``: mappings recursively, everything else (lists too) replaced.

    Used so fields the API server filled in (``clusterIP``, defaulted container fields) survive an update and an
    unchanged desired object compares equal to the live one — which is what keeps reconciles write-free.
    """
    merged: Object = dict(base)
    for key, value in overlay.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def merge_desired(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """The default update: desired labels/annotations on top of live metadata, other fields deep-merged.

    Labels and annotations that other tools added are kept; ``status`` is never sent back. Owner references are
    only ever set when an object is created: updating a user's pre-existing object (say their own ``<svc>``
    Service) must not make it garbage-collectable with the Canary.
    """
    metadata = dict(existing.get("metadata") or {})
    want = desired.get("metadata") or {}
    for key in ("labels", "annotations"):
        if want.get(key):
            metadata[key] = {**(metadata.get(key) or {}), **want[key]}
    body = {k: v for k, v in existing.items() if k not in ("metadata", "status")}
    body = deep_merge(body, {k: v for k, v in desired.items() if k not in ("metadata", "status")})
    body["metadata"] = metadata
    return body


def _comparable(obj: Mapping[str, Any]) -> Object:
    return {k: v for k, v in obj.items() if k != "status"}


def create_or_update(
    api: KubeApi,
    resource: Resource,
    namespace: str,
    desired: Mapping[str, Any],
    merge: Merge = merge_desired,
    attempts: int = 5,
) -> Object:
    """Make the live object match ``desired``; return the live object afterwards.

    Absent → create (an ``AlreadyExists`` race re-reads). Present → ``merge(live, desired)``; when that equals the
    live object nothing is written, otherwise it is replaced with the live ``resourceVersion`` and a 409 (someone
    wrote in between) re-reads and re-applies, up to ``attempts`` times.
    """
    name = str(desired["metadata"]["name"])
    last: ApiConflict | None = None
    for _ in range(max(1, attempts)):
        live = api.get(resource, namespace, name)
        try:
            if live is None:
                return api.create(resource, namespace, desired)
            updated = merge(live, desired)
            if _comparable(updated) == _comparable(live):
                return live
            updated.setdefault("metadata", {})["resourceVersion"] = live["metadata"].get("resourceVersion")
            return api.replace(resource, namespace, updated)
        except ApiConflict as conflict:
            last = conflict
    assert last is not None
    raise ApiConflict(last.what, 409, f"still conflicting after {attempts} attempts: {last.reason}")


def update_with_retry(
    api: KubeApi,
    resource: Resource,
    namespace: str,
    name: str,
    mutate: Callable[[Object], Object],
    attempts: int = 5,
) -> Object | None:
    """Read, ``mutate`` a copy, write back with the read ``resourceVersion``; on 409 re-read and re-apply.

    Returns ``None`` if the object does not exist (nothing is created), the live object if ``mutate`` changed
    nothing (no write), else the written object. ``mutate`` must be a function of the live object only.
    """
    last: ApiConflict | None = None
    for _ in range(max(1, attempts)):
        live = api.get(resource, namespace, name)
        if live is None:
            return None
        updated = mutate(live)
        if _comparable(updated) == _comparable(live):
            return live
        updated.setdefault("metadata", {})["resourceVersion"] = live["metadata"].get("resourceVersion")
        try:
            return api.replace(resource, namespace, updated)
        except ApiConflict as conflict:
            last = conflict
    assert last is not None
    raise ApiConflict(last.what, 409, f"still conflicting after {attempts} attempts: {last.reason}")
