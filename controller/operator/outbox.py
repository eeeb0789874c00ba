"""Announce what the stored ``status.outbox`` holds: a tick's Events are told one tick after they are persisted.

The protocol (a transactional outbox kept in the object's own status):

1. A tick does not announce its decision. It queues one entry per Event (:mod:`controller.rollout.outbox`) in the
   same status patch that records the transition. If the operator dies before that write, nothing was announced,
   and the repeated tick announces only what *it* decides.
2. The next tick, before deciding, flushes the stored entries (:func:`entries_to_flush`, :func:`record_entries`,
   :func:`start_flush`): it records each Event under a
   name derived from the entry id (recording it again after a crash gets 409, so an Event is never duplicated),
   then runs the ``event`` webhooks and sends the notification (with the entry's key, the same on every
   redelivery). It waits up to :data:`DELIVERY_WAIT_S` for the deliveries it started while it decides
   (:meth:`Flush.settle`); entries that are done — delivered, or their retries exhausted — are removed by this tick's
   status patch. An entry still in flight stays stored and is remembered in ``OperatorContext.outbox_flights`` so
   later ticks do not send it again; an operator killed meanwhile sends it again after restart, with the same key.

So an announcement happens if and only if its transition was persisted, at most one tick later, at least once
(a receiver de-duplicates a redelivery by the notification ``id``).

When a tick's own decision fails to act, it writes only the outbox removal (:meth:`Flush.outbox_patch`), not its
decision: the flushed entries must not be flushed again from the stored status, and memory alone would not survive
a restart (after which their Events would be recorded again only as 409s, but their notifications re-sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.operator.announce import deliver, entry_event_name, record_event, spawn
from controller.operator.context import OperatorContext
from controller.rollout.outbox import OUTBOX_KEY, OutboxEntry, merged, read_outbox
from controller.rollout.spec import CanarySpec
from controller.rollout.status import CanaryStatus

log = logging.getLogger("coalmine.outbox")

DELIVERY_WAIT_S = 3.0
"""How long a tick waits for the deliveries it started before writing its status (then they go on in the
background and their entries stay in the outbox until done)."""

REMEMBERED_DONE = 32
"""Delivered entry ids kept in memory per object, so the same Event decided again from the same stored status (the
outbox is not part of a tick's origin) is recognised as already announced instead of queued again."""

EVENT_ATTEMPTS = 3
"""Tries to record one Event before it is logged and skipped (its webhooks and notification still go out)."""


@dataclass(frozen=True)
class Pending:
    """An object's stored outbox entries, and the ones this tick announces (see :func:`entries_to_flush`)."""

    uid: str
    stored: tuple[OutboxEntry, ...]
    fresh: tuple[OutboxEntry, ...]


@dataclass(frozen=True)
class Flush:
    """The stored entries of one tick, with the deliveries started for them (see module doc)."""

    uid: str
    stored: tuple[OutboxEntry, ...]
    started: tuple[asyncio.Task[None], ...]
    deadline: float

    async def settle(self, ctx: OperatorContext) -> tuple[OutboxEntry, ...]:
        """Wait (until the deadline) for this tick's deliveries; the stored entries still in flight, to keep."""
        pending = [task for task in self.started if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, self.deadline - asyncio.get_running_loop().time()))
        flights = ctx.outbox_flights.get(self.uid, {})
        for key, task in flights.items():
            if task is not None and task.done():
                flights[key] = None  # done: only the id is remembered
        kept = tuple(entry for entry in self.stored if flights.get(entry.id) is not None)
        _prune(flights)
        return kept

    def in_flight(self) -> bool:
        """Whether a delivery this tick started is still running (:meth:`settle` would wait for it)."""
        return any(not task.done() for task in self.started)

    def known(self, ctx: OperatorContext) -> set[str]:
        """Ids already queued or announced: stored now, or delivered recently by this process."""
        return {entry.id for entry in self.stored} | set(ctx.outbox_flights.get(self.uid, {}))

    def outbox_patch(self, kept: Sequence[OutboxEntry]) -> dict[str, Any] | None:
        """A status patch that only removes the entries that are done (``None``: nothing to remove)."""
        if len(kept) == len(self.stored):
            return None
        return {OUTBOX_KEY: merged(kept, ())}


def entries_to_flush(ctx: OperatorContext, canary: Mapping[str, Any], raw_status: Mapping[str, Any]) -> Pending:
    """The stored entries, and those of them to announce now: not in flight or delivered by this process.

    Recording their Events (:func:`record_entries`, blocking) and starting their deliveries (:func:`start_flush`)
    are separate steps so a tick can record them in the same worker-thread call as its other reads.
    """
    uid = str((canary.get("metadata") or {}).get("uid", ""))
    stored = read_outbox(raw_status)
    flights = ctx.outbox_flights.get(uid, {})
    return Pending(uid, stored, tuple(entry for entry in stored if entry.id not in flights))


async def start_flush(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    raw_status: Mapping[str, Any],
    target: Mapping[str, Any] | None,
    pending: Pending,
) -> Flush:
    """Start the deliveries of ``pending.fresh``, whose Events :func:`record_entries` has recorded (in order).
    ``raw_status`` is the stored status, written with the entries: the messages show its phase, weight, revision
    and evidence; ``target`` (the workload) gives the image."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELIVERY_WAIT_S
    if not pending.fresh:
        return Flush(pending.uid, pending.stored, (), deadline)
    status = CanaryStatus.from_dict(raw_status)
    started = tuple(spawn(_deliver(ctx, canary, spec, status, target, entry)) for entry in pending.fresh)
    flights = ctx.outbox_flights.setdefault(pending.uid, {})
    for entry, task in zip(pending.fresh, started, strict=True):
        flights[entry.id] = task
    return Flush(pending.uid, pending.stored, started, deadline)


async def announce_entries(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    status: CanaryStatus,
    target: Mapping[str, Any] | None,
    entries: Sequence[OutboxEntry],
) -> tuple[asyncio.Task[None], ...]:
    """Record ``entries``' Events now (in their order, through ``ctx.blocking``), then start their deliveries."""
    if not entries:
        return ()
    await ctx.blocking(record_entries, ctx, canary, entries)
    return tuple(spawn(_deliver(ctx, canary, spec, status, target, entry)) for entry in entries)


async def flush_now(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    status: CanaryStatus,
    target: Mapping[str, Any] | None,
    entries: Sequence[OutboxEntry],
) -> None:
    """Announce ``entries`` in this tick, waiting up to :data:`DELIVERY_WAIT_S`: for an object being released
    (its finalizer removed), which has no later tick. Its memory is forgotten."""
    started = await announce_entries(ctx, canary, spec, status, target, entries)
    if started:
        await asyncio.wait(started, timeout=DELIVERY_WAIT_S)
    forget(ctx, str((canary.get("metadata") or {}).get("uid", "")))


def forget(ctx: OperatorContext, uid: str) -> None:
    """Drop what this process remembers of an object's outbox (it is gone)."""
    ctx.outbox_flights.pop(uid, None)


def record_entries(ctx: OperatorContext, canary: Mapping[str, Any], entries: Sequence[OutboxEntry]) -> None:
    """Record the entries' Events, in order (blocking-style: run it with ``ctx.blocking``)."""
    for entry in entries:
        name = entry_event_name(canary, entry.id)
        for _ in range(EVENT_ATTEMPTS):
            if record_event(ctx, canary, entry.event, name):
                break


async def _deliver(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    status: CanaryStatus,
    target: Mapping[str, Any] | None,
    entry: OutboxEntry,
) -> None:
    """One entry's webhooks and notification; an unexpected error is logged and ends it (never retried forever)."""
    try:
        await deliver(ctx, canary, spec, status, target, entry.event, entry.key)
    except Exception:
        log.exception("announcing %s (%s) failed", entry.reason, entry.id)


def _prune(flights: dict[str, asyncio.Task[None] | None]) -> None:
    """Keep running deliveries and the newest :data:`REMEMBERED_DONE` done ids."""
    done = [key for key, task in flights.items() if task is None]
    for key in done[: max(0, len(done) - REMEMBERED_DONE)]:
        del flights[key]
