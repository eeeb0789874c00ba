"""Live updates: Kubernetes watches (the user's own credentials) feeding the page's Server-Sent Events.

One thread per watched resource (Canaries, BlueGreens, ``events.k8s.io`` Events) streams ``?watch=true`` from the
last ``resourceVersion`` it saw, through the official client's connection pool (so its TLS, proxy and token
settings apply). Each event becomes a small *change* notice ``{kind, namespace, name}`` that :class:`Hub` hands to
every open page; the page re-reads the JSON it shows, so what it draws always comes from the same read path as the
plugin. Rollout objects seen on a watch also become points of the evidence timeline (:func:`views.sample`).

A user who may ``list`` but not ``watch`` (or an API that breaks watches) still gets live pages: the rollout kinds
fall back to listing every ``poll_s`` and comparing ``resourceVersion``\\ s — a bounded poll, said in ``mode``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes.client import ApiClient, Configuration

from controller.cli.dashboard.views import sample
from controller.cli.kubectl.access import BLUEGREENS, Cluster, PluginError, list_rollouts
from controller.kube.api import CANARIES, EVENTS, Resource

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # kind, namespace, name
TIMELINE_POINTS = 720
"""Points kept per rollout: an hour of one change every five seconds, a few hundred kB for the page at most."""
WATCH_TIMEOUT_S = 30


class Hub:
    """Change notices for the open pages, and the evidence timeline of every rollout the watches have seen."""

    def __init__(self, *, history: int = 1000) -> None:
        self._cond = threading.Condition()
        self._seq = 0
        self._changes: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=history)
        self._timelines: dict[Key, collections.deque[dict[str, Any]]] = {}
        self._stopped = False
        self.mode: dict[str, str] = {}

    def publish(self, change: Mapping[str, Any]) -> None:
        with self._cond:
            self._seq += 1
            self._changes.append((self._seq, dict(change)))
            self._cond.notify_all()

    def observe(self, obj: Mapping[str, Any], kind: str, at: float | None = None) -> None:
        """Add a timeline point for a rollout object, unless nothing the chart draws has changed."""
        meta = obj.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        point = sample({"kind": kind, **obj}, time.time() if at is None else at)
        with self._cond:
            points = self._timelines.setdefault(key, collections.deque(maxlen=TIMELINE_POINTS))
            if points and {**points[-1], "t": 0} == {**point, "t": 0}:
                return
            points.append(point)

    def timeline(self, kind: str, namespace: str, name: str) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._timelines.get((kind, namespace, name), ()))

    @property
    def seq(self) -> int:
        with self._cond:
            return self._seq

    def wait(self, after: int, timeout_s: float) -> tuple[int, list[dict[str, Any]]]:
        """Changes published after ``after`` (waiting up to ``timeout_s`` for one), and the new position."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._stopped, timeout=timeout_s)
            return self._seq, [change for seq, change in self._changes if seq > after]

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped


class Watchers:
    """The watch threads for one dashboard: the rollout kinds and Events in ``namespace`` (all when None)."""

    def __init__(self, cluster: Cluster, namespace: str | None, hub: Hub, *, poll_s: float = 2.0) -> None:
        if cluster.configuration is None:
            raise PluginError("the dashboard needs a kubeconfig-loaded cluster connection to watch")
        self.cluster, self.namespace, self.hub, self.poll_s = cluster, namespace, hub, poll_s
        self._configuration: Configuration = cluster.configuration
        self._api = ApiClient(self._configuration)
        self._threads: list[threading.Thread] = []
        self._responses: set[Any] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        for resource in (CANARIES, BLUEGREENS, EVENTS):
            thread = threading.Thread(
                target=self._run, args=(resource,), name=f"dashboard-watch-{resource.plural}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self.hub.stop()
        with self._lock:
            for response in list(self._responses):
                _interrupt(response)
        for thread in self._threads:
            thread.join(timeout=5)
        self._api.close()  # type: ignore[no-untyped-call]

    # -- one resource ------------------------------------------------------------------------------------------

    def _run(self, resource: Resource) -> None:
        version = ""
        failures = 0
        while not self.hub.stopped:
            try:
                version = self._watch(resource, version)
                failures = 0
            except _Gone:
                version = ""  # too old to resume: start again from the current state
            except _Refused as exc:
                if exc.status == 404 and resource is not CANARIES:
                    self.hub.mode[resource.plural] = "not served"
                    return  # no BlueGreen CRD, or no events.k8s.io: nothing to watch
                if resource is EVENTS:
                    self.hub.mode[resource.plural] = f"off ({exc})"
                    return  # Events are context: the page re-reads them with each rollout change
                self.hub.mode[resource.plural] = f"polling every {self.poll_s:g}s ({exc})"
                self._poll(resource)
                return
            except Exception as exc:  # a broken connection: back off and resume
                failures += 1
                if self.hub.stopped:
                    return
                log.debug("watch of %s broke: %s", resource.plural, exc)
                time.sleep(min(5.0, 0.2 * 2**failures))

    def _watch(self, resource: Resource, version: str) -> str:
        """Stream one watch request; returns the last ``resourceVersion`` seen, for the next one to resume from."""
        query = {"watch": "true", "timeoutSeconds": str(WATCH_TIMEOUT_S), "allowWatchBookmarks": "true"}
        if version:
            query["resourceVersion"] = version
        path = resource.path(self.namespace or None, None, None) + "?" + urlencode(query)
        for event in self._stream(path, lambda: self.hub.mode.__setitem__(resource.plural, "watching")):
            kind, obj = str(event.get("type")), event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                if code == 410:
                    raise _Gone()
                raise _Refused(code, str(obj.get("message") or obj.get("reason") or "watch error"))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind != "BOOKMARK":
                self._notice(resource, kind, obj)
        return version

    def _stream(self, path: str, opened: Callable[[], None]) -> Iterator[dict[str, Any]]:
        configuration = self._configuration
        headers = {**self._api.default_headers, "Accept": "application/json"}
        token = configuration.get_api_key_with_prefix("BearerToken")
        if token:
            headers["authorization"] = token
        timeout = urllib3.Timeout(connect=10.0, read=WATCH_TIMEOUT_S + 15.0)
        response = self._api.rest_client.pool_manager.request(
            "GET", configuration.host.rstrip("/") + path, headers=headers, timeout=timeout, preload_content=False
        )
        with self._lock:
            self._responses.add(response)
        try:
            if response.status >= 300:
                raise _Refused(int(response.status), _status_message(response.data))
            opened()
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            with self._lock:
                self._responses.discard(response)
            response.close()  # never back into the pool: a watch's connection is not reused

    def _notice(self, resource: Resource, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if resource is EVENTS:
            regarding = obj.get("regarding") or {}
            change = {
                "type": "event",
                "kind": str(regarding.get("kind") or ""),
                "namespace": str(meta.get("namespace") or ""),
                "name": str(regarding.get("name") or ""),
            }
        else:
            if kind != "DELETED":
                self.hub.observe(obj, resource.kind)
            change = {
                "type": kind.lower(),
                "kind": resource.kind,
                "namespace": str(meta.get("namespace") or ""),
                "name": str(meta.get("name") or ""),
            }
        self.hub.publish(change)

    def _poll(self, resource: Resource) -> None:
        """The bounded poll for a user who may not watch: list every ``poll_s``, publish what changed."""
        seen: dict[Key, str] = {}
        first = True
        while not self.hub.stopped:
            try:
                objects = [o for o in list_rollouts(self.cluster, self.namespace) if o.get("kind") == resource.kind]
            except PluginError as exc:
                self.hub.mode[resource.plural] = f"off ({exc})"
                return
            now = {_key(o): str(o["metadata"].get("resourceVersion") or "") for o in objects}
            for obj in objects:
                key = _key(obj)
                if seen.get(key) != now[key]:
                    self.hub.observe(obj, resource.kind)
                    if not first:
                        self.hub.publish({"type": "modified", "kind": key[0], "namespace": key[1], "name": key[2]})
            for key in set(seen) - set(now):
                self.hub.publish({"type": "deleted", "kind": key[0], "namespace": key[1], "name": key[2]})
            seen, first = now, False
            _sleep_unless(self.hub, self.poll_s)


class _Gone(Exception):
    """The watch's ``resourceVersion`` is too old (410): list afresh."""


class _Refused(Exception):
    """The API server refused the watch (403 without the ``watch`` verb, 404 without the resource)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _interrupt(response: Any) -> None:
    """End a watch another thread is blocked reading: shutting the socket down wakes its ``recv`` (a plain close
    does not), so stopping the dashboard does not wait for a quiet watch's timeout."""
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


def _status_message(body: bytes | None) -> str:
    try:
        return str(json.loads(body or b"{}").get("message") or "")
    except (ValueError, AttributeError):
        return ""


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _sleep_unless(hub: Hub, seconds: float, tick: Callable[[float], None] = time.sleep) -> None:
    deadline = time.monotonic() + seconds
    while not hub.stopped and time.monotonic() < deadline:
        tick(min(0.2, max(0.0, deadline - time.monotonic())))
