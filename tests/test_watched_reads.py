"""Reads served from memory kept current by kopf's watches (controller.kube.watched): never staler than the watch.

The unit tests drive :meth:`WatchedKubeApi.observe` by hand over a counting in-memory client; the last test runs the
real operator (kopf, our handlers) against the emulated API server and shows a change someone else makes reaches
the operator's memory through kopf's watch, without a GET.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import canary, deployment, new_image, operator, test_config, wait_phase

from controller.kube.api import DEPLOYMENTS, SERVICES, VIRTUAL_SERVICES, ApiCall, Object, PatchType, Resource
from controller.kube.errors import ApiConflict
from controller.kube.watched import WatchedKubeApi

NS = "default"


class CountingClient:
    """An in-memory API server with resourceVersions and conflicts, counting the GETs that reach it."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Object] = {}
        self.version = 0
        self.gets = 0

    def put(self, resource: Resource, obj: Mapping[str, Any]) -> Object:
        self.version += 1
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(resource.plural, stored["metadata"].get("namespace", NS), stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        self.gets += 1
        found = self.objects.get((resource.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, resource: Resource, namespace: str, label_selector: str | None = None) -> list[Object]:
        return [copy.deepcopy(obj) for key, obj in self.objects.items() if key[0] == resource.plural]

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        return self.put(resource, body)

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        name = body["metadata"]["name"]
        stored = self.objects[(resource.plural, namespace, name)]
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise ApiConflict(f"{resource.kind} {namespace}/{name}", 409, "the object has been modified")
        return self.put(resource, body)

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Object:
        stored = copy.deepcopy(self.objects[(resource.plural, namespace, name)])
        stored.setdefault("spec", {}).update(dict(patch).get("spec", {}))  # type: ignore[arg-type]
        return self.put(resource, stored)

    def delete(self, resource: Resource, namespace: str, name: str) -> bool:
        return self.objects.pop((resource.plural, namespace, name), None) is not None


def web(replicas: int = 1) -> Object:
    return deployment("web", "app:1", replicas=replicas)


@pytest.fixture
def client() -> CountingClient:
    return CountingClient()


def live_api(client: CountingClient, **options: Any) -> WatchedKubeApi:
    """A WatchedKubeApi whose Deployment watch has delivered (kopf listed the resource)."""
    api = WatchedKubeApi(client, namespaces=(NS,), **options)
    api.observe(DEPLOYMENTS, None, deployment("unrelated", "x:1"))
    return api


def test_reads_after_the_first_come_from_memory_and_not_found_is_kept_too(client: CountingClient) -> None:
    client.put(DEPLOYMENTS, web())
    api = live_api(client)
    for _ in range(20):
        found = api.get(DEPLOYMENTS, NS, "web")
        assert found is not None and found["spec"]["replicas"] == 1
    assert client.gets == 1
    assert api.get(DEPLOYMENTS, NS, "absent") is None
    assert api.get(DEPLOYMENTS, NS, "absent") is None
    assert client.gets == 2


def test_callers_get_their_own_copies(client: CountingClient) -> None:
    client.put(DEPLOYMENTS, web())
    api = live_api(client)
    first = api.get(DEPLOYMENTS, NS, "web")
    assert first is not None
    first["spec"]["replicas"] = 99
    again = api.get(DEPLOYMENTS, NS, "web")
    assert again is not None and again["spec"]["replicas"] == 1


def test_a_watched_change_is_seen_without_a_get_and_an_older_event_never_wins(client: CountingClient) -> None:
    old = client.put(DEPLOYMENTS, web())
    api = live_api(client)
    api.get(DEPLOYMENTS, NS, "web")
    newer = client.put(DEPLOYMENTS, web(replicas=5))
    api.observe(DEPLOYMENTS, "MODIFIED", newer)
    api.observe(DEPLOYMENTS, "MODIFIED", old)  # late, out of order
    found = api.get(DEPLOYMENTS, NS, "web")
    assert found is not None and found["spec"]["replicas"] == 5
    api.observe(DEPLOYMENTS, "DELETED", {**newer, "metadata": {**newer["metadata"], "resourceVersion": "99"}})
    assert api.get(DEPLOYMENTS, NS, "web") is None
    assert client.gets == 1


def test_a_change_that_arrives_while_the_first_get_is_in_flight_is_not_lost(client: CountingClient) -> None:
    """The GET answers an older version than the event delivered meanwhile: the event is kept."""
    old = client.put(DEPLOYMENTS, web())
    api = live_api(client)
    original_get = client.get

    def get_then_change(resource: Resource, namespace: str, name: str) -> Object | None:
        answer = original_get(resource, namespace, name)
        api.observe(DEPLOYMENTS, "MODIFIED", client.put(DEPLOYMENTS, web(replicas=7)))
        return answer

    client.get = get_then_change  # type: ignore[method-assign]
    first = api.get(DEPLOYMENTS, NS, "web")
    assert first is not None and first["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]
    client.get = original_get  # type: ignore[method-assign]
    found = api.get(DEPLOYMENTS, NS, "web")
    assert found is not None and found["spec"]["replicas"] == 7


def test_objects_nobody_asked_for_are_not_kept(client: CountingClient) -> None:
    api = live_api(client)
    client.put(DEPLOYMENTS, web())
    api.get(DEPLOYMENTS, NS, "web")
    for index in range(5):
        api.observe(DEPLOYMENTS, "ADDED", client.put(DEPLOYMENTS, deployment(f"app-{index}", "x:1")))
    assert api.kept() == 1


def test_own_writes_are_read_back_at_once_and_a_conflict_forgets_the_object(client: CountingClient) -> None:
    client.put(DEPLOYMENTS, web())
    api = live_api(client)
    live = api.get(DEPLOYMENTS, NS, "web")
    assert live is not None
    stale = copy.deepcopy(live)
    live["spec"]["replicas"] = 3
    written = api.replace(DEPLOYMENTS, NS, live)
    found = api.get(DEPLOYMENTS, NS, "web")
    assert found is not None and found["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    gets = client.gets
    with pytest.raises(ApiConflict):
        api.replace(DEPLOYMENTS, NS, stale)
    again = api.get(DEPLOYMENTS, NS, "web")
    assert again is not None and again["spec"]["replicas"] == 3
    assert client.gets == gets + 1  # forgotten after the conflict: re-read from the server


def test_before_any_watch_event_and_outside_the_watched_resources_reads_go_through(client: CountingClient) -> None:
    """Istio not installed, or kopf has not listed yet: nothing is kept, every read asks the API server."""
    client.put(DEPLOYMENTS, web())
    api = WatchedKubeApi(client, namespaces=(NS,))
    for _ in range(3):
        assert api.get(DEPLOYMENTS, NS, "web") is not None
        assert api.get(VIRTUAL_SERVICES, NS, "web") is None
        assert api.get(SERVICES, NS, "web") is None
    assert client.gets == 9
    assert api.kept() == 0
    api.get(DEPLOYMENTS, "other-namespace", "web")  # not a namespace the operator serves
    assert api.kept() == 0


def test_an_entry_nothing_confirmed_for_max_age_is_read_again(client: CountingClient) -> None:
    """kopf never reports an object deleted while its watch was re-listing: memory is not trusted forever."""
    now = [0.0]
    client.put(DEPLOYMENTS, web())
    api = live_api(client, max_age_s=300.0, clock=lambda: now[0])
    api.get(DEPLOYMENTS, NS, "web")
    client.delete(DEPLOYMENTS, NS, "web")  # deleted, and the watch missed it
    now[0] = 299.0
    assert api.get(DEPLOYMENTS, NS, "web") is not None
    now[0] = 301.0
    assert api.get(DEPLOYMENTS, NS, "web") is None
    assert client.gets == 2


async def test_the_operator_reads_deployments_from_kopfs_watch(emulator: CoalmineEmulator) -> None:
    """Once initialised, ticks read the target and primary from memory: a minute of ticks costs no Deployment GET,
    and a change someone else makes (a new image) still starts the rollout."""
    calls: list[ApiCall] = []
    emulator.create_object("apps/v1/deployments", deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object("coalmine.dev/v1alpha1/canaries", canary("podinfo"), NS)
    async with operator(emulator, test_config(tick_seconds=0.1), recorder=calls.append):
        await wait_phase(emulator, "podinfo", "Initialized")
        await asyncio.sleep(0.5)  # the operator's own writes' events have arrived

        def deployment_gets() -> int:
            return sum(1 for call in calls if call.verb == "get" and call.resource == "deployments")

        before = deployment_gets()
        await asyncio.sleep(1.0)  # about ten ticks
        assert deployment_gets() == before
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_phase(emulator, "podinfo", "Progressing")
