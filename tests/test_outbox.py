"""The announcement outbox: a tick's Events are told only after its transition is written, once, even across crashes.

The real tick (:func:`controller.operator.reconcile.reconcile`) runs over the in-memory API (``FakeKube``, which
answers 409 for an Event name it already holds, like the real one) with a real HTTP receiver on 127.0.0.1 as the
operator's default notification provider. "Writing the status" is done by the test, as kopf does after a tick, so
a crash is simply a tick whose status is never written, and a restart is a fresh ``OperatorContext``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator, Mapping
from typing import Any, cast

import pytest
from fakekube import FakeKube
from http_recorder import Answer, Recorder, serve
from operator_harness import canary, deployment

from controller.kube.api import CANARIES, DEPLOYMENTS, EVENTS, KubeApi
from controller.kube.errors import ApiError
from controller.notify.config import ProviderConfig, ProviderType
from controller.operator import outbox
from controller.operator.announce import tick_origin
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.reconcile import TickResult, reconcile
from controller.operator.writes import status_patch
from controller.rollout.decision import Event, EventType, Reason
from controller.rollout.outbox import OUTBOX_KEY, OutboxEntry, build_entries, merged, read_outbox
from controller.rollout.spec import HookType

NS = "default"
NAME = "podinfo"
T0 = 1_700_000_000.0


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    yield from serve()


class World:
    """One Canary over FakeKube; ``tick`` runs the real tick and (unless told not to) writes its status back."""

    def __init__(self, receiver: Recorder, *, answer: Answer = Answer(200)) -> None:
        self.kube = FakeKube()
        self.url = receiver.script("/alerts", answer)
        self.receiver = receiver
        self.kube.put(DEPLOYMENTS, NS, deployment(NAME, "podinfo:1.0.0"))
        body = canary(NAME, analysis={"metrics": None})  # no looks: the rollout advances on time alone
        body["metadata"]["uid"] = "uid-1"
        self.kube.put(CANARIES, NS, body)
        self.now = T0
        self.ctx = self.context()

    def context(self) -> OperatorContext:
        """A fresh operator process: nothing in memory, only what the API stores."""
        config = OperatorConfig(default_alert=ProviderConfig(ProviderType.WEBHOOK, self.url), instance="test")
        return OperatorContext(config=config, api=cast(KubeApi, self.kube))

    @property
    def body(self) -> dict[str, Any]:
        found = self.kube.get(CANARIES, NS, NAME)
        assert found is not None
        return found

    @property
    def status(self) -> dict[str, Any]:
        return dict(self.body.get("status") or {})

    async def tick(self, *, write: bool = True, ctx: OperatorContext | None = None) -> TickResult:
        self.now += 1
        self._ready()
        result = await reconcile(ctx or self.ctx, self.body, self.now)
        if write:
            self.write(result)
        return result

    def write(self, result: TickResult) -> None:
        """kopf's part: merge the tick's status patch into the stored object (``null`` removes a key)."""
        stored = self.status
        for key, value in status_patch(stored, result.status_patch or {}).items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = copy.deepcopy(result.status_patch or {})[key]
        body = self.body
        body["status"] = stored
        self.kube.objects[(CANARIES.group, CANARIES.plural, NS, NAME)] = body

    def release(self, image: str) -> None:
        """A new revision, as ``kubectl set image`` makes one."""
        target = self.kube.get(DEPLOYMENTS, NS, NAME)
        assert target is not None
        target["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.kube.objects[(DEPLOYMENTS.group, DEPLOYMENTS.plural, NS, NAME)] = target

    def _ready(self) -> None:
        """Every Deployment reports all its replicas ready (the kubelet's part)."""
        for target in self.kube.list(DEPLOYMENTS, NS):
            replicas = int(target["spec"].get("replicas", 1))
            target["status"] = {
                "observedGeneration": target["metadata"].get("generation", 1),
                **dict.fromkeys(("replicas", "readyReplicas", "updatedReplicas", "availableReplicas"), replicas),
            }
            self.kube.objects[(DEPLOYMENTS.group, DEPLOYMENTS.plural, NS, target["metadata"]["name"])] = target

    def events(self) -> list[tuple[str, str, str]]:
        """(name, reason, note) of the Events recorded on the Canary."""
        return sorted(
            (e["metadata"]["name"], e["reason"], e["note"])
            for e in self.kube.list(EVENTS, NS)
            if (e.get("regarding") or {}).get("name") == NAME
        )

    def messages(self, reason: str = "NewRevision") -> list[dict[str, Any]]:
        """The notifications received about ``reason``."""
        received = [json.loads(r.body) for r in self.receiver.requests_to("/alerts")]
        return [m for m in received if m.get("reason") == reason]

    async def initialized(self) -> None:
        for _ in range(6):
            await self.tick()
            if self.status.get("phase") == "Initialized" and not self.status.get(OUTBOX_KEY):
                return
        raise AssertionError(f"not initialized: {self.status}")


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# -- a tick queues, the next tick announces ---------------------------------------------------------------


async def test_a_tick_queues_its_events_with_its_status_and_announces_nothing(receiver: Recorder) -> None:
    world = World(receiver)
    await world.initialized()
    events_before = world.events()
    world.release("podinfo:2.0.0")
    result = await world.tick()
    assert result.status_patch is not None
    queued = read_outbox(result.status_patch)
    assert [entry.reason for entry in queued] == [Reason.NEW_REVISION]
    (entry,) = queued
    assert entry.key is not None and entry.key in result.status_patch["notifications"]["sentKeys"]
    await asyncio.sleep(0.2)
    assert world.events() == events_before  # nothing recorded …
    assert receiver.requests_to("/alerts") == []  # … and nothing sent for a transition only now being written


async def test_the_next_tick_announces_the_stored_outbox_once_and_removes_it(receiver: Recorder) -> None:
    world = World(receiver)
    await world.initialized()
    world.release("podinfo:2.0.0")
    await world.tick()
    (entry,) = read_outbox(world.status)
    result = await world.tick()
    assert entry.id not in [e.id for e in read_outbox(result.status_patch or {})]  # done: removed from status
    assert (f"{NAME}.{entry.id}", "NewRevision", entry.message) in world.events()
    (message,) = world.messages()
    assert message["id"] == entry.key and message["reason"] == "NewRevision"
    assert "podinfo:2.0.0" in json.dumps(message)  # the image of the revision the transition was about
    for _ in range(3):
        await world.tick()
    assert [m["reason"] for m in world.messages()].count("NewRevision") == 1
    assert [reason for _, reason, _ in world.events()].count("NewRevision") == 1


async def test_a_crash_after_the_flush_resends_once_more_with_the_same_key_and_no_second_event(
    receiver: Recorder,
) -> None:
    world = World(receiver)
    await world.initialized()
    world.release("podinfo:2.0.0")
    await world.tick()
    (entry,) = read_outbox(world.status)
    await world.tick(write=False)  # announced, then killed before its status (without the entry) was written
    world.ctx = world.context()  # the restarted operator remembers nothing
    await world.tick()
    await world.tick()
    assert [m["id"] for m in world.messages()] == [entry.key, entry.key]  # a redelivery, the same id
    assert [name for name, reason, _ in world.events() if reason == "NewRevision"] == [f"{NAME}.{entry.id}"]
    assert entry not in read_outbox(world.status)


async def test_a_crash_before_the_status_write_announces_nothing_and_the_redecided_tick_only_its_own(
    receiver: Recorder,
) -> None:
    world = World(receiver)
    await world.initialized()
    world.release("podinfo:2.0.0")
    lost = await world.tick(write=False)  # decided a new revision, killed before the write
    assert read_outbox(lost.status_patch or {})
    world.ctx = world.context()
    world.release("podinfo:3.0.0")  # meanwhile the world moved on: the repeated tick decides about 3.0.0
    await world.tick()
    await world.tick()
    revisions = [note for _, reason, note in world.events() if reason == "NewRevision"]
    assert len(revisions) == 1
    (message,) = world.messages()
    assert "podinfo:3.0.0" in json.dumps(message) and "podinfo:2.0.0" not in json.dumps(message)


async def test_a_slow_receiver_keeps_its_entry_in_flight_and_the_next_tick_does_not_resend_it(
    receiver: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "DELIVERY_WAIT_S", 0.1)
    world = World(receiver, answer=Answer(200, delay_s=0.8))
    await world.initialized()
    world.release("podinfo:2.0.0")
    await world.tick()
    (entry,) = read_outbox(world.status)
    started = time.monotonic()
    await world.tick()
    assert time.monotonic() - started < 0.7  # the tick waited a bounded time, not for the receiver
    assert entry in read_outbox(world.status)  # still in flight: kept
    await world.tick()
    assert len(world.messages()) <= 1  # not sent a second time while the first is in flight
    await until(lambda: len(world.messages()) == 1)
    await asyncio.sleep(0.9)  # the receiver answers
    await world.tick()
    assert entry not in read_outbox(world.status)
    assert [m["id"] for m in world.messages()] == [entry.key]


async def test_a_failed_action_still_writes_the_flush_but_not_the_decision(receiver: Recorder) -> None:
    world = World(receiver)
    await world.initialized()
    world.release("podinfo:2.0.0")
    await world.tick()
    (entry,) = read_outbox(world.status)
    phase = world.status["phase"]

    class Failing(FakeKube):
        def replace(self, resource: Any, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
            raise ApiError("write", 500, "the API is down")

        def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ApiError("write", 500, "the API is down")

        def create(self, resource: Any, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
            if resource != EVENTS:
                raise ApiError("write", 500, "the API is down")
            meta = dict(body["metadata"])
            meta.setdefault("name", f"{meta.pop('generateName', '')}{len(self.objects)}")  # the API's generateName
            return super().create(resource, namespace, {**body, "metadata": meta})

    failing = Failing()
    failing.objects, failing._version = world.kube.objects, world.kube._version
    world.kube = failing
    world.ctx.api = cast(KubeApi, failing)
    result = await world.tick()
    assert result.status_patch == {OUTBOX_KEY: None}  # only the announced entry goes …
    assert world.status["phase"] == phase  # … the decision is retried, not written
    reasons = [reason for _, reason, _ in world.events()]
    assert "NewRevision" in reasons and "ReconcileFailed" in reasons
    assert [m["id"] for m in world.messages()] == [entry.key]


async def test_a_deleted_canary_announces_its_last_events_before_it_is_released(receiver: Recorder) -> None:
    world = World(receiver)
    await world.initialized()
    world.release("podinfo:2.0.0")
    await world.tick()
    (queued,) = read_outbox(world.status)
    body = world.body
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    world.kube.objects[(CANARIES.group, CANARIES.plural, NS, NAME)] = body
    result = await world.tick()
    assert result.released
    assert result.status_patch is not None and result.status_patch[OUTBOX_KEY] is None
    reasons = [reason for _, reason, _ in world.events()]
    assert "NewRevision" in reasons and "Terminated" in reasons  # the stored entry and this tick's own
    assert queued.key in [m["id"] for m in world.messages()]
    assert not world.ctx.outbox_flights  # nothing remembered for an object that is gone


# -- the pure helpers ---------------------------------------------------------------------------------------


def test_entry_ids_are_the_same_for_a_repeated_tick_and_distinct_within_one() -> None:
    events = (
        Event(EventType.NORMAL, Reason.ADVANCED, "Advance podinfo canary weight 20"),
        Event(EventType.NORMAL, Reason.ADVANCED, "a second Advanced in the same tick is its own Event"),
        Event(EventType.WARNING, Reason.HALTED, "Halt", HookType.PRE_ROLLOUT),
    )
    stored = {"phase": "Progressing", "canaryWeight": 10}
    first = build_entries("uid-1", tick_origin(stored), events, [None, None, "k"])
    again = build_entries("uid-1", tick_origin(dict(stored)), events, [None, None, "k"])
    assert first == again
    assert len({entry.id for entry in first}) == 3
    assert first[2].key == "k" and first[2].hook is HookType.PRE_ROLLOUT and first[0].key is None
    later = build_entries("uid-1", tick_origin({**stored, "canaryWeight": 20}), events)
    assert not {entry.id for entry in later} & {entry.id for entry in first}


def test_the_outbox_is_not_part_of_a_ticks_origin() -> None:
    stored = {"phase": "Progressing", "canaryWeight": 10}
    queued = {**stored, OUTBOX_KEY: [{"id": "a", "type": "Normal", "reason": "Advanced", "message": "m"}]}
    assert tick_origin(queued) == tick_origin(stored)
    assert tick_origin({**stored, "canaryWeight": 20}) != tick_origin(stored)


def test_entries_survive_the_round_trip_through_status_and_unreadable_ones_are_skipped() -> None:
    entries = build_entries("u", "o", (Event(EventType.WARNING, Reason.HALTED, "Halt", HookType.ROLLOUT),), ["key-1"])
    stored = json.loads(json.dumps({OUTBOX_KEY: merged((), entries)}))
    garbage = [{"id": "x", "type": "Normal", "reason": "NoSuchReason"}, "not a map", {"type": "Normal"}]
    assert read_outbox({OUTBOX_KEY: [*stored[OUTBOX_KEY], *garbage]}) == entries


def test_merging_keeps_entries_in_flight_and_never_queues_a_known_id_twice() -> None:
    def entry(id_: str) -> OutboxEntry:
        return OutboxEntry(id_, EventType.NORMAL, Reason.ADVANCED, id_)

    merged_ids = [e["id"] for e in merged([entry("a")], [entry("a"), entry("b"), entry("c"), entry("b")], ["c"]) or ()]
    assert merged_ids == ["a", "b"]
    assert merged((), ()) is None  # an empty outbox is removed from status, not stored as []
