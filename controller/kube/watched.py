"""A :class:`~controller.kube.api.KubeApi` whose reads of a few resources come from memory kept current by kopf's
own watches, so a tick costs no GETs.

Every tick reads the target and primary Deployments and the VirtualService; every weight change also compares the
DestinationRules. With thousands of Canaries those GETs would dominate the operator's CPU and the API server's load,
although the objects rarely change. The operator therefore registers ``@kopf.on.event`` handlers for these
resources (:mod:`controller.handlers.watched`): kopf watches them on its event loop, in the namespaces it serves,
with its own reconnects, and hands every change to :meth:`WatchedKubeApi.observe`. No watch thread of our own.

What keeps it correct:

- **Only what was asked for is kept.** The first read of an object is a GET, whose answer is kept and from then on
  updated by the watch (events for objects nobody asked about are dropped), so memory grows with the Canaries,
  not with the cluster.
- **Never older than the watch.** A change is kept only if its ``resourceVersion`` is not older than the kept one
  (compared as numbers, which every real API server's are), so a late GET answer never overwrites a newer event.
- **A resource nobody has seen an event of is read through.** Until kopf has delivered an event of a resource
  (its watch is not running: the resource is not served, e.g. Istio is not installed, or kopf has not listed it
  yet), reads go to the API server and nothing is kept.
- **Nothing is trusted forever.** kopf resumes a broken watch from its last version, but after a 410 it lists
  again and never reports what was deleted meanwhile; so an object neither changed nor read for ``max_age_s`` is
  read again (at 2,000 Canaries and 5 minutes, about 20 GETs a second).
- **Writes go through.** The operator's own writes are kept from their answers, so the next read sees them even
  before their watch event arrives; a conflicting write, or one that finds the object gone, forgets it, so the
  retry re-reads it from the API server.

Reads run in the operator's worker threads and :meth:`observe` on the event loop, so the store is guarded by one
lock, never held across I/O. Objects are kept as compact JSON and decoded on every read: callers get their own dicts
to change, and compact bytes cost less memory than nested dicts and are not tracked by the garbage collector.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from controller.kube.api import DEPLOYMENTS, DESTINATION_RULES, VIRTUAL_SERVICES, KubeApi, Object, PatchType, Resource
from controller.kube.errors import ApiConflict, ApiNotFound

WATCHED_RESOURCES = (DEPLOYMENTS, VIRTUAL_SERVICES, DESTINATION_RULES)
"""What every tick reads: the target and primary Deployments, the VirtualService, and (on a weight change) the
DestinationRules. Secrets are deliberately not among them (watching them needs read access to every Secret)."""

MAX_AGE_S = 300.0

Key = tuple[Resource, str, str]
"""(resource, namespace, name)"""


def _version(obj: Mapping[str, Any]) -> int | None:
    """The object's ``resourceVersion`` as a number (None if it has none or it is not a number)."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


@dataclass
class _Entry:
    version: int | None
    text: bytes | None  # the object as JSON; None: it does not exist
    seen: float  # when a watch event or a read last confirmed it (monotonic clock)
    reading: bool = False  # a placeholder while a GET is in flight: an event arriving meanwhile replaces it

    def value(self) -> Object | None:
        return None if self.text is None else dict(orjson.loads(self.text))


class WatchedKubeApi:
    """:class:`KubeApi` over ``client``; gets of ``resources`` in ``namespaces`` (empty: all) come from memory."""

    def __init__(
        self,
        client: KubeApi,
        resources: Iterable[Resource] = WATCHED_RESOURCES,
        namespaces: Sequence[str] = (),
        *,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.resources = frozenset(resources)
        self._namespaces = frozenset(namespaces)
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Key, _Entry] = {}
        self._live: set[Resource] = set()

    # -- fed by kopf's watches ---------------------------------------------------------------------------------

    def observe(self, resource: Resource, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """One watch event (kopf's ``event``: type None for its initial listing, ADDED, MODIFIED or DELETED)."""
        meta = obj.get("metadata") or {}
        key = (resource, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        with self._lock:
            self._live.add(resource)
            kept = self._entries.get(key)
            if kept is None:
                return  # nobody asked for it
            version = _version(obj)
            if version is not None and kept.version is not None and version < kept.version:
                return
            text = None if event_type == "DELETED" else orjson.dumps(obj)
            self._entries[key] = _Entry(version, text, self._clock())

    def covers(self, resource: Resource, namespace: str) -> bool:
        """Whether reads of ``resource`` in ``namespace`` are served from memory once its watch delivers."""
        return resource in self.resources and (not self._namespaces or namespace in self._namespaces)

    def kept(self) -> int:
        """How many objects are kept (for tests and the scale benchmark)."""
        with self._lock:
            return len(self._entries)

    # -- KubeApi -----------------------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        if not self.covers(resource, namespace):
            return self.client.get(resource, namespace, name)
        key = (resource, namespace, name)
        with self._lock:
            live = resource in self._live
            kept = self._entries.get(key) if live else None
            if kept is not None and self._clock() - kept.seen < self._max_age_s:
                return kept.value()
            if live:  # before the GET: a change made meanwhile is kept by the watch
                self._entries[key] = _Entry(None, None, float("-inf"), reading=True)
        found = self.client.get(resource, namespace, name)
        if live:
            self._keep(key, found, read=True)
        return found

    def list(self, resource: Resource, namespace: str, label_selector: str | None = None) -> list[Object]:
        return self.client.list(resource, namespace, label_selector)

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        name = str((body.get("metadata") or {}).get("name", ""))
        return self._written(resource, namespace, name, lambda: self.client.create(resource, namespace, body))

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        name = str(body["metadata"]["name"])
        return self._written(resource, namespace, name, lambda: self.client.replace(resource, namespace, body))

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Object:
        return self._written(
            resource,
            namespace,
            name,
            lambda: self.client.patch(resource, namespace, name, patch, patch_type, subresource),
        )

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        try:
            return self.client.delete(resource, namespace, name)
        finally:
            self._forget((resource, namespace, name))

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()

    # -- bookkeeping -------------------------------------------------------------------------------------------

    def _keep(self, key: Key, obj: Mapping[str, Any] | None, *, read: bool = False) -> None:
        """Keep a read's or a write's answer unless something newer is kept already.

        A GET's answer loses to a watch event that arrived while it was in flight when the two cannot be ordered
        (the GET found nothing, or either has no version): the event is the later news.
        """
        version = None if obj is None else _version(obj)
        with self._lock:
            kept = self._entries.get(key)
            if kept is not None and not kept.reading:
                if version is not None and kept.version is not None:
                    if version < kept.version:
                        return
                elif read:
                    return
            self._entries[key] = _Entry(version, None if obj is None else orjson.dumps(obj), self._clock())

    def _forget(self, key: Key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _written(self, resource: Resource, namespace: str, name: str, write: Callable[[], Object]) -> Object:
        key = (resource, namespace, name)
        try:
            answer = write()
        except (ApiConflict, ApiNotFound):
            self._forget(key)
            raise
        if self.covers(resource, namespace) and resource in self._live and name:
            self._keep(key, answer)
        return answer
