"""One tick for one Canary: validate → gather → flush the outbox → plan → look and hooks → step → act → status.

The decisions are :func:`controller.rollout.machine.plan`/:func:`~controller.rollout.machine.step` and
:func:`analysis.judge.judge`; this module only moves data between them and the cluster. The official
``kubernetes`` client is blocking, so its calls run in the operator's bounded worker threads (``ctx.blocking``);
the look's Prometheus queries, hooks and notifications are asyncio on the event loop.

If an action fails, the new status is **not** written: the cluster may be half-way, and the next tick recomputes
the same decision from the same status and retries it (every action is idempotent). The look's window then simply
grows to cover the missed time, so no request is counted twice.

A tick announces nothing it decides: its Events go into ``status.outbox`` with the new status, and the next tick
announces them (:mod:`controller.operator.outbox`), so nothing is told about a transition that was never written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from analysis.judge import judge
from analysis.policy import JudgePolicy
from analysis.verdict import Verdict
from controller.hooks import HookPayload, hook_phase, run_hooks
from controller.kube.errors import KubeError
from controller.operator.act import act
from controller.operator.announce import notifications_to_send, record_events, tick_origin
from controller.operator.context import OperatorContext
from controller.operator.gather import Gathered, gather
from controller.operator.hookrun import Aborted, hook_budget, run_bounded
from controller.operator.leader import NotLeading
from controller.operator.looks import build_look
from controller.operator.outbox import entries_to_flush, flush_now, forget, record_entries, start_flush
from controller.operator.specs import parse_cached
from controller.rollout.decision import Event, EventType, Reason
from controller.rollout.invalid import invalid_status_patch, is_reported
from controller.rollout.kinds import CANARY, Strategy
from controller.rollout.observations import HookOutcome
from controller.rollout.outbox import OUTBOX_KEY, OutboxEntry, build_entries, merged
from controller.rollout.spec import CanarySpec, HookType
from controller.rollout.status import CanaryStatus
from controller.rollout.validation import InvalidSpecError
from controller.routers import Router, router_for

log = logging.getLogger("coalmine.reconcile")

NOTIFICATIONS_KEY = "notifications"


@dataclass(frozen=True)
class TickResult:
    """What the handler writes: a status patch (``None``: write nothing) and whether deletion may proceed.

    ``written``: the patch was already handed to the tick's ``write`` (see :func:`reconcile`)."""

    status_patch: dict[str, Any] | None
    released: bool = False
    written: bool = False


StatusWriter = Callable[[Mapping[str, Any]], None]
"""Writes a tick's status patch (blocking; called in the same ``ctx.blocking`` call that acted)."""


@dataclass(frozen=True)
class _Read:
    """What a tick reads before deciding: the cluster (in a worker thread), then the look (on the event loop)."""

    gathered: Gathered
    verdict: Verdict | None
    stale: bool = False


async def reconcile(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    now: float,
    *,
    conflict: str | None = None,
    strategy: Strategy[Any] = CANARY,
    write: StatusWriter | None = None,
    current: Callable[[], bool] | None = None,
) -> TickResult:
    """Run one tick (see module doc) of a Canary, or of another kind given its ``strategy`` (a BlueGreen).
    ``conflict`` names another rollout already managing the same target.

    The blocking work runs in two ``ctx.blocking`` calls: one reads (the cluster, the outbox's Events), one acts;
    the look's queries run on the event loop between them. With ``write``, the status is written by that second
    call right after the actions succeed (``written`` in the result) when no announcement is still being
    delivered; otherwise the caller writes it.

    ``current`` (blocking) says whether the object still has the version ``canary`` was read at; it is asked
    before the tick's first effect that precedes its status write (recording and delivering the outbox, acting),
    and when it says no the tick does nothing at all (:func:`controller.handlers.common.still_current`). It asks
    the API server, so it is asked once per tick where that is enough: the outbox is recorded right after the look,
    and when no webhook ran since that confirmation (the only await of the tick that can last) the act relies on
    it; leadership is asked again before each effect.
    """
    confirmation = _Confirmation(current)
    current = _while_leading(ctx, confirmation)  # leader election: every effect is also fenced by leadership
    meta = canary.get("metadata") or {}
    raw_status = canary.get("status") or {}
    generation = int(meta.get("generation") or 0)
    try:
        if conflict is not None:
            raise InvalidSpecError(())
        typed = parse_cached(ctx, strategy, canary)
    except InvalidSpecError as error:
        message = conflict or "invalid spec: " + "; ".join(f"{p.path}: {p.message}" for p in error.problems)
        return await _refuse(ctx, canary, raw_status, message, generation, now, current)

    spec = strategy.view(typed)
    status = CanaryStatus.from_dict(raw_status)
    router = router_for(spec, canary, ctx.api)
    probes = strategy.plan(typed, status, now)
    policy = strategy.policy(typed, status)
    pending = entries_to_flush(ctx, canary, raw_status)
    window = probes.window if probes.metrics else None
    try:
        read = await _read(ctx, router, canary, spec, policy, status, window, pending.fresh, current)
    except KubeError as error:
        log.warning("%s/%s: cannot read the cluster: %s", meta.get("namespace"), meta.get("name"), error)
        return TickResult(None)
    if read.stale:
        return TickResult(None)  # decided from an old copy: nothing announced, nothing done, nothing written
    if not ctx.leadership.leading:
        return TickResult(None)  # stepped down while reading: no delivery or webhook starts, nothing is written
    target = read.gathered.target
    flush = await start_flush(ctx, canary, spec, raw_status, target, pending)
    try:
        hooks = await ctx.leadership.guard(_hooks(ctx, canary, spec, status, probes.hooks, now))
    except NotLeading:
        return TickResult(None)  # stepped down while the webhooks ran: they were stopped, the new leader decides
    except Aborted:
        return TickResult(flush.outbox_patch(await flush.settle(ctx)))  # decide next tick, with the abort first
    observations = replace(read.gathered.observations, verdict=read.verdict, hooks=hooks)
    decision = strategy.step(typed, status, observations, now)
    sent = ((raw_status.get(NOTIFICATIONS_KEY) or {}).get("sentKeys")) or ()
    # The same for this tick repeated after a crash: no duplicate Event/message. A digest of the whole status, so it
    # is taken only when there are Events to name (most ticks have none).
    origin = tick_origin(raw_status) if decision.events else ""
    notable, remembered = notifications_to_send(
        canary, decision.status, decision.events, sent, origin=origin, webhooks=spec.analysis.webhooks
    )
    entries = build_entries(str(meta.get("uid", "")), origin, decision.events, _keys(decision.events, notable))

    def compose(kept: tuple[OutboxEntry, ...], known: set[str], released: bool) -> dict[str, Any]:
        patch = decision.status.to_dict()
        patch[OUTBOX_KEY] = None if released else merged(kept, entries, known=known)
        if remembered != tuple(sent):
            patch[NOTIFICATIONS_KEY] = {"sentKeys": list(remembered)}
        return patch

    early = write is not None and not flush.in_flight()  # the outbox to keep is known before acting
    kept = await flush.settle(ctx) if early else ()
    known = flush.known(ctx) if early else set()

    recheck = bool(probes.hooks) or not confirmation.confirmed  # a webhook may have run for seconds since

    def act_then_write() -> tuple[bool, dict[str, Any] | None] | None:
        if decision.actions and not (current() if recheck else ctx.leadership.leading):
            return None  # decided from an old copy: acting could move traffic back to an older step
        released = act(ctx.api, router, canary, spec, target, decision.actions)
        if not early or released or write is None:
            return released, None
        patch = compose(kept, known, released)
        write(patch)
        return released, patch

    try:
        acted = await ctx.blocking(act_then_write)
    except KubeError as error:
        log.warning("%s/%s: acting failed, will retry: %s", meta.get("namespace"), meta.get("name"), error)
        failure = Event(EventType.WARNING, Reason.RECONCILE_FAILED, f"Could not apply the decision, retrying: {error}")
        await ctx.blocking(record_events, ctx, canary, (failure,))
        return TickResult(flush.outbox_patch(await flush.settle(ctx)))  # the decision is not written, the flush is
    if acted is None:
        return TickResult(None)
    released, written = acted
    if written is not None:
        return TickResult(written, written=True)
    kept = await flush.settle(ctx)
    known = flush.known(ctx)
    if released:
        # No later tick will see this object: announce its last Events now. Killed before the finalizer goes, the
        # deletion handler runs this tick again from the same status (same Event names, same keys).
        fresh = [entry for entry in entries if entry.id not in known]
        await flush_now(ctx, canary, spec, decision.status, target, fresh)
    return TickResult(compose(kept, known, released), released)


class _Confirmation:
    """The tick's ``current`` check (None: nothing to check), remembering whether it last confirmed the copy."""

    def __init__(self, check: Callable[[], bool] | None) -> None:
        self._check = check
        self.confirmed = False

    def __call__(self) -> bool:
        self.confirmed = self._check is None or self._check()
        return self.confirmed


def _record_if_current(
    ctx: OperatorContext, canary: Mapping[str, Any], fresh: Sequence[OutboxEntry], current: Callable[[], bool]
) -> bool:
    """Record the outbox's Events (blocking: the official client); ``False`` when the object turned out stale first
    (its outbox may be announced already: not again)."""
    if not current():
        return False
    record_entries(ctx, canary, fresh)
    return True


async def _read(
    ctx: OperatorContext,
    router: Router,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    policy: JudgePolicy,
    status: CanaryStatus,
    window: tuple[float, float] | None,
    fresh: Sequence[OutboxEntry],
    current: Callable[[], bool],
) -> _Read:
    """Gather (in a worker thread), run the look's queries (on the event loop) and the judge when a look is due,
    then record the outbox's Events (in a worker thread) once the copy is confirmed current. The judge is pure CPU;
    the first classic Mann-Whitney comparison in the process imports scipy.stats, which holds the event loop once
    for about a second."""
    gathered = await ctx.blocking(gather, ctx.api, router, canary, spec)
    verdict = None
    if window is not None:
        meta = canary.get("metadata") or {}
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
        look = await build_look(ctx, name, namespace, spec, policy, window)
        verdict = judge(policy, look, status.judge)
    if fresh and not await ctx.blocking(_record_if_current, ctx, canary, fresh, current):
        return _Read(gathered, None, stale=True)
    return _Read(gathered, verdict)


def _while_leading(ctx: OperatorContext, current: Callable[[], bool] | None) -> Callable[[], bool]:
    """``current`` (when given) and then leadership, asked right before each effect: a replica that stepped down
    (:mod:`controller.operator.leader`) starts none, even in a tick that began while it led."""

    def check() -> bool:
        return (current is None or current()) and ctx.leadership.leading

    return check


def _keys(events: tuple[Event, ...], notable: list[tuple[Event, str]]) -> list[str | None]:
    """The notification key of each Event, in order (``notable`` is a subsequence of ``events``)."""
    keys: list[str | None] = []
    pending = iter(notable)
    chosen = next(pending, None)
    for event in events:
        if chosen is not None and chosen[0] is event:
            keys.append(chosen[1])
            chosen = next(pending, None)
        else:
            keys.append(None)
    return keys


async def _refuse(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    raw_status: Mapping[str, Any],
    message: str,
    generation: int,
    now: float,
    current: Callable[[], bool] | None = None,
) -> TickResult:
    """An invalid Canary touches nothing: a condition and (once per distinct problem) a Warning Event.

    Being deleted, it is let go at once: Coalmine cannot act on a spec it does not understand.
    """
    meta = canary.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        forget(ctx, str(meta.get("uid", "")))
        return TickResult(None, released=True)
    if not is_reported(raw_status, message):
        if current is not None and not await ctx.blocking(current):
            return TickResult(None)  # an old copy: its report may be recorded already
        event = Event(EventType.WARNING, Reason.INVALID_SPEC, message)
        await ctx.blocking(record_events, ctx, canary, (event,))
    return TickResult(invalid_status_patch(raw_status, message, generation, now))


async def _hooks(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    status: CanaryStatus,
    types: tuple[HookType, ...],
    now: float,
) -> dict[HookType, HookOutcome]:
    """Run the due hook types concurrently, never past an abort or the progress deadline (:mod:`.hookrun`)."""
    meta = canary.get("metadata") or {}

    async def one(hook_type: HookType) -> HookOutcome:
        payload = HookPayload(
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            phase=hook_phase(hook_type, status.phase.value),
            checksum=status.last_applied_spec or "",
        )
        return await run_hooks(
            spec.analysis.hooks_of(hook_type), payload, client=ctx.http, secret=ctx.config.hook_secret
        )

    budget = hook_budget(spec, status, now, types)
    return await run_bounded(ctx, canary, status, types, budget, one)
