"""HA fencing end to end: two operator replicas with ``--leader-elect`` against one emulated API server.

The active replica's keep-alive is killed (its Lease writes are blackholed, everything else keeps working, as when
its connection to the API server degrades). It must stop acting at its renew deadline, the standby must take over
only after that, and every announcement of the rollout — the ``event`` webhook per step — must arrive exactly once,
from whichever replica led at the time. kopf peering failed this: the paused-too-late replica kept acting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes.client
import pytest
from emulator import CoalmineEmulator, operator_settings, running_operator
from http_recorder import Answer, Recorder, serve
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    EVENTS,
    NS,
    ScriptedPrometheus,
    canary,
    collect_kopf_sessions,
    deployment,
    new_image,
    scripted_prometheus,
    status_of,
    test_config,
    wait_for,
    wait_phase,
)

from controller.kube.api import LEASES, KubeApi, Object, Resource
from controller.kube.errors import ApiUnavailable
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.leader import ElectionConfig, LeaseElection
from controller.operator.runtime import build_context, build_registry, configure_settings

NAME = "podinfo"
LEASE = "coalmine-test"


class KeepAlive:
    """The elector's client, whose Lease writes can be blackholed (``cut``): they hang until they time out."""

    def __init__(self, api: KubeApi, hang_s: float) -> None:
        self.api = api
        self.hang_s = hang_s
        self.cut = False

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        return self.api.get(resource, namespace, name)

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        self._blackhole(resource)
        return self.api.create(resource, namespace, body)

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        self._blackhole(resource)
        return self.api.replace(resource, namespace, body)

    def close(self) -> None:
        close = getattr(self.api, "close", None)
        if callable(close):
            close()

    def _blackhole(self, resource: Resource) -> None:
        if self.cut and resource == LEASES:
            time.sleep(self.hang_s)  # in the elector's own thread, as a request that never answers
            raise ApiUnavailable("Lease", 0, "timed out (blackholed by the test)")


class Replica:
    """One ``coalmine run --leader-elect`` replica in this loop (what run.py builds), named ``identity``."""

    def __init__(self, emulator: CoalmineEmulator, config: OperatorConfig, identity: str) -> None:
        self.emulator = emulator
        self.config = config
        self.identity = identity
        self.stack: contextlib.AsyncExitStack | None = None
        election = ElectionConfig(LEASE, NS, identity, lease_duration_s=2.5, renew_deadline_s=1.5, retry_period_s=0.2)
        configuration = kubernetes.client.Configuration(host=str(emulator.url).rstrip("/"))
        self.ctx: OperatorContext = build_context(config, configuration, election)
        assert isinstance(self.ctx.leadership, LeaseElection)
        self.elector = self.ctx.leadership
        self.keep_alive = KeepAlive(self.elector.api, hang_s=election.timeout_s + 0.2)
        self.elector.api = self.keep_alive
        self.ctx.http.headers["X-Replica"] = identity  # tells the receiver who delivered each webhook

    async def start(self) -> None:
        settings = operator_settings()
        configure_settings(settings, finalizer=self.config.shard.finalizer)  # no peering: standalone
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(
            running_operator(
                self.emulator,
                registry=build_registry(self.config),
                settings=settings,
                memo={"ctx": self.ctx},
                wait_for=(CANARIES,),
                shutdown_timeout=30.0,
            )
        )
        self.stack = stack

    async def stop(self) -> None:
        stack, self.stack = self.stack, None
        if stack is not None:
            await stack.aclose()
            collect_kopf_sessions()


@pytest.fixture
def prom(emulator: CoalmineEmulator) -> Iterator[ScriptedPrometheus]:
    with scripted_prometheus() as responder:
        # Batched looks ask about every workload of the namespace: the responder answers for the emulator's.
        responder.workloads = lambda: [str(d["metadata"]["name"]) for d in emulator.list_objects("apps/v1/deployments")]
        yield responder


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    yield from serve()


def advances(receiver: Recorder) -> list[tuple[str, str, float]]:
    """(replica, eventMessage, arrival) of each ``event`` webhook call about an Advanced Event."""
    found = []
    for request in receiver.requests_to("/events"):
        message = json.loads(request.body)["metadata"]["eventMessage"]
        if message.startswith("Advance"):
            replica = {k.lower(): v for k, v in request.headers.items()}.get("x-replica", "?")
            found.append((replica, message, request.at))
    return found


@pytest.mark.timeout(120)
async def test_a_replica_whose_keep_alive_dies_stops_before_the_standby_acts_and_nothing_is_sent_twice(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, receiver: Recorder
) -> None:
    hook = {"name": "announce", "type": "event", "url": receiver.script("/events", Answer(200))}
    emulator.create_object(DEPLOYMENTS, deployment(NAME, "podinfo:1"), NS)
    analysis = {"interval": "1s", "stepWeight": 10, "maxWeight": 60, "webhooks": [hook]}
    emulator.create_object(CANARIES, canary(NAME, analysis=analysis), NS)
    a = Replica(emulator, test_config(prom, instance="replica-a"), "replica-a")
    b = Replica(emulator, test_config(prom, instance="replica-b"), "replica-b")
    try:
        await a.start()
        await wait_for("replica-a to lead", lambda: a.elector.leading, timeout=10)
        await b.start()
        await wait_phase(emulator, NAME, "Initialized")
        assert not b.elector.leading
        new_image(emulator, NAME, "podinfo:2")
        await wait_for("replica-a to announce two steps", lambda: len(advances(receiver)) >= 2, timeout=30)

        a.keep_alive.cut = True  # its renewals now hang and time out; its ticks, watches and webhooks still work
        await wait_for("replica-b to take over", lambda: b.elector.leading, timeout=15)
        await wait_phase(emulator, NAME, "Succeeded", timeout=60)
        await wait_for(  # the tick after Succeeded announces the last step
            "every step announced", lambda: len({m for _, m, _ in advances(receiver)}) >= 6, timeout=10
        )
    finally:
        await b.stop()
        await a.stop()

    (_, a_end) = a.elector.terms[0]
    (b_start, _) = b.elector.terms[0]
    assert a_end is not None and len(a.elector.terms) == 1, "replica-a led again while its keep-alive was dead"
    assert b_start > a_end, f"the standby led at {b_start:.2f} before the old leader stopped at {a_end:.2f}"

    calls = advances(receiver)
    messages = [message for _, message, _ in calls]
    twice = {m: n for m, n in Counter(messages).items() if n > 1}
    assert not twice, f"webhooks delivered twice: {twice}"
    assert len(messages) == 6, messages  # one per step: 10, 20, 30, 40, 50, 60 %
    by = Counter(replica for replica, _, _ in calls)
    assert by["replica-a"] >= 2 and by["replica-b"] >= 1, by  # both led, one after the other
    for replica, message, at in calls:
        if replica == "replica-a":
            assert at < a_end + 0.5, f"replica-a delivered {message!r} {at - a_end:.2f} s after it stepped down"
        else:
            assert replica == "replica-b" and at >= b_start, f"{replica} delivered {message!r} while not leading"

    events = [e for e in emulator.list_objects(EVENTS, NS) if (e.get("regarding") or {}).get("name") == NAME]
    recorded = Counter((str(e.get("reason", "")), str(e.get("note", ""))) for e in events)
    assert not {key: n for key, n in recorded.items() if n > 1}, "Events recorded twice"
    assert status_of(emulator, NAME)["phase"] == "Succeeded"

    lease = emulator.read_object("coordination.k8s.io/v1/leases", NS, LEASE)
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1  # a took it first, b once
    assert lease["spec"]["holderIdentity"] == "", "a clean shutdown releases the Lease"


@pytest.mark.timeout(60)
async def test_a_standby_waits_quietly_while_the_leader_restores_a_deleted_canary(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.create_object(DEPLOYMENTS, deployment(NAME, "podinfo:1"), NS)
    emulator.create_object(CANARIES, canary(NAME, revertOnDeletion=True), NS)
    a = Replica(emulator, test_config(prom, instance="replica-a"), "replica-a")
    b = Replica(emulator, test_config(prom, instance="replica-b"), "replica-b")
    waited: list[float] = []
    original = b.elector.until_leading

    async def noted(timeout_s: float) -> bool:
        waited.append(timeout_s)  # the standby's deletion handler ran and is waiting for the leader
        return await original(timeout_s)

    b.elector.until_leading = noted  # type: ignore[method-assign]
    try:
        await a.start()
        await wait_for("replica-a to lead", lambda: a.elector.leading, timeout=10)
        await b.start()
        await wait_phase(emulator, NAME, "Initialized")
        assert emulator.read_object(DEPLOYMENTS, NS, NAME)["spec"]["replicas"] == 0
        caplog.clear()
        emulator.delete_object(CANARIES, NS, NAME)
        await wait_for("the Canary to go", lambda: emulator.read_object(CANARIES, NS, NAME) is None, timeout=20)
        await wait_for("the standby's handler to see it", lambda: bool(waited), timeout=10)
    finally:
        await b.stop()
        await a.stop()
    assert emulator.read_object(DEPLOYMENTS, NS, NAME)["spec"]["replicas"] == 2, "the leader restored the target"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, f"a standby waiting for the leader logged errors: {errors}"
    assert not b.elector.terms, "replica-b never led"
