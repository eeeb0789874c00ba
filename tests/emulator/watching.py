"""Watch streams: who watches what, the bounded event log they resume from, and the streaming loop.

Registration happens in the same event-loop step that computes a new watch's backlog (the current objects, or
the log since its ``resourceVersion``), and the store publishes synchronously, so no event can fall between a
list and the watch that follows it — the guarantee kopf and the official client's informers rely on.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web

from .objects import ApiError
from .resources import ResourceSpec
from .selectors import Requirement, fields_match, labels_match

_LogEntry = tuple[int, str, dict[str, Any], dict[str, Any] | None]


def present(spec: ResourceSpec, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as served at the requested version (versions share storage; apiVersion follows the URL)."""
    obj = spec.from_storage(obj) if spec.from_storage is not None else obj  # another resource's, converted
    return {**obj, "apiVersion": spec.api_version, "kind": spec.kind}


@dataclass(eq=False)
class Watch:
    """One open watch stream: what it selects, and the queue the store's events are offered to."""

    spec: ResourceSpec
    namespace: str | None
    name: str | None
    labels: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def selects(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        return (
            (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta.get("name") == self.name)
            and labels_match(self.labels, obj)
            and fields_match(self.fields, obj)
        )

    def event(self, kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any] | None:
        """Translate a store event for this watcher (a label change can turn MODIFIED into ADDED/DELETED)."""
        now, before = self.selects(new), self.selects(old)
        if kind == "MODIFIED" and now != before:
            kind = "ADDED" if now else "DELETED"
        elif not (now or (kind == "DELETED" and before)):
            return None
        return {"type": kind, "object": present(self.spec, new)}


class WatchHub:
    """Open watches per resource and the per-resource event log (``event_log_limit`` entries each)."""

    def __init__(self, *, event_log_limit: int) -> None:
        self.event_log_limit = event_log_limit
        self._watches: set[Watch] = set()
        self._logs: dict[str, collections.deque[_LogEntry]] = {}
        self._floors: dict[str, int] = {}  # the newest resourceVersion evicted from a log: older ones are Gone

    def watching(self, storage_key: str) -> bool:
        return any(w.spec.storage_key == storage_key for w in self._watches)

    def watched(self) -> set[str]:
        return {w.spec.key for w in self._watches}

    def close_all(self) -> None:
        for watch in self._watches:
            watch.queue.put_nowait(None)

    def publish(self, spec: ResourceSpec, kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        key = spec.storage_key
        log = self._logs.setdefault(key, collections.deque(maxlen=self.event_log_limit))
        if len(log) == log.maxlen:
            self._floors[key] = log[0][0]
        log.append((int(new["metadata"]["resourceVersion"]), kind, new, old))
        for watch in self._watches:
            if watch.spec.storage_key == key and (event := watch.event(kind, new, old)) is not None:
                watch.queue.put_nowait(event)

    def open(
        self,
        watch: Watch,
        since: str | None,
        current: Iterable[dict[str, Any]] | None,
        initial: bool,
        resource_version: int,
    ) -> list[dict[str, Any]]:
        """Register ``watch`` and return what it starts with: ``current`` objects, or the log since ``since``."""
        self._watches.add(watch)
        if current is not None:
            events = [{"type": "ADDED", "object": present(watch.spec, obj)} for obj in current if watch.selects(obj)]
            if initial:
                bookmark = {
                    "kind": watch.spec.kind,
                    "apiVersion": watch.spec.api_version,
                    "metadata": {
                        "resourceVersion": str(resource_version),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                events.append({"type": "BOOKMARK", "object": bookmark})
            return events
        key, version = watch.spec.storage_key, int(since or 0)
        if version < self._floors.get(key, 0):
            gone = ApiError(410, "Expired", f"too old resource version: {version} ({self._floors[key]})").status()
            return [{"type": "ERROR", "object": gone}]
        replay = (watch.event(kind, new, old) for rv, kind, new, old in self._logs.get(key, ()) if rv > version)
        return [event for event in replay if event is not None]

    async def stream(
        self,
        watch: Watch,
        backlog: list[dict[str, Any]],
        timeout_seconds: str | None,
        raw_request: aiohttp.web.BaseRequest | None,
    ) -> AsyncIterator[Any]:
        """The response body: headers at once, the backlog, then live events until timeout, close or hang-up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout_seconds) if timeout_seconds else None
        try:
            yield b""  # send the headers now: a client waits for them before it reads events
            for event in backlog:
                yield event
                if event["type"] == "ERROR":
                    return
            while deadline is None or loop.time() < deadline:
                wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
                try:
                    live = await asyncio.wait_for(watch.queue.get(), timeout=max(wait, 0.0))
                except TimeoutError:
                    transport = raw_request.transport if raw_request is not None else None
                    if transport is None or transport.is_closing():
                        return  # the client went away
                    continue
                if live is None:
                    return
                yield live
        finally:
            self._watches.discard(watch)


async def as_tables(
    stream: AsyncIterator[Any], render: Callable[..., dict[str, Any]], include: str
) -> AsyncIterator[Any]:
    """Watch events as ``kubectl get -w`` asks for them: each object a one-row Table, column definitions only in
    the first (``render(objs, metadata, include, headers=…)``, e.g. a partial :func:`.tables.table`)."""
    first = True
    async for event in stream:
        if isinstance(event, dict) and event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
            obj = event["object"]
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion")}
            event = {"type": event["type"], "object": render([obj], meta, include, headers=first)}
            first = False
        yield event
