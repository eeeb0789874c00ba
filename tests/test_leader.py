"""Leader election's decisions (controller.operator.leader), as pure functions of (state, observed Lease, now).

What a user relies on: at most one replica acts at any moment. So a standby acquires only after the record has gone
unchanged for the lease duration *by its own clock* (whatever the remote renewTime says), the leader stops acting
once it has not renewed for the renew deadline (shorter than the lease duration), and a lost race (409) stops it.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from controller.kube.api import LEASES, Object, Resource
from controller.kube.errors import ApiConflict, ApiNotFound, ApiUnavailable
from controller.operator.leader import (
    Action,
    ElectionConfig,
    ElectorState,
    Leadership,
    LeaseElection,
    NotLeading,
    decide,
    expired,
    is_leading,
    lost_race,
    observe,
    released_lease,
    renewed,
)

ME = ElectionConfig(name="coalmine", namespace="coalmine-system", identity="pod-a")
OTHER = "pod-b"
WALL = 1_800_000_000.0


def lease(
    holder: str,
    *,
    version: str = "7",
    renew: str = "2026-01-01T00:00:00.000000Z",
    transitions: int = 3,
    duration: int = 15,
) -> Object:
    return {
        "metadata": {"name": "coalmine", "namespace": "coalmine-system", "resourceVersion": version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": duration,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": renew,
            "leaseTransitions": transitions,
        },
    }


def test_no_lease_is_created_held_by_us() -> None:
    state = observe(ElectorState(), None, ME, now=100.0)
    plan = decide(state, ME, now=100.0, wall=WALL)
    assert plan.action is Action.CREATE and plan.lease is not None
    spec = plan.lease["spec"]
    assert spec["holderIdentity"] == "pod-a" and spec["leaseTransitions"] == 0 and spec["leaseDurationSeconds"] == 15
    assert spec["acquireTime"] == spec["renewTime"] == "2027-01-15T08:00:00.000000Z"
    assert "resourceVersion" not in plan.lease["metadata"]


def test_a_held_lease_is_acquired_only_after_lease_duration_by_our_own_clock() -> None:
    # The remote renewTime is years old: a standby with a clock that disagrees must not take it on that basis.
    state = observe(ElectorState(), lease(OTHER, renew="2001-01-01T00:00:00.000000Z"), ME, now=100.0)
    for now in (100.0, 105.0, 114.99):
        state = observe(state, lease(OTHER, renew="2001-01-01T00:00:00.000000Z"), ME, now=now)  # unchanged
        assert decide(state, ME, now=now, wall=WALL).action is Action.WAIT, now
    plan = decide(state, ME, now=115.0, wall=WALL)
    assert plan.action is Action.ACQUIRE and plan.lease is not None
    assert plan.lease["metadata"]["resourceVersion"] == "7", "the write must be decided from the version read"
    assert plan.lease["spec"]["holderIdentity"] == "pod-a" and plan.lease["spec"]["leaseTransitions"] == 4


def test_every_renewal_the_standby_sees_restarts_its_clock() -> None:
    state = observe(ElectorState(), lease(OTHER, version="7"), ME, now=100.0)
    state = observe(state, lease(OTHER, version="8", renew="2026-01-01T00:00:02.000000Z"), ME, now=112.0)
    assert decide(state, ME, now=120.0, wall=WALL).action is Action.WAIT  # 8 s since it changed, not 20 s
    assert decide(state, ME, now=127.0, wall=WALL).action is Action.ACQUIRE


def test_the_records_own_lease_duration_is_honoured() -> None:
    state = observe(ElectorState(), lease(OTHER, duration=30), ME, now=0.0)
    assert not expired(state, ME, 29.9) and expired(state, ME, 30.0)


def test_a_released_lease_is_taken_at_once() -> None:
    state = observe(ElectorState(), lease(""), ME, now=50.0)
    assert decide(state, ME, now=50.0, wall=WALL).action is Action.ACQUIRE


def test_our_own_lease_is_renewed_in_the_same_term() -> None:
    state = observe(ElectorState(), lease("pod-a", transitions=5), ME, now=10.0)
    plan = decide(state, ME, now=10.0, wall=WALL)
    assert plan.action is Action.RENEW and plan.lease is not None
    spec = plan.lease["spec"]
    assert spec["leaseTransitions"] == 5 and spec["acquireTime"] == "2026-01-01T00:00:00.000000Z"
    assert spec["renewTime"] == "2027-01-15T08:00:00.000000Z"


def test_the_leader_steps_down_at_the_renew_deadline_counted_from_sending() -> None:
    state = renewed(ElectorState(), lease("pod-a", version="9"), ME, sent_at=200.0, now=200.4)
    assert is_leading(state, ME, 200.0) and is_leading(state, ME, 209.99)
    assert not is_leading(state, ME, 210.0), "still acting after the renew deadline"


def test_no_moment_has_two_leaders_whatever_the_delays() -> None:
    """A renewal sent at t is applied by the server at t + d and seen by a standby at t + d + e (its next poll):
    the leader has stopped (t + renewDeadline) before the standby may act (seen + leaseDuration)."""
    for delay, poll in itertools.product((0.0, 0.5, 4.9), (0.0, 1.9)):
        leader = renewed(ElectorState(), lease("pod-a", version="9"), ME, sent_at=0.0, now=delay)
        standby_config = ElectionConfig(name="coalmine", namespace="coalmine-system", identity=OTHER)
        standby = observe(ElectorState(), lease("pod-a", version="9"), standby_config, now=delay + poll)
        first = next(
            t / 10 for t in range(0, 400) if decide(standby, standby_config, t / 10, WALL).action is Action.ACQUIRE
        )
        last = max(t / 10 for t in range(0, 400) if is_leading(leader, ME, t / 10))
        assert last < first, (delay, poll, last, first)
        assert first - last >= ME.lease_duration_s - ME.renew_deadline_s - 0.1


def test_a_lost_race_stops_acting_at_once() -> None:
    state = renewed(ElectorState(), lease("pod-a"), ME, sent_at=0.0, now=0.1)
    assert is_leading(state, ME, 1.0)
    assert not is_leading(lost_race(state), ME, 1.0)


def test_seeing_another_holder_ends_our_term() -> None:
    state = renewed(ElectorState(), lease("pod-a"), ME, sent_at=0.0, now=0.1)
    assert not is_leading(observe(state, lease(OTHER, version="12"), ME, now=1.0), ME, 1.0)


def test_release_frees_the_lease_only_when_we_hold_it() -> None:
    state = observe(ElectorState(), lease("pod-a", transitions=2), ME, now=0.0)
    release = released_lease(state, ME, WALL)
    assert release is not None
    assert release["spec"]["holderIdentity"] == "" and release["spec"]["leaseDurationSeconds"] == 1
    assert release["spec"]["leaseTransitions"] == 2 and release["metadata"]["resourceVersion"] == "7"
    assert released_lease(observe(ElectorState(), lease(OTHER), ME, now=0.0), ME, WALL) is None


@pytest.mark.parametrize(
    "durations",
    [(10.0, 10.0, 2.0), (15.0, 20.0, 2.0), (15.0, 10.0, 9.0), (15.0, 10.0, 0.0)],
)
def test_inconsistent_durations_are_refused(durations: tuple[float, float, float]) -> None:
    lease_s, renew_s, retry_s = durations
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        ElectionConfig("l", "ns", "me", lease_duration_s=lease_s, renew_deadline_s=renew_s, retry_period_s=retry_s)


def test_requests_are_bounded_below_the_renew_deadline() -> None:
    assert ME.timeout_s == 5.0
    with pytest.raises(ValueError, match="below the renew deadline"):
        ElectionConfig("l", "ns", "me", request_timeout_s=10.0)


def test_without_leader_election_the_operator_always_leads() -> None:
    assert Leadership().leading


# -- the campaign loop against an in-memory API with optimistic concurrency ---------------------------------------


class Store:
    """Leases by name with resourceVersions, as the API server keeps them: a stale write is refused with 409."""

    def __init__(self) -> None:
        self.objects: dict[str, Object] = {}
        self.version = 0

    def api(self) -> Api:
        return Api(self)


class Api:
    """One candidate's client; ``cut`` makes its writes fail (its keep-alive is killed)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cut = False

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        assert resource == LEASES
        found = self.store.objects.get(name)
        return copy.deepcopy(found) if found is not None else None

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        if self.cut:
            raise ApiUnavailable("Lease", 503, "blackholed")
        if body["metadata"]["name"] in self.store.objects:
            raise ApiConflict("Lease", 409, "exists")
        return self._store(body)

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object:
        if self.cut:
            raise ApiUnavailable("Lease", 503, "blackholed")
        stored = self.store.objects.get(body["metadata"]["name"])
        if stored is None:
            raise ApiNotFound("Lease", 404, "gone")
        if stored["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise ApiConflict("Lease", 409, "stale")
        return self._store(body)

    def _store(self, body: Mapping[str, Any]) -> Object:
        self.store.version += 1
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["resourceVersion"] = str(self.store.version)
        self.store.objects[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)


def fast(identity: str) -> ElectionConfig:
    return ElectionConfig("coalmine", "ns", identity, lease_duration_s=1.0, renew_deadline_s=0.6, retry_period_s=0.1)


async def watch_leaders(electors: list[LeaseElection], seconds: float) -> int:
    """Sample who leads every 10 ms; fail on a moment with two; how many samples had a leader."""
    led = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        leaders = [e.config.identity for e in electors if e.leading]
        assert len(leaders) <= 1, f"two leaders at once: {leaders}"
        led += bool(leaders)
        await asyncio.sleep(0.01)
    return led


@pytest.mark.timeout(30)
async def test_a_killed_keep_alive_hands_over_without_overlap_and_release_is_immediate() -> None:
    store = Store()
    api_a, api_b = store.api(), store.api()
    a, b = LeaseElection(api_a, fast("a")), LeaseElection(api_b, fast("b"))
    a.start()
    await asyncio.sleep(0.05)
    b.start()
    try:
        assert await watch_leaders([a, b], 0.5)
        assert a.leading and not b.leading
        api_a.cut = True  # a keeps running, but can no longer renew
        loop = asyncio.get_running_loop()
        cut_at = loop.time()
        await watch_leaders([a, b], 2.0)
        assert b.leading and not a.leading
        (_, a_end), (b_start, b_end) = a.terms[-1], b.terms[0]
        assert a_end is not None and b_end is None
        assert a_end <= cut_at + 0.6 + 0.05, "the old leader acted past its renew deadline"
        assert b_start - a_end >= 0.3, "the standby took over before the old leader's margin ran out"
        assert store.objects["coalmine"]["spec"]["leaseTransitions"] == 1
        # a, still cut off, never comes back while b renews
        api_a.cut = False
        await watch_leaders([a, b], 0.5)
        assert b.leading and not a.leading
        # b shuts down cleanly: the lease is free at once, a leads within a retry or two (not a lease duration)
        await b.aclose()
        released_at = loop.time()
        assert store.objects["coalmine"]["spec"]["holderIdentity"] == ""
        while not a.leading:
            await asyncio.sleep(0.01)
        assert loop.time() - released_at < 0.5
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.timeout(10)
async def test_guard_cancels_a_step_when_leadership_lapses() -> None:
    store = Store()
    api = store.api()
    elector = LeaseElection(api, fast("a"))
    elector.start()
    try:
        while not elector.leading:
            await asyncio.sleep(0.01)
        assert await elector.guard(asyncio.sleep(0.05, result="done")) == "done"
        api.cut = True
        cancelled = asyncio.Event()

        async def long_webhook() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with pytest.raises(NotLeading):
            await elector.guard(long_webhook())
        assert cancelled.is_set()
    finally:
        await elector.aclose()
