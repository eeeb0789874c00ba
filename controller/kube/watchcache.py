"""Reads served from memory and kept current by watches (an informer), so a tick costs no GETs.

Every tick reads the target and primary Deployments and the VirtualService; every weight change also compares the
DestinationRules and re-reads the VirtualService. With thousands of Canaries those GETs dominate the operator's CPU
and the API server's load, although the objects rarely change. :class:`WatchCache` keeps the objects the operator
has asked for in memory and follows them with one watch per (resource, namespace) — per namespace the operator
watches, or one cluster-wide — like client-go's informers do for Go controllers.

What keeps it correct:

- **Only what was asked for is kept.** The first read of an object is a GET, whose answer is kept and from then on
  updated by the watch (events for objects nobody asked about are dropped), so memory grows with the Canaries,
  not with the cluster.
- **Never older than the watch.** The watch starts from the version of a list made before any answer is kept, and
  every change is applied only if its ``resourceVersion`` is newer than the kept one (versions are compared as
  numbers, which is what every real API server's are), so a late event never overwrites a newer answer.
- **A broken watch is not trusted.** While a scope's watch is not streaming (starting, reconnecting, or the
  resource does not exist, e.g. Istio not installed), reads go to the API server. A watch whose version has
  expired (410 Gone) forgets everything it kept and starts over.
- **Writes go through.** The operator's own writes are offered back (:meth:`WatchCache.offer`) so the next read
  sees them even before their watch event arrives; a conflicting write forgets the object
  (:meth:`WatchCache.forget`), so the retry re-reads it from the API server.

Answers are stored as JSON text and decoded on every read: callers get their own dicts to change, and compact
text costs less memory than nested dicts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.kube.api import Object, Resource
from controller.kube.errors import ApiError, ApiNotFound, KubeError
from controller.providers import jsonwire

log = logging.getLogger("coalmine.watchcache")

Key = tuple[str, str]
"""(namespace, name)"""


class Stream(Protocol):
    """One watch answer: parsed events; ``close`` ends it from another thread."""

    def __iter__(self) -> Any: ...

    def close(self) -> None: ...


class Watcher(Protocol):
    """What the cache needs from a client (:class:`~controller.kube.client.KubeClient` has it)."""

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None: ...

    def list_version(self, resource: Resource, namespace: str) -> str: ...

    def watch(
        self, resource: Resource, namespace: str, resource_version: str, *, timeout_s: float = 240.0
    ) -> Stream: ...


def _version(obj: Mapping[str, Any]) -> int | None:
    """The object's ``resourceVersion`` as a number (None if it has none or it is not a number)."""
    text = str((obj.get("metadata") or {}).get("resourceVersion") or "")
    return int(text) if text.isdigit() else None


def _newer(candidate: int | None, kept: int | None) -> bool:
    """Whether a change at version ``candidate`` replaces what is kept at ``kept`` (unknown versions always do)."""
    return candidate is None or kept is None or candidate >= kept


@dataclass
class _Entry:
    version: int | None
    text: bytes | None  # the object as JSON (compact, and not tracked by the garbage collector); None: absent

    def value(self) -> Object | None:
        return None if self.text is None else dict(jsonwire.loads(self.text))


def _entry(obj: Mapping[str, Any] | None, version: int | None = None) -> _Entry:
    if obj is None:
        return _Entry(version, None)
    return _Entry(_version(obj), jsonwire.dumps(obj))


@dataclass
class _Scope:
    """One watch: ``resource`` in ``namespace`` ("" for every namespace) and what it keeps."""

    resource: Resource
    namespace: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: dict[Key, _Entry] = field(default_factory=dict)
    wanted: set[Key] = field(default_factory=set)
    streaming: bool = False
    epoch: int = 0  # bumped whenever everything kept is forgotten, so a GET in flight does not store stale data
    stream: Stream | None = None
    thread: threading.Thread | None = None

    def keep(self, key: Key, entry: _Entry) -> None:
        """Keep ``entry`` unless something newer is kept (call with the lock held)."""
        kept = self.entries.get(key)
        if kept is None or _newer(entry.version, kept.version):
            self.entries[key] = entry

    def reset(self) -> None:
        with self.lock:
            self.streaming = False
            self.entries.clear()
            self.wanted.clear()
            self.epoch += 1


class WatchCache:
    """Objects of ``resources`` in ``namespaces`` (empty: cluster-wide), read through watches (see module doc).

    Watches start lazily, on the first read in their scope, each in a daemon thread; :meth:`stop` ends them.
    """

    def __init__(
        self,
        client: Watcher,
        resources: Iterable[Resource],
        namespaces: Iterable[str] = (),
        *,
        watch_timeout_s: float = 240.0,
        retry_s: float = 1.0,
    ) -> None:
        self._client = client
        self._resources = frozenset(resources)
        self._namespaces = frozenset(namespaces)
        self._watch_timeout_s = watch_timeout_s
        self._retry_s = retry_s
        self._scopes: dict[tuple[Resource, str], _Scope] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    # -- reading and writing -----------------------------------------------------------------------------------

    def covers(self, resource: Resource, namespace: str) -> bool:
        """Whether reads of ``resource`` in ``namespace`` go through this cache."""
        return resource in self._resources and (not self._namespaces or namespace in self._namespaces)

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        """The object (None if it does not exist): from memory when its watch is streaming, else a GET."""
        scope = self._scope(resource, namespace)
        key = (namespace, name)
        with scope.lock:
            streaming, epoch = scope.streaming, scope.epoch
            kept = scope.entries.get(key) if streaming else None
            if kept is not None:
                return kept.value()
            if streaming:
                scope.wanted.add(key)  # before the GET: a change made meanwhile is kept by the watch
        found = self._client.get(resource, namespace, name)
        if streaming:
            with scope.lock:
                if scope.epoch == epoch and scope.streaming:
                    scope.keep(key, _entry(found, version=0 if found is None else None))
        return found

    def offer(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        """An object as the API server answered a write: keep it if it is newer than what is kept."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if not name or not self.covers(resource, namespace):
            return
        scope = self._scope(resource, namespace)
        with scope.lock:
            if scope.streaming:
                scope.wanted.add((namespace, name))
                scope.keep((namespace, name), _entry(obj))

    def forget(self, resource: Resource, namespace: str, name: str) -> None:
        """Drop one kept object (after a conflicting write): the next read asks the API server."""
        if not self.covers(resource, namespace):
            return
        scope = self._scope(resource, namespace)
        with scope.lock:
            scope.entries.pop((namespace, name), None)

    def stop(self) -> None:
        """End every watch; the threads exit when their stream closes."""
        self._stopped.set()
        with self._lock:
            scopes = list(self._scopes.values())
        for scope in scopes:
            stream = scope.stream
            if stream is not None:
                stream.close()
        for scope in scopes:
            if scope.thread is not None:
                scope.thread.join(timeout=2.0)

    def kept(self) -> int:
        """How many objects are kept in memory (for tests and the scale benchmark)."""
        with self._lock:
            scopes = list(self._scopes.values())
        return sum(len(scope.entries) for scope in scopes)

    # -- watching ----------------------------------------------------------------------------------------------

    def _scope(self, resource: Resource, namespace: str) -> _Scope:
        where = "" if not self._namespaces else namespace
        with self._lock:
            scope = self._scopes.get((resource, where))
            if scope is None:
                scope = self._scopes[(resource, where)] = _Scope(resource, where)
                if not self._stopped.is_set():
                    scope.thread = threading.Thread(
                        target=self._follow,
                        args=(scope,),
                        name=f"coalmine-watch-{resource.plural}-{where or 'all'}",
                        daemon=True,
                    )
                    scope.thread.start()
            return scope

    def _follow(self, scope: _Scope) -> None:
        """List for a start version, then watch from it; reconnect from the last version seen, forever."""
        version = ""
        while not self._stopped.is_set():
            try:
                if not version:
                    scope.reset()
                    version = self._client.list_version(scope.resource, scope.namespace)
                version = self._watch(scope, version)
            except ApiNotFound:
                log.debug("%s: not served by this API server; reading through", scope.resource.kind)
                version = ""
                self._stopped.wait(max(self._retry_s, 30.0))
            except KubeError as error:
                log.debug("watch of %s in %r: %s; reconnecting", scope.resource.kind, scope.namespace, error)
                self._stopped.wait(self._retry_s)
            except Exception:  # a bug here must not end the watch for good: reads go to the API meanwhile
                log.exception("watch of %s in %r failed; starting over", scope.resource.kind, scope.namespace)
                version = ""
                self._stopped.wait(self._retry_s)
            finally:
                with scope.lock:
                    scope.streaming = False
                    scope.stream = None

    def _watch(self, scope: _Scope, version: str) -> str:
        """Follow one watch answer; return the version to resume from ("" after 410 Gone: list again)."""
        stream = self._client.watch(scope.resource, scope.namespace, version, timeout_s=self._watch_timeout_s)
        with scope.lock:
            scope.stream, scope.streaming = stream, True
        if self._stopped.is_set():
            stream.close()
        for event in stream:
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                if int(obj.get("code") or 0) == 410:
                    return ""
                raise ApiError(f"a watch of {scope.resource.kind}", int(obj.get("code") or 0), str(obj))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind == "BOOKMARK":
                continue
            meta = obj.get("metadata") or {}
            key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
            with scope.lock:
                if key not in scope.wanted:
                    continue
                if kind == "DELETED":
                    scope.keep(key, _Entry(_version(obj), None))
                else:
                    scope.keep(key, _entry(obj))
        return version
