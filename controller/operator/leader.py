"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics: fencing for HA replicas.

Why not kopf peering: a peered replica that cannot refresh its keep-alive never stops acting, so a standby that
resumes after the keep-alive expired acts *while the old one still acts* (two ticks, two webhooks). A lease with a
renew deadline fences: the leader stops acting as soon as it has failed to renew for ``renew_deadline_s``, which is
shorter than ``lease_duration_s``; a standby takes the lease only when it has seen no change of the lease record for
``lease_duration_s`` *by its own clock* (the time it observed the record change, never the remote ``renewTime``, so
no clock needs to agree with another). Counting from the moment the leader *sent* its last successful renewal (the
server applied it later, and a standby saw it later still), by the time any standby may acquire, the old leader has
stopped for ``lease_duration_s - renew_deadline_s`` (5 s by default) — the margin for a tick in flight to finish
the one effect it had started, and for clocks that run at slightly different rates.

Every write carries the ``resourceVersion`` it was decided from, so two candidates never both win: the loser gets
409 and stays (or becomes) a standby. A clean shutdown releases the lease (empty holder), so a standby takes over at
its next retry instead of after the lease duration.

The decisions are pure functions of (state, observed lease, now) — :func:`observe`, :func:`decide`,
:func:`renewed`, :func:`lost_race`, :func:`is_leading` — tested directly; :class:`LeaseElection` is the async loop at
the edge. :class:`Leadership` (always leading) is what an operator without leader election has.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from controller.kube.api import LEASES, KubeApi, Object
from controller.kube.errors import ApiConflict, KubeError

log = logging.getLogger("coalmine.leader")

T = TypeVar("T")

LEASE_DURATION_S = 15.0
RENEW_DEADLINE_S = 10.0
RETRY_PERIOD_S = 2.0
JITTER = 1.2
"""client-go's jitter factor: standbys retry every ``retry_period_s`` to ``1.2 *`` that, so they do not all ask at
once; its rule ``renew_deadline > retry_period * JITTER`` leaves the leader at least one retry before it steps down."""


@dataclass(frozen=True)
class ElectionConfig:
    """``coalmine run --leader-elect``: which Lease, who this replica is, and client-go's three durations."""

    name: str
    namespace: str
    identity: str
    lease_duration_s: float = LEASE_DURATION_S
    renew_deadline_s: float = RENEW_DEADLINE_S
    retry_period_s: float = RETRY_PERIOD_S
    request_timeout_s: float | None = None
    """Bound of one request to the Lease; default half the renew deadline, so a hung request still leaves time
    for another attempt before the leader steps down."""

    def __post_init__(self) -> None:
        if not self.name or not self.namespace or not self.identity:
            raise ValueError("leader election needs a lease name, a lease namespace and an identity")
        if not 0 < self.retry_period_s * JITTER < self.renew_deadline_s < self.lease_duration_s:
            raise ValueError(
                "leader election needs lease duration > renew deadline > 1.2 × retry period > 0 "
                f"(got {self.lease_duration_s:g} s, {self.renew_deadline_s:g} s, {self.retry_period_s:g} s)"
            )
        if self.request_timeout_s is not None and not 0 < self.request_timeout_s < self.renew_deadline_s:
            raise ValueError("the lease request timeout must be below the renew deadline")

    @property
    def timeout_s(self) -> float:
        return self.request_timeout_s if self.request_timeout_s is not None else self.renew_deadline_s / 2


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's ``spec`` as client-go's leader election writes it."""

    holder: str = ""
    lease_duration_s: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_s=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_s,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


@dataclass(frozen=True)
class ElectorState:
    """What one candidate knows. Times are its own monotonic clock, never another machine's.

    ``observed_at``: when this candidate last saw the record *change* (or first saw it); ``renewed_at``: when it
    sent its last successful write as the holder (None: not the holder as far as it knows).
    """

    record: LeaseRecord | None = None
    version: str | None = None
    exists: bool = False
    observed_at: float | None = None
    renewed_at: float | None = None


class Action(StrEnum):
    CREATE = "create"  # no Lease yet: create it, holding it
    ACQUIRE = "acquire"  # free (no holder) or expired by our clock: take it, one more transition
    RENEW = "renew"  # ours: refresh renewTime
    WAIT = "wait"  # someone else holds it and it has not expired by our clock


@dataclass(frozen=True)
class Plan:
    action: Action
    lease: Object | None = None
    """The Lease to write (with the ``resourceVersion`` it was decided from); None to wait."""


def is_leading(state: ElectorState, config: ElectionConfig, now: float) -> bool:
    """Whether this candidate may act at ``now``: it holds the lease, renewed less than the renew deadline ago."""
    return state.renewed_at is not None and now < state.renewed_at + config.renew_deadline_s


def observe(state: ElectorState, lease: Mapping[str, Any] | None, config: ElectionConfig, now: float) -> ElectorState:
    """Take in the Lease as just read. The observation time moves only when the record changed (client-go's
    ``observedTime``): a holder that stopped renewing leaves the record as it was, and the clock runs out.

    Seeing another holder ends our leadership at once (it can only have acquired after we stopped renewing).
    """
    if lease is None:
        return replace(state, record=None, version=None, exists=False, observed_at=now, renewed_at=None)
    record = LeaseRecord.of(lease)
    version = str((lease.get("metadata") or {}).get("resourceVersion") or "") or None
    changed = not state.exists or record != state.record or state.observed_at is None
    renewed_at = state.renewed_at if record.holder == config.identity else None
    return replace(
        state,
        record=record,
        version=version,
        exists=True,
        observed_at=now if changed else state.observed_at,
        renewed_at=renewed_at,
    )


def expired(state: ElectorState, config: ElectionConfig, now: float) -> bool:
    """Whether the observed record is free or has gone ``leaseDurationSeconds`` unchanged by our clock."""
    record = state.record
    if record is None or not record.holder:
        return True
    duration = record.lease_duration_s if record.lease_duration_s > 0 else config.lease_duration_s
    return state.observed_at is None or now >= state.observed_at + duration


def decide(state: ElectorState, config: ElectionConfig, now: float, wall: float) -> Plan:
    """What to do with the Lease as last observed (``now``: our monotonic clock; ``wall``: for the record's times,
    which are for people and other tools — no decision reads them)."""
    stamp = microtime(wall)
    mine = LeaseRecord(config.identity, _seconds(config.lease_duration_s), stamp, stamp, 0)
    if not state.exists or state.record is None:
        return Plan(Action.CREATE, _lease(config, mine, None))
    record = state.record
    if record.holder == config.identity:
        renewal = replace(
            mine, acquire_time=record.acquire_time or stamp, transitions=record.transitions
        )  # still ours: the same term
        return Plan(Action.RENEW, _lease(config, renewal, state.version))
    if not expired(state, config, now):
        return Plan(Action.WAIT)
    return Plan(Action.ACQUIRE, _lease(config, replace(mine, transitions=record.transitions + 1), state.version))


def renewed(
    state: ElectorState, written: Mapping[str, Any], config: ElectionConfig, sent_at: float, now: float
) -> ElectorState:
    """After a successful write sent at ``sent_at``: we hold the lease until ``sent_at + renew_deadline``."""
    return replace(observe(state, written, config, now), renewed_at=sent_at)


def lost_race(state: ElectorState) -> ElectorState:
    """After a 409: the Lease changed since we read it — someone else won. Stop acting now; the next round
    re-reads (and, were it our own earlier write that landed late, simply renews)."""
    return replace(state, renewed_at=None)


def released_lease(state: ElectorState, config: ElectionConfig, wall: float) -> Object | None:
    """The write that gives the lease up on a clean shutdown (empty holder, as client-go's ReleaseOnCancel), or
    None when we do not hold it."""
    record = state.record
    if record is None or record.holder != config.identity:
        return None
    stamp = microtime(wall)
    free = LeaseRecord("", 1, stamp, stamp, record.transitions)
    return _lease(config, free, state.version)


def microtime(wall: float) -> str:
    """A Kubernetes ``MicroTime``: RFC 3339 with microseconds, UTC."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: float) -> int:
    return max(1, round(value))


def _lease(config: ElectionConfig, record: LeaseRecord, version: str | None) -> Object:
    metadata: dict[str, Any] = {"name": config.name, "namespace": config.namespace}
    if version:
        metadata["resourceVersion"] = version
    return {"apiVersion": LEASES.api_version, "kind": LEASES.kind, "metadata": metadata, "spec": record.spec()}


class NotLeading(Exception):
    """Leadership lapsed while a guarded step ran (:meth:`Leadership.guard`): the step was cancelled."""


class Leadership:
    """Always leading: an operator without leader election (one replica, tests, ``coalmine run`` by default)."""

    @property
    def leading(self) -> bool:
        return True

    def start(self) -> None:
        """Begin campaigning (no-op here)."""

    async def aclose(self) -> None:
        """Stop, giving up the lease if held (no-op here)."""

    async def guard(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``, cancelling it if leadership lapses meanwhile (then :class:`NotLeading`)."""
        return await awaitable

    async def until_leading(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for this replica to lead; whether it does."""
        return True


class LeaseElection(Leadership):
    """The campaign loop (see module doc). ``api`` is its own client, not the ticks': a tick's requests must never
    delay a renewal, so its calls run in two threads of its own, each bounded by ``config.timeout_s``.

    ``terms`` records each time this replica led, ``(start, end)`` on the monotonic clock (``end`` None while
    leading) — for logs and tests.
    """

    def __init__(
        self,
        api: KubeApi,
        config: ElectionConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.config = config
        self.state = ElectorState()
        self.terms: list[tuple[float, float | None]] = []
        self._clock = clock
        self._wall = wall
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="coalmine-lease")

    @property
    def leading(self) -> bool:
        return not self._stopping and is_leading(self.state, self.config, self._clock())

    def _left(self) -> float:
        """Seconds of leadership left (0 when not leading): until the renew deadline of the last renewal."""
        renewed_at = self.state.renewed_at
        if self._stopping or renewed_at is None:
            return 0.0
        return max(0.0, renewed_at + self.config.renew_deadline_s - self._clock())

    def start(self) -> None:
        if self._task is None:
            log.info(
                "leader election on Lease %s/%s as %s", self.config.namespace, self.config.name, self.config.identity
            )
            self._task = asyncio.get_running_loop().create_task(self._campaign(), name="coalmine-leader-election")

    async def guard(self, awaitable: Awaitable[T]) -> T:
        task = asyncio.ensure_future(awaitable)
        try:
            while (left := self._left()) > 0:  # wakes at the deadline (moved on by every renewal), never polls
                done, _ = await asyncio.wait({task}, timeout=left)
                if done:
                    return task.result()
            raise NotLeading()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})  # stopped before the caller goes on: no request of it is still sent

    async def until_leading(self, timeout_s: float) -> bool:
        # Leadership changes only in a campaign round, one per retry period: looking that often misses nothing.
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not self.leading and (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, self.config.retry_period_s))
        return self.leading

    async def aclose(self) -> None:
        """Stop acting at once, stop campaigning, then release the lease if we hold it (so a standby need not wait
        out the lease duration). Call it after the ticks have finished; a second call does nothing."""
        if self._stopping:
            return
        self._stopping = True
        self._end_term(self._clock())
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            current = await self._call(self.api.get, LEASES, self.config.namespace, self.config.name)
            self.state = observe(self.state, current, self.config, self._clock())
            release = released_lease(self.state, self.config, self._wall())
            if release is not None:
                await self._call(self.api.replace, LEASES, self.config.namespace, release)
                log.info("released Lease %s/%s", self.config.namespace, self.config.name)
        except (KubeError, TimeoutError) as error:
            log.warning(
                "could not release Lease %s/%s (a standby takes over when it expires): %s",
                self.config.namespace,
                self.config.name,
                error,
            )
        finally:
            close = getattr(self.api, "close", None)
            if callable(close):
                close()
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def _campaign(self) -> None:
        while True:
            await self._round()
            now = self._clock()
            leading = is_leading(self.state, self.config, now)
            self._note(leading, now)
            period = self.config.retry_period_s
            delay = period if leading else period * random.uniform(1.0, JITTER)
            if leading:  # wake on the deadline, so a lapse is logged when it happens
                assert self.state.renewed_at is not None
                delay = max(0.0, min(delay, self.state.renewed_at + self.config.renew_deadline_s - now))
            await asyncio.sleep(delay)
            self._note(is_leading(self.state, self.config, self._clock()), self._clock())

    async def _round(self) -> None:
        """One get, and at most one write: client-go's ``tryAcquireOrRenew``."""
        config = self.config
        try:
            lease = await self._call(self.api.get, LEASES, config.namespace, config.name)
        except (KubeError, TimeoutError) as error:
            log.warning("reading Lease %s/%s failed: %s", config.namespace, config.name, str(error) or "timed out")
            return
        self.state = observe(self.state, lease, config, self._clock())
        plan = decide(self.state, config, self._clock(), self._wall())
        if plan.lease is None:
            return
        write = self.api.create if plan.action is Action.CREATE else self.api.replace
        sent_at = self._clock()
        try:
            written = await self._call(write, LEASES, config.namespace, plan.lease)
        except ApiConflict:
            log.info("Lease %s/%s changed meanwhile: another replica leads", config.namespace, config.name)
            self.state = lost_race(self.state)
            return
        except (KubeError, TimeoutError) as error:
            log.warning(
                "%s Lease %s/%s failed: %s", plan.action.value, config.namespace, config.name, str(error) or "timed out"
            )
            return
        self.state = renewed(self.state, written, config, sent_at, self._clock())

    def _note(self, leading: bool, now: float) -> None:
        """Log and record a change of leadership (the lapse at its exact deadline)."""
        in_term = bool(self.terms) and self.terms[-1][1] is None
        if leading and not in_term:
            self.terms.append((now, None))
            log.info(
                "leading (Lease %s/%s, %d transitions)",
                self.config.namespace,
                self.config.name,
                self.state.record.transitions if self.state.record else 0,
            )
        elif not leading and in_term:
            renewed_at = self.state.renewed_at
            end = renewed_at + self.config.renew_deadline_s if renewed_at is not None else now
            self._end_term(min(end, now))
            log.warning(
                "stepped down: Lease %s/%s not renewed within %g s, or taken by another replica",
                self.config.namespace,
                self.config.name,
                self.config.renew_deadline_s,
            )

    def _end_term(self, at: float) -> None:
        if self.terms and self.terms[-1][1] is None:
            self.terms[-1] = (self.terms[-1][0], at)

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.config.timeout_s):
            return await loop.run_in_executor(self._pool, partial(function, *args))
