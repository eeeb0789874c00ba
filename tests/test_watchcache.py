"""The watch cache: reads come from memory once an object has been read, and are never staler than the watch.

Over real HTTP against the emulated API server (served from a thread), through :class:`CachedKubeApi` as the
operator uses it; a recorder counts the GETs that reach the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client
import pytest
from emulator import ThreadedEmulator
from operator_harness import deployment as user_deployment

from controller.kube.api import DEPLOYMENTS, VIRTUAL_SERVICES, ApiCall
from controller.kube.cached import CachedKubeApi
from controller.kube.client import KubeClient
from controller.kube.errors import ApiConflict
from controller.kube.watchcache import WatchCache

NS = "default"


def deployment(name: str) -> dict[str, Any]:
    return user_deployment(name, "app:1", replicas=1)


def eventually(what: str, check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Calls:
    def __init__(self) -> None:
        self.calls: list[ApiCall] = []

    def __call__(self, call: ApiCall) -> None:
        self.calls.append(call)

    def gets(self, plural: str) -> int:
        return sum(1 for call in self.calls if call.verb == "get" and call.resource == plural)


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def api(threaded_emulator: ThreadedEmulator, calls: Calls) -> Iterator[CachedKubeApi]:
    client = KubeClient.from_configuration(kubernetes.client.Configuration(host=threaded_emulator.url), recorder=calls)
    cached = CachedKubeApi.over(client, (NS,))
    yield cached
    cached.close()


def streaming(api: CachedKubeApi) -> Callable[[], bool]:
    """Whether the Deployment watch has started (the first read starts it)."""
    return lambda: any(scope.streaming for scope in api.cache._scopes.values())


def kept(threaded_emulator: ThreadedEmulator, api: CachedKubeApi, name: str) -> dict[str, Any]:
    """Create Deployment ``name`` and read it until the cache keeps it (the first read starts the watch)."""
    threaded_emulator.call(threaded_emulator.emulator.create_object, "apps/v1/deployments", deployment(name), NS)
    api.get(DEPLOYMENTS, NS, name)
    eventually("the watch", streaming(api))
    found = api.get(DEPLOYMENTS, NS, name)
    assert found is not None
    return found


def test_reads_after_the_first_are_served_from_memory(
    threaded_emulator: ThreadedEmulator, api: CachedKubeApi, calls: Calls
) -> None:
    kept(threaded_emulator, api, "web")
    before = calls.gets("deployments")
    for _ in range(20):
        assert api.get(DEPLOYMENTS, NS, "web")["spec"]["replicas"] == 1
    assert calls.gets("deployments") == before  # from memory only
    assert api.get(DEPLOYMENTS, NS, "absent") is None
    assert api.get(DEPLOYMENTS, NS, "absent") is None
    assert calls.gets("deployments") == before + 1  # "not found" is kept too


def test_a_change_made_by_someone_else_is_seen_without_a_get(
    threaded_emulator: ThreadedEmulator, api: CachedKubeApi, calls: Calls
) -> None:
    emulator = threaded_emulator.emulator
    kept(threaded_emulator, api, "web")
    gets = calls.gets("deployments")
    threaded_emulator.call(emulator.patch_object, "apps/v1/deployments", NS, "web", {"spec": {"replicas": 5}})
    eventually("the new replica count", lambda: api.get(DEPLOYMENTS, NS, "web")["spec"]["replicas"] == 5)
    threaded_emulator.call(emulator.create_object, "apps/v1/deployments", deployment("late"), NS)
    assert api.get(DEPLOYMENTS, NS, "late") is not None  # first read of it: a GET
    threaded_emulator.call(emulator.delete_object, "apps/v1/deployments", NS, "web")
    eventually("the deletion", lambda: api.get(DEPLOYMENTS, NS, "web") is None)
    assert calls.gets("deployments") == gets + 1


def test_own_writes_are_read_back_at_once_and_a_conflict_forgets_the_object(
    threaded_emulator: ThreadedEmulator, api: CachedKubeApi, calls: Calls
) -> None:
    live = kept(threaded_emulator, api, "web")
    live["spec"]["replicas"] = 3
    written = api.replace(DEPLOYMENTS, NS, live)
    assert api.get(DEPLOYMENTS, NS, "web")["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]

    stale = dict(live)  # still carries the old resourceVersion
    with pytest.raises(ApiConflict):
        api.replace(DEPLOYMENTS, NS, stale)
    gets = calls.gets("deployments")
    assert api.get(DEPLOYMENTS, NS, "web")["spec"]["replicas"] == 3
    assert calls.gets("deployments") == gets + 1  # forgotten after the conflict: re-read from the server


def test_objects_nobody_asked_for_are_not_kept(threaded_emulator: ThreadedEmulator, api: CachedKubeApi) -> None:
    emulator = threaded_emulator.emulator
    kept(threaded_emulator, api, "app-0")
    for index in range(1, 5):
        threaded_emulator.call(emulator.create_object, "apps/v1/deployments", deployment(f"app-{index}"), NS)
    for index in range(5):
        threaded_emulator.call(
            emulator.patch_object, "apps/v1/deployments", NS, f"app-{index}", {"spec": {"replicas": 2}}
        )
    eventually("the change to app-0", lambda: api.get(DEPLOYMENTS, NS, "app-0")["spec"]["replicas"] == 2)
    assert api.cache.kept() == 1


def test_a_resource_the_server_does_not_serve_is_read_through(
    threaded_emulator: ThreadedEmulator, calls: Calls
) -> None:
    """Istio not installed: the watch cannot start, every read is a plain GET answering "not found"."""
    client = KubeClient.from_configuration(kubernetes.client.Configuration(host=threaded_emulator.url), recorder=calls)
    missing = VIRTUAL_SERVICES.__class__("networking.example.io", "v1", "routes", "Route")
    cache = WatchCache(client, (missing,), (NS,))
    try:
        for _ in range(3):
            assert cache.get(missing, NS, "web") is None
        assert calls.gets("routes") == 3
    finally:
        cache.stop()
        client.close()


def test_stop_ends_the_watches_promptly(threaded_emulator: ThreadedEmulator, api: CachedKubeApi) -> None:
    api.get(DEPLOYMENTS, NS, "web")
    eventually("the watch", streaming(api))
    threads = [scope.thread for scope in api.cache._scopes.values() if scope.thread is not None]
    started = time.monotonic()
    api.cache.stop()
    assert all(not thread.is_alive() for thread in threads)
    assert time.monotonic() - started < 2.0
