"""The kopf registrations every rollout kind shares: seeding the target index, a fixed-period tick, and deletion.

The tick runs in a ``@kopf.daemon`` per object, which writes each tick's status itself (a merge patch of the
``status`` subresource) before the next tick starts, so progress is persisted tick by tick and a restarted operator
resumes from status. A daemon rather than a ``@kopf.timer``: a timer costs kopf's handler bookkeeping and a patch
of its own on every call, which at thousands of Canaries was a sixth of the operator's CPU, and kopf's copy of the
object can lag behind the status just written — the daemon decides from the write's answer until the watch catches
up (:func:`controller.operator.writes.current_view`), where a timer had to skip the tick.

The tick itself is :func:`controller.operator.reconcile.reconcile` with the kind's
:class:`~controller.rollout.kinds.Strategy`; who may act on a target is
:func:`controller.rollout.ownership.blocker` over the indexes of :mod:`controller.operator.owners`. Handlers only
move data between kopf and those functions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import kopf

from controller.kube.api import BLUEGREENS, CANARIES, Resource
from controller.kube.errors import ApiConflict, ApiNotFound, KubeError
from controller.operator.context import OperatorContext, selector_string
from controller.operator.owners import confirm_owner, seed
from controller.operator.reconcile import TickResult, reconcile
from controller.operator.schedule import first_slot, latest_slot, tick_phase
from controller.operator.sharding import Shard, stale_finalizers
from controller.operator.specs import forget_spec
from controller.operator.writes import (
    current_view,
    forget_writes,
    optimistic_patch,
    remember_read,
    remember_write,
    same_decision_inputs,
    status_patch,
)
from controller.rollout.kinds import Strategy
from controller.rollout.ownership import Blocker

GROUP, VERSION = "coalmine.dev", "v1alpha1"

log = logging.getLogger("coalmine.handlers")

Conflict = Callable[[Mapping[str, Any], Mapping[str, Any]], Blocker | None]
"""(body, kind → target index) → who owns this object's target instead of it, or None."""

RESOURCES = {"Canary": CANARIES, "BlueGreen": BLUEGREENS}


def label_filter(selector: Sequence[tuple[str, str | None]]) -> dict[str, Any] | None:
    """kopf's ``labels=`` filter for ``OperatorConfig.selector`` (None: no filter; a None value: label present)."""
    if not selector:
        return None
    return {key: kopf.PRESENT if value is None else value for key, value in selector}


def shard_filter(shard: Shard) -> Callable[..., bool] | None:
    """kopf's ``when=`` filter for ``OperatorConfig.shard`` (None with one shard: no filter, nothing to call).

    kopf checks it on each watch event before it spawns a daemon or adds a finalizer, so another shard's object never
    gets a tick, a finalizer or an entry in the target index here. It only looks at the name, which never changes,
    so a daemon once started is never stopped by it.
    """
    if shard.everything:
        return None

    def in_shard(*, namespace: str | None, name: str | None, **_: Any) -> bool:
        return shard.owns(namespace, name)

    return in_shard


def _owned_by(shard: Shard, body: Mapping[str, Any]) -> bool:
    meta = body.get("metadata") or {}
    return shard.owns(meta.get("namespace"), meta.get("name"))


def register_kind(
    registry: kopf.OperatorRegistry,
    *,
    plural: str,
    strategy: Strategy[Any],
    conflict: Conflict,
    tick_seconds: float,
    resource: Resource,
    labels: Mapping[str, Any] | None = None,
    when: Callable[..., bool] | None = None,
) -> None:
    """Register the startup, tick and deletion handlers of one kind (``labels``: ``coalmine run --selector``;
    ``when``: :func:`shard_filter` for ``--shard``)."""
    kind = strategy.kind

    async def seed_index(memo: kopf.Memo, **_: Any) -> None:
        """Know every object's target before any tick acts (see controller.operator.owners)."""
        ctx: OperatorContext = memo["ctx"]
        config = ctx.config
        keep = None if config.shard.everything else partial(_owned_by, config.shard)
        selector = selector_string(config.selector)
        try:
            await ctx.blocking(seed, ctx.api, resource, config.namespaces, selector, ctx.target_indexes[kind], keep)
        except KubeError as error:
            raise kopf.TemporaryError(f"listing {plural} failed: {error}", delay=1.0) from error

    kopf.on.startup(id=f"{kind.lower()}_index", registry=registry)(seed_index)

    async def owner_problem(ctx: OperatorContext, view: Mapping[str, Any]) -> str | None:
        """Why ``view`` must not act (another object owns its target), or None; an owner that is gone is dropped."""
        ctx.target_indexes[kind].note(view)
        found = conflict(view, ctx.target_indexes)
        while found is not None:
            index = ctx.target_indexes[found.kind]
            args = (ctx.api, RESOURCES[found.kind], found.key, found.name, index, time.time())
            if await ctx.blocking(confirm_owner, *args):
                return found.message()
            found = conflict(view, ctx.target_indexes)
        return None

    async def one_tick(ctx: OperatorContext, body: kopf.Body, now: float) -> None:
        if not ctx.leadership.leading:
            return  # a standby (coalmine run --leader-elect): the daemon keeps its schedule, the tick does nothing
        view = current_view(ctx, body)
        started = time.monotonic()
        problem = await owner_problem(ctx, view)
        status, _ = await tick_and_write(ctx, resource, strategy, body, view, now, conflict=problem)
        meta = view.get("metadata") or {}
        workload = (view.get("spec") or {}).get("targetRef", {}).get("name")
        ctx.metrics.observe_status(kind, meta["name"], meta["namespace"], status, workload=workload)
        ctx.metrics.observe_tick(time.monotonic() - started)

    async def ticks(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
        """One tick per slot of the object's grid (:mod:`controller.operator.schedule`) until kopf stops the daemon
        (deletion, a peering pause) or the operator shuts down (kopf runs the cleanup, which closes the context,
        before it stops daemons).

        The engine decides with the slot's time as ``now``. A tick that overruns its period is followed at once by
        the tick for the latest slot passed. A tick that fails is logged and the next one runs on schedule (every
        action is idempotent).
        """
        ctx: OperatorContext = memo["ctx"]
        uid = str(body["metadata"]["uid"])
        lock = ctx.tick_locks.setdefault(uid, asyncio.Lock())
        loop = asyncio.get_running_loop()
        phase = tick_phase(uid, tick_seconds)
        slot = time.time()  # the first tick at once: a new object, or a restarted operator, resumes without waiting
        starting = True
        stop = asyncio.ensure_future(_until_stopped(stopped))
        try:
            while not stopped and not ctx.closing:
                # Sleep until the slot by the wall clock, and by the loop's clock too: a wall-clock step back cannot
                # stall.
                latest = loop.time() + max(0.0, slot - time.time())
                while not stopped and (left := min(slot - time.time(), latest - loop.time())) > 0:
                    await _sleep_unless(stop, left)
                if stopped:
                    break
                async with lock:
                    if ctx.closing:
                        break
                    slot = max(slot, latest_slot(time.time(), phase, tick_seconds))
                    try:
                        await one_tick(ctx, body, slot)
                    except Exception:
                        meta = body.get("metadata") or {}
                        log.exception("%s %s/%s: the tick failed", kind, meta.get("namespace"), meta.get("name"))
                # Then onto the object's grid, the first slot at least half a period on (no two ticks back to back).
                slot = first_slot(slot + tick_seconds / 2, phase, tick_seconds) if starting else slot + tick_seconds
                starting = False
        finally:
            stop.cancel()
        if stopped.reason and stopped.reason & kopf.DaemonStoppingReason.FILTERS_MISMATCH:
            ctx.target_indexes[kind].drop(str(body["metadata"]["uid"]))  # no longer ours (its labels changed)

    kopf.daemon(
        GROUP,
        VERSION,
        plural,
        id=f"{kind.lower()}_tick",
        cancellation_timeout=1.0,  # after the settings' instant_exit_timeout: a tick half-way may finish first
        labels=labels,
        when=when,
        registry=registry,
    )(ticks)

    async def deleted(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        """Run ticks with ``deleting`` set until the engine releases the object (``revertOnDeletion`` restores).

        The ticks run here, one per period, each writing its status as the daemon's do (kopf stops the daemon when
        deletion starts), rather than by failing the handler until it is done: kopf logs every retry of a handler as
        an ERROR and patches its progress annotation each time, and a restore is not an error."""
        ctx: OperatorContext = memo["ctx"]
        uid = str(body["metadata"]["uid"])
        while True:
            if not ctx.leadership.leading and await _standby_until_gone(ctx, resource, body):
                return  # the leader restored and released it; the object is gone, nothing is left to do here
            async with ctx.tick_locks.setdefault(uid, asyncio.Lock()):  # the daemon's last tick finishes first
                _, result = await tick_and_write(ctx, resource, strategy, body, current_view(ctx, body), time.time())
            if result.released:
                break
            if ctx.closing:  # the next operator (or the leader) goes on from the status written so far
                raise kopf.TemporaryError(f"stopping while restoring the target before the {kind} goes", delay=1.0)
            await asyncio.sleep(ctx.config.tick_seconds)
        meta = body.get("metadata") or {}
        if stale_finalizers(list(meta.get("finalizers") or ()), ctx.config.shard.finalizer) != list(
            meta.get("finalizers") or ()
        ):  # other shard layouts' names: nobody else would ever take them off (applied like kopf's own removal)
            patch.fns.append(partial(_drop_stale_finalizers, own=ctx.config.shard.finalizer))
        ctx.tick_locks.pop(uid, None)
        ctx.target_indexes[kind].drop(uid)
        forget_writes(ctx, uid)
        forget_spec(ctx, strategy, body)
        ctx.metrics.forget(kind, meta["name"], meta["namespace"])

    kopf.on.delete(GROUP, VERSION, plural, id=f"{kind.lower()}_deleted", labels=labels, when=when, registry=registry)(
        deleted
    )


STANDBY_LOOK_S = 5.0
"""How often a standby looks whether an object being deleted is gone yet (one GET each, on the standby only)."""


async def _standby_until_gone(ctx: OperatorContext, resource: Resource, body: kopf.Body) -> bool:
    """A standby's deletion handler: wait, quietly, until the object is gone (True) or this replica leads (False).

    The leader restores the target and removes the finalizer both replicas share. A standby must not act, and must
    not fail either: a kopf handler that raises is logged as an ERROR and retried with a patch of its progress
    annotation each time, so a standby retrying every second wrote to the object and logged an error per second
    for as long as the leader took to restore. Waiting in the handler instead writes nothing; when the object is
    gone, returning lets kopf finish (its finalizer removal finds nothing to patch).
    """
    meta = body.get("metadata") or {}
    namespace, name, uid = str(meta.get("namespace") or ""), str(meta["name"]), str(meta.get("uid") or "")
    while not ctx.closing:
        if await ctx.leadership.until_leading(STANDBY_LOOK_S):
            return False
        try:
            current = await ctx.blocking(ctx.api.get, resource, namespace, name)
        except KubeError as error:
            log.debug("%s/%s: cannot look whether it is gone yet: %s", namespace, name, error)
            continue
        if current is None or str((current.get("metadata") or {}).get("uid") or "") != uid:
            return True
    raise kopf.TemporaryError("the operator is stopping", delay=1.0)


def _drop_stale_finalizers(body: dict[str, Any], *, own: str) -> None:
    meta = body.get("metadata") or {}
    if "finalizers" in meta:
        meta["finalizers"] = stale_finalizers(list(meta["finalizers"]), own)


async def tick_and_write(
    ctx: OperatorContext,
    resource: Resource,
    strategy: Strategy[Any],
    body: Mapping[str, Any],
    view: Mapping[str, Any],
    now: float,
    *,
    conflict: str | None = None,
) -> tuple[dict[str, Any], TickResult]:
    """One tick decided from ``view`` (:func:`current_view` of kopf's ``body``), its status written; the status now
    believed stored, and the tick's result."""
    stored = dict(view.get("status") or {})

    def write(patch: Mapping[str, Any]) -> None:
        changes = status_patch(stored, patch)
        if changes:
            _write_status(ctx, resource, body, view, changes)

    def current() -> bool:
        return still_current(ctx, resource, body, view)

    result = await reconcile(ctx, view, now, conflict=conflict, strategy=strategy, write=write, current=current)
    if result.status_patch is not None and not result.written:
        await ctx.blocking(write, result.status_patch)
    return {**stored, **(result.status_patch or {})}, result


async def _until_stopped(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


def _wake(waiter: asyncio.Future[None], *_: Any) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _sleep_unless(stop: asyncio.Future[None], seconds: float) -> None:
    """Sleep ``seconds``, or until ``stop`` is done.

    Not ``await stopped.wait(seconds)``: kopf makes that two tasks and a ``TimeoutError`` per sleep, and as each lives
    a whole tick period, thousands of Canaries left thousands of them as cyclic garbage only a full collection of
    the heap could free (see ``tune_garbage_collector``). This leaves nothing behind: one future, one timer."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(seconds, _wake, woken)
    on_stop = partial(_wake, woken)
    stop.add_done_callback(on_stop)
    try:
        await woken
    finally:
        timer.cancel()
        stop.remove_done_callback(on_stop)


def _write_status(
    ctx: OperatorContext,
    resource: Resource,
    body: Mapping[str, Any],
    view: Mapping[str, Any],
    changes: Mapping[str, Any],
) -> None:
    """Patch the status subresource and keep the answer for the next tick (see ``current_view``).

    A failed write is logged: the decision is simply not persisted, and the next tick makes it again from the same
    status (every action is idempotent, Events are named by their outbox entry).
    """
    meta = view.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    try:
        answer = ctx.api.patch(resource, namespace, name, optimistic_patch(view, changes), subresource="status")
    except ApiNotFound:
        return  # deleted meanwhile: kopf stops this daemon
    except ApiConflict:
        stored = _fetch(ctx, resource, view)
        if stored is None or not same_decision_inputs(view, stored):
            log.info("%s/%s: the object changed since this tick read it; the next tick decides again", namespace, name)
            _remember_stored(ctx, body, stored)
            return
        try:  # only metadata moved on (kopf's finalizer, a label): the decision stands, written at the new version
            answer = ctx.api.patch(resource, namespace, name, optimistic_patch(stored, changes), subresource="status")
        except KubeError as error:
            log.info("%s/%s: writing the status failed, the next tick decides again: %s", namespace, name, error)
            _remember_stored(ctx, body, _fetch(ctx, resource, view))
            return
    except KubeError as error:
        log.warning("%s/%s: writing the status failed, the next tick decides again: %s", namespace, name, error)
        return
    remember_write(ctx, body, answer)


def still_current(ctx: OperatorContext, resource: Resource, body: Mapping[str, Any], view: Mapping[str, Any]) -> bool:
    """Whether the object still has the ``resourceVersion`` the tick decides from (blocking-style).

    Checked before a tick's first effect that precedes its status write (router and Deployment writes, recording and
    delivering the outbox's announcements): a status write refused with 409 cannot undo traffic already moved. The
    check is a status merge patch carrying only that version: a no-op for the server (no new version, no watch
    event) that answers 409 when the object moved on, and needs no permission beyond the status patch the operator
    already has. Not confirmed (409 or any error): the tick does nothing and the object is re-read.
    """
    meta = view.get("metadata") or {}
    version = str(meta.get("resourceVersion") or "")
    if not version:
        return True
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    try:
        ctx.api.patch(resource, namespace, name, {"metadata": {"resourceVersion": version}}, subresource="status")
    except ApiConflict:
        stored = _fetch(ctx, resource, view)
        if stored is not None and same_decision_inputs(view, stored):
            return True  # only metadata moved on: the decision stands (the status write retries at the new version)
        log.info("%s/%s: decided from an old copy (%s); not acting, re-reading", namespace, name, version)
        _remember_stored(ctx, body, stored)
        return False
    except KubeError as error:
        log.warning("%s/%s: cannot confirm the copy is current, not acting: %s", namespace, name, error)
        return False
    return True


def _fetch(ctx: OperatorContext, resource: Resource, view: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object as stored, by an empty status merge patch: a no-op that answers the stored object (the operator's
    RBAC has no ``get`` on its own kinds). None when the API cannot say."""
    meta = view.get("metadata") or {}
    try:
        return ctx.api.patch(
            resource, str(meta.get("namespace", "")), str(meta.get("name", "")), {}, subresource="status"
        )
    except KubeError:
        return None


def _remember_stored(ctx: OperatorContext, body: Mapping[str, Any], stored: Mapping[str, Any] | None) -> None:
    """Let the next tick decide from ``stored`` (:func:`remember_read`), or from kopf's copy when it is unknown."""
    if stored is None:
        forget_writes(ctx, str((body.get("metadata") or {}).get("uid", "")))
        return
    remember_read(ctx, body, stored)
