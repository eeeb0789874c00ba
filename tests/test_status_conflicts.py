"""Status writes carry ``metadata.resourceVersion``: a writer deciding from an old copy is refused (409) and re-reads.

A second operator replica, or a tick delayed behind the watch, decides from an old copy of a Canary. Without
optimistic concurrency its status write silently replaced the newer status (the judge's evidence and the step went
back) and its actions moved the traffic back to an older step; its flush re-sent announcements. These tests run
that stale writer for real (the operator's own tick, over HTTP, against the emulated API server) and check that
nothing goes back: not the router's weights, not ``status.judge``, no Event twice, no webhook twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any, cast

import kubernetes.client
import pytest
from emulator import CoalmineEmulator
from http_recorder import Answer, Recorder, serve
from kubernetes.client.exceptions import ApiException
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    EVENTS,
    NS,
    History,
    OperatorRun,
    ScriptedPrometheus,
    canary,
    deployment,
    new_image,
    scripted_prometheus,
    status_of,
    test_config,
    wait_for,
    wait_phase,
    weights_of,
)

from controller.handlers.common import tick_and_write
from controller.kube.api import CANARIES as CANARY_RESOURCE
from controller.kube.api import KubeApi
from controller.kube.client import KubeClient
from controller.kube.errors import ApiConflict
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.writes import current_view, optimistic_patch, remember_read, remember_write
from controller.rollout.kinds import CANARY

NAME = "podinfo"


@pytest.fixture
def prom() -> Iterator[ScriptedPrometheus]:
    with scripted_prometheus() as responder:
        yield responder


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    yield from serve()


# -- the emulator: a stale resourceVersion is a 409, as on a real API server -------------------------------------


def test_emulator_refuses_a_stale_resource_version_on_status_and_main_resource(
    k8s_client: kubernetes.client.ApiClient,
) -> None:
    custom = kubernetes.client.CustomObjectsApi(k8s_client)
    args = ("coalmine.dev", "v1alpha1", NS, "canaries", NAME)
    created = custom.create_namespaced_custom_object(*args[:4], canary(NAME))
    old = created["metadata"]["resourceVersion"]
    written = custom.patch_namespaced_custom_object_status(*args, {"status": {"phase": "Progressing"}})
    assert written["metadata"]["resourceVersion"] != old  # a patch without resourceVersion still applies

    for stale_write in (
        lambda: custom.patch_namespaced_custom_object_status(
            *args, {"metadata": {"resourceVersion": old}, "status": {"phase": "Initialized"}}
        ),
        lambda: custom.patch_namespaced_custom_object(
            *args, {"metadata": {"resourceVersion": old}, "spec": {"suspend": True}}
        ),
    ):
        with pytest.raises(ApiException) as refused:
            stale_write()
        answer = json.loads(refused.value.body)
        assert refused.value.status == 409
        assert (answer["kind"], answer["status"], answer["reason"]) == ("Status", "Failure", "Conflict")
        assert answer["details"]["name"] == NAME

    current = custom.get_namespaced_custom_object(*args)
    assert current["status"]["phase"] == "Progressing" and not current["spec"].get("suspend")  # nothing applied
    fresh = current["metadata"]["resourceVersion"]
    same = custom.patch_namespaced_custom_object_status(*args, {"metadata": {"resourceVersion": fresh}})
    assert same["metadata"]["resourceVersion"] == fresh  # the current version is accepted; a no-op writes nothing
    moved = custom.patch_namespaced_custom_object_status(
        *args, {"metadata": {"resourceVersion": fresh}, "status": {"phase": "Succeeded"}}
    )
    assert moved["status"]["phase"] == "Succeeded" and moved["metadata"]["resourceVersion"] != fresh


# -- the pure part: the patch and the bookkeeping after a refusal ------------------------------------------------


def _body(version: str, status: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": NAME, "namespace": NS, "uid": "u1", "resourceVersion": version, "generation": generation},
        "spec": {"analysis": {"stepWeight": 20}},
        "status": status,
    }


def test_the_status_patch_carries_the_version_it_was_decided_from() -> None:
    view = _body("41", {"canaryWeight": 20})
    assert optimistic_patch(view, {"canaryWeight": 40}) == {
        "metadata": {"resourceVersion": "41"},
        "status": {"canaryWeight": 40},
    }
    assert optimistic_patch({"metadata": {}}, {"canaryWeight": 40}) == {"status": {"canaryWeight": 40}}


def test_after_a_refused_write_the_next_tick_decides_from_the_stored_object() -> None:
    ctx = OperatorContext(config=OperatorConfig(), api=cast(KubeApi, object()))
    kopf_copy = _body("41", {"canaryWeight": 20, "judge": {"looks": 1}})
    remember_write(ctx, kopf_copy, _body("45", {"canaryWeight": 40}))  # our own earlier write, not seen back yet

    stored = _body("52", {"canaryWeight": 60, "judge": {"looks": 3}})  # what another writer left meanwhile
    remember_read(ctx, kopf_copy, stored)
    view = current_view(ctx, kopf_copy)
    assert view["status"] == stored["status"]  # not our own (older) write, nor kopf's copy
    assert view["metadata"]["resourceVersion"] == "52"  # so the next write is accepted
    assert view["spec"] == kopf_copy["spec"]

    respec = _body("53", {"canaryWeight": 60}, generation=2)  # a spec edit kopf has not delivered yet
    remember_read(ctx, kopf_copy, respec)
    assert current_view(ctx, kopf_copy) == kopf_copy  # no status of a newer spec under an older spec: wait
    assert "u1" not in ctx.written_status


# -- the real operator: a stale replica's tick is refused, and nothing goes back ---------------------------------


def _replica(emulator: CoalmineEmulator, config: OperatorConfig) -> OperatorContext:
    """A second operator process (nothing in memory) with its own client to the same API server."""
    configuration = kubernetes.client.Configuration(host=str(emulator.url).rstrip("/"))
    configuration.retries = 0
    api = KubeClient.from_configuration(configuration, timeout_s=5.0, instance="stale-replica")
    return OperatorContext(config=config, api=api)


def _advances(receiver: Recorder) -> list[str]:
    """The ``eventMessage`` of each ``event`` webhook call about an Advanced Event, in arrival order."""
    messages = [json.loads(r.body)["metadata"] for r in receiver.requests_to("/events")]
    return [m["eventMessage"] for m in messages if m["eventMessage"].startswith("Advance")]


def _events(emulator: CoalmineEmulator) -> Counter[tuple[str, str]]:
    found = [e for e in emulator.list_objects(EVENTS, NS) if (e.get("regarding") or {}).get("name") == NAME]
    return Counter((str(e.get("reason", "")), str(e.get("note", ""))) for e in found)


@pytest.mark.timeout(90)
async def test_a_stale_replica_is_refused_and_nothing_rewinds(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, receiver: Recorder
) -> None:
    history = History.install(emulator)
    hook = {"name": "announce", "type": "event", "url": receiver.script("/events", Answer(200))}
    config = test_config(prom)
    emulator.create_object(DEPLOYMENTS, deployment(NAME, "podinfo:1"), NS)
    analysis = {"interval": "2s", "stepWeight": 20, "maxWeight": 80, "webhooks": [hook]}
    emulator.create_object(CANARIES, canary(NAME, analysis=analysis), NS)
    run = OperatorRun(emulator, config)
    await run.start()
    stale = _replica(emulator, config)
    try:
        await wait_phase(emulator, NAME, "Initialized")
        new_image(emulator, NAME, "podinfo:2")

        def first_at(weight: int) -> dict[str, Any] | None:
            for write in history.of("/canaries", NAME):
                if (write.obj.get("status") or {}).get("canaryWeight") == weight:
                    return write.obj
            return None

        old = await wait_for("the status at weight 20", lambda: first_at(20))  # as a lagging watch delivered it
        await wait_for("the traffic at 60 %", lambda: weights_of(emulator, NAME) == (40, 60), timeout=30)
        await run.stop()  # the stale replica's effects are then the only writes
        before = status_of(emulator, NAME)
        version = emulator.read_object(CANARIES, NS, NAME)["metadata"]["resourceVersion"]
        events, calls = _events(emulator), len(receiver.requests_to("/events"))
        assert before["canaryWeight"] >= 60 and before.get("judge")

        # A stale writer replays the status it had at weight 20: refused with 409, nothing changes.
        replay = {"metadata": {"resourceVersion": old["metadata"]["resourceVersion"]}, "status": old["status"]}
        with pytest.raises(ApiConflict):
            await stale.blocking(stale.api.patch, CANARY_RESOURCE, NS, NAME, replay, subresource="status")
        assert status_of(emulator, NAME) == before

        # The stale replica's own tick, deciding from its copy at weight 20 (a look is due there: it would advance to
        # 40 % and re-announce the step to 20 %): it acts on nothing, writes nothing, announces nothing.
        await tick_and_write(stale, CANARY_RESOURCE, CANARY, old, current_view(stale, old), time.time())
        await asyncio.sleep(0.5)  # any delivery it started would have arrived
        assert weights_of(emulator, NAME) == (40, 60), "the traffic went back to an older step"
        assert status_of(emulator, NAME) == before, "the status (and the judge's evidence) went back"
        assert emulator.read_object(CANARIES, NS, NAME)["metadata"]["resourceVersion"] == version
        assert _events(emulator) == events and len(receiver.requests_to("/events")) == calls

        # Having re-read, its next tick decides from the stored object (its watch is still behind): accepted.
        status, _ = await tick_and_write(stale, CANARY_RESOURCE, CANARY, old, current_view(stale, old), time.time())
        assert status["canaryWeight"] >= before["canaryWeight"]
        assert status_of(emulator, NAME)["canaryWeight"] >= before["canaryWeight"]

        await run.start()
        await wait_phase(emulator, NAME, "Succeeded", timeout=40)
        await asyncio.sleep(0.6)  # the tick after Succeeded announces it
    finally:
        await stale.aclose()
        await run.stop()

    assert history.weights(NAME) == [(100, 0), (80, 20), (60, 40), (40, 60), (20, 80), (100, 0)]
    canary_weights = [s.get("canaryWeight", 0) for s in history.statuses(NAME) if s.get("phase") == "Progressing"]
    assert canary_weights == sorted(canary_weights), f"a status went back a step: {canary_weights}"
    for step in (20, 40, 60, 80):  # the judge's evidence of each step only grows until the step is left
        looks = [
            int(((s.get("judge") or {}).get("request-success-rate") or {}).get("looks", 0) or 0)
            for s in history.statuses(NAME)
            if s.get("canaryWeight") == step and s.get("phase") == "Progressing"
        ]
        assert looks == sorted(looks), f"the judge's evidence at {step} % was lost: {looks}"
    twice = {event: count for event, count in _events(emulator).items() if count > 1}
    assert not twice, f"Events recorded twice: {twice}"
    advances = _advances(receiver)
    assert len(advances) == len(set(advances)) == 4, advances  # one webhook call per step: 20, 40, 60, 80 %
