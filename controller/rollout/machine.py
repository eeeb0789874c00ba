"""The rollout engine: ``plan`` says what to gather this tick, ``step`` decides what to do with it.

Both are pure functions of (spec, status, [observations,] now). The operator's tick is:
``probes = plan(spec, status, now)`` → gather observations (run the due look, call the listed hooks) →
``decision = step(spec, status, obs, now)`` → apply ``decision.actions``, write ``decision.status``, record
``decision.events``. Re-running a tick with the same inputs gives the same decision, and a tick applied twice never
advances twice within one analysis interval (the look clock is in status).

Phase rules live in :mod:`~controller.rollout.looks` (analysis and promotion) and
:mod:`~controller.rollout.requests` (manual requests); this module handles initialisation, new revisions, the
progress deadline, deletion and the bookkeeping every tick shares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controller.rollout.conditions import derive_conditions
from controller.rollout.decision import (
    ConvergeObjects,
    Decision,
    Initialize,
    Reason,
    ReleaseFinalizer,
    RestoreOnDelete,
    ScaleCanary,
    SetWeights,
)
from controller.rollout.durations import format_duration
from controller.rollout.looks import analyse, finalising, promoting
from controller.rollout.max_duration import check_max_duration, track_waits
from controller.rollout.moves import (
    APPROVED,
    DONE,
    GATE_CONFIRM_ROLLOUT,
    GATE_POST_ROLLOUT,
    GATE_RESTORE_ON_DELETE,
    GATE_SUSPENDED,
    PENDING,
    REQUESTED,
    analysing_hooks,
    effective_deadline,
    gathering_paused,
    has_hooks,
    human_wait,
    look_due,
    metrics_due,
    waiting_phase_hooks,
)
from controller.rollout.observations import Observations
from controller.rollout.phases import ANALYSING, WORLD_HOLDS, Hold, Phase
from controller.rollout.requests import handle_request
from controller.rollout.spec import CanarySpec, HookType
from controller.rollout.status import CanaryStatus, is_paused
from controller.rollout.tick import Tick, desired_routes, reset_for_revision, rollback, start_progressing

DEADLINE_PHASES = frozenset(
    {Phase.INITIALIZING, Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING}
)
"""Automated phases in which ``progressDeadlineSeconds`` applies (Terminating has its own, softer rule)."""


@dataclass(frozen=True)
class Probes:
    """What the operator must gather before calling :func:`step`.

    ``metrics``: run the judge for the look over ``window`` (start, end) — windows of consecutive looks are
    disjoint and cover the time in between. ``hooks``: webhook types to call, in this order.
    """

    metrics: bool = False
    window: tuple[float, float] | None = None
    hooks: tuple[HookType, ...] = ()


def plan(spec: CanarySpec, status: CanaryStatus, now: float) -> Probes:
    """Pure: which look and which hooks are due this tick (see :class:`Probes`)."""
    if spec.suspend:
        return Probes()
    phase = status.phase
    if phase is Phase.WAITING:
        return Probes(hooks=waiting_phase_hooks(spec, status, now))
    if phase in ANALYSING:
        if spec.skip_analysis or is_paused(status) or gathering_paused(status) or not look_due(spec, status, now):
            return Probes()
        metrics = metrics_due(spec, status)
        start = status.last_analysis_time
        if start is None:
            start = now - spec.analysis.interval_s
        return Probes(
            metrics=metrics,
            window=(start, now) if metrics else None,
            hooks=analysing_hooks(spec, status, now),
        )
    if (
        phase in (Phase.SUCCEEDED, Phase.FAILED)
        and status.gates.get(GATE_POST_ROLLOUT) == PENDING
        and has_hooks(spec, HookType.POST_ROLLOUT)
    ):
        return Probes(hooks=(HookType.POST_ROLLOUT,))
    return Probes()


def step(spec: CanarySpec, status: CanaryStatus, obs: Observations, now: float) -> Decision:
    """Pure: Flagger's canary semantics plus Coalmine's (see docs/phases.md) for one tick."""
    tick = Tick(spec, status, obs, now)
    if obs.deleting:
        terminate(tick)
    elif spec.suspend:
        suspended(tick)
        return tick.decision()
    else:
        resumed(tick)
        _run(tick)
    _finish(tick)
    return tick.decision()


def _run(tick: Tick) -> None:
    phase = tick.status.phase
    if phase is Phase.INITIALIZING:
        handle_request(tick)  # none applies here, but the sender learns why instead of it firing much later
        _PHASE_RULES[tick.status.phase](tick)
        return
    if phase in (Phase.TERMINATING, Phase.TERMINATED):
        return
    if not tick.obs.target.exists and phase not in (Phase.PROMOTING, Phase.FINALISING):
        tick.hold(Hold.TARGET_MISSING, f"Target {tick.target} not found", Reason.TARGET_MISSING, warning=True)
        _check_canary_deadline(tick)
        return
    if tick.status.hold is Hold.TARGET_MISSING:
        tick.update(hold=None)
    _detect_revision(tick)
    handle_request(tick)
    finishing = tick.status.phase is Phase.FINALISING
    _PHASE_RULES[tick.status.phase](tick)
    if finishing and tick.status.phase is Phase.SUCCEEDED:
        # A revision that arrived while the primary was being promoted starts now, not a tick later: the status
        # never shows Ready for a release that is not what the target asks for.
        _detect_revision(tick)
    # Checked after the phase's rule, so a late tick that does make progress is not punished for being late.
    if tick.status.progress_time != tick.now:
        _check_canary_deadline(tick)
    check_max_duration(tick, human_wait(tick.spec, tick.status, tick.now), primary_changed=False)


def _check_canary_deadline(tick: Tick) -> None:
    primary_changed = tick.status.phase in (Phase.PROMOTING, Phase.FINALISING)
    check_deadline(tick, human_wait(tick.spec, tick.status, tick.now), primary_changed=primary_changed)


def _initialize(tick: Tick) -> None:
    spec, obs = tick.spec, tick.obs
    if tick.status.last_transition_time is None:
        tick.enter(Phase.INITIALIZING, Reason.INITIALIZING, f"New Deployment {tick.target} detected, initializing")
    if not obs.target.exists:
        tick.hold(Hold.TARGET_MISSING, f"Target {tick.target} not found", Reason.TARGET_MISSING, warning=True)
        check_deadline(tick, None, primary_changed=False)
        return
    # Remember which revision is being initialized, so a failed initialization is retried only for a new one.
    tick.update(last_applied_spec=obs.target.pod_template_hash, tracked_configs=dict(obs.target.tracked_configs))
    tick.act(Initialize())
    copied = obs.primary_revision == obs.target.pod_template_hash
    if not (copied and obs.primary_updated and obs.primary_ready_percent >= spec.analysis.primary_ready_threshold):
        tick.hold(
            Hold.PRIMARY_NOT_READY,
            f"Waiting for {tick.target}-primary to become ready ({obs.primary_ready_percent:g}%)",
        )
        check_deadline(tick, None, primary_changed=False)
        return
    revision = obs.target.pod_template_hash
    tick.update(
        last_applied_spec=revision,
        last_promoted_spec=revision,
        tracked_configs=dict(obs.target.tracked_configs),
        promoted_configs=dict(obs.target.tracked_configs),
        gates={},
    )
    tick.set_weights(100, 0)
    tick.act(ScaleCanary(up=False))
    tick.enter(Phase.INITIALIZED, Reason.INITIALIZED, f"Initialization done! {tick.target}")


def _detect_revision(tick: Tick) -> None:
    """A new pod-template hash or config checksum starts a rollout; a revert to the promoted spec does not."""
    status, target = tick.status, tick.obs.target
    if status.phase in (Phase.PROMOTING, Phase.FINALISING):
        return  # the promoted revision is being copied; a newer one is picked up once Succeeded
    revision, configs = target.pod_template_hash, dict(target.tracked_configs)
    if revision == status.last_applied_spec and configs == dict(status.tracked_configs):
        return
    tick.update(last_applied_spec=revision, tracked_configs=configs)
    if status.phase is Phase.FAILED and not status.last_promoted_spec:
        tick.enter(Phase.INITIALIZING, Reason.INITIALIZING, f"New revision of {tick.target}; initializing again")
        return
    # A revert brings back exactly what the primary runs: its pod template *and* its tracked configs.
    reverted = revision == status.last_promoted_spec and configs == dict(status.promoted_configs)
    if reverted and status.phase in ANALYSING:
        # Someone took the release back mid-rollout: there is nothing to analyse, the primary already runs it.
        reset_for_revision(tick, keep_approval=False)
        tick.update(paused_by_user=False, gates={GATE_POST_ROLLOUT: PENDING})
        tick.act(SetWeights(100, 0), ScaleCanary(up=False))
        tick.enter(
            Phase.SUCCEEDED,
            Reason.REVERT_DETECTED,
            f"{tick.target} was reverted to the last promoted revision during the rollout: all traffic back on "
            f"{tick.target}-primary, canary scaled down, no analysis",
            warning=True,
        )
        return
    if status.phase in ANALYSING:
        start_progressing(
            tick, Reason.ANALYSIS_RESTARTED, f"New revision detected! Restarting analysis for {tick.target}"
        )
        return
    if reverted:
        reset_for_revision(tick, keep_approval=False)
        tick.enter(
            Phase.SUCCEEDED,
            Reason.REVERT_DETECTED,
            f"{tick.target} was reverted to the last promoted revision; nothing to roll out",
        )
        return
    tick.update(gates={})
    if has_hooks(tick.spec, HookType.CONFIRM_ROLLOUT):
        reset_for_revision(tick, keep_approval=False)
        tick.enter(
            Phase.WAITING,
            Reason.WAITING_APPROVAL,
            f"New revision of {tick.target} detected; halt advancement waiting for approval (confirm-rollout)",
        )
        tick.update(hold=Hold.CONFIRM_ROLLOUT, last_analysis_time=None)
        return
    start_progressing(tick, Reason.NEW_REVISION, f"New revision detected! Scaling up {tick.target}")


def check_deadline(tick: Tick, wait: Hold | None, *, primary_changed: bool) -> None:
    """Roll back (or fail the initialization) once nothing has progressed for the deadline.

    Flagger's rule: *progress* is a phase change, a move, or a recorded look (whatever its outcome), so the deadline
    ends a rollout whose workload does not become ready or whose looks stopped happening — never a healthy analysis
    that keeps looking (failed checks, no data and the judge have their own limits; ``analysis.maxDuration`` bounds
    the whole rollout if a team wants that).

    ``wait``: the person the rollout waits for (:func:`~controller.rollout.moves.human_wait`); the deadline does not
    run then. ``primary_changed``: the primary already has the promoted template, so a rollback would route all
    traffic to the new revision: instead the rollout is marked stalled (one Warning, kstatus ``Stalled``) and
    carries on as soon as the primary is ready.
    """
    status, now = tick.status, tick.now
    if status.phase not in DEADLINE_PHASES or wait is not None:
        return
    since = status.progress_time if status.progress_time is not None else status.last_transition_time
    if since is None:
        tick.update(progress_time=now)
        return
    if now - since <= effective_deadline(tick.spec):
        return
    waited = format_duration(now - since)
    why = f" ({status.message})" if status.message else ""
    if status.phase is Phase.INITIALIZING:
        tick.enter(
            Phase.FAILED,
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"Progress deadline exceeded: {tick.target} not initialized after {waited}{why}",
            warning=True,
        )
        return
    if primary_changed:
        if status.hold is not Hold.PROMOTION_STALLED:
            message = (
                f"Promotion of {tick.target} stalled: no progress for {waited}{why}. Not rolling back, because "
                f"{tick.target}-primary already has the promoted template; the promotion continues once it is ready"
            )
            tick.warn(Reason.PROMOTION_STALLED, message)
            tick.update(hold=Hold.PROMOTION_STALLED, message=message)
        return
    rollback(
        tick,
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        f"Progress deadline exceeded: rolling back {tick.target} after {waited} without progress{why}",
    )


def _waiting(tick: Tick) -> None:
    if not has_hooks(tick.spec, HookType.CONFIRM_ROLLOUT) or tick.status.gates.get(GATE_CONFIRM_ROLLOUT) == APPROVED:
        start_progressing(tick, Reason.NEW_REVISION, f"New revision detected! Scaling up {tick.target}")
        return
    outcome = tick.obs.hooks.get(HookType.CONFIRM_ROLLOUT)
    if outcome is None:
        return
    tick.update(last_analysis_time=tick.now)
    if outcome.passed:
        tick.update(gates={**tick.status.gates, GATE_CONFIRM_ROLLOUT: APPROVED})
        start_progressing(
            tick, Reason.ROLLOUT_APPROVED, f"Confirm-rollout check passed! New revision, scaling up {tick.target}"
        )
        return
    detail = f": {outcome.message}" if outcome.message else ""
    tick.update(hold=Hold.CONFIRM_ROLLOUT, message=f"Halt {tick.target} advancement waiting for approval{detail}")


def _steady(tick: Tick) -> None:
    """Initialized, Succeeded, Failed: run post-rollout hooks once per finished rollout."""
    status = tick.status
    if status.gates.get(GATE_POST_ROLLOUT) != PENDING:
        return
    if has_hooks(tick.spec, HookType.POST_ROLLOUT):
        outcome = tick.obs.hooks.get(HookType.POST_ROLLOUT)
        if outcome is None:
            return
        if not outcome.passed:
            tick.warn(
                Reason.POST_ROLLOUT_FAILED,
                f"Post-rollout hook of {tick.target} failed: {outcome.message}",
                hook=HookType.POST_ROLLOUT,
            )
    tick.update(gates={**status.gates, GATE_POST_ROLLOUT: DONE})


def terminate(tick: Tick, kind: str = "Canary") -> None:
    """Deletion of a ``kind`` (Canary, BlueGreen): with ``revertOnDeletion`` give the target its traffic back
    before letting it go."""
    status, spec = tick.status, tick.spec
    if status.phase is Phase.TERMINATED:
        tick.act(ReleaseFinalizer())
        return
    if not spec.revert_on_deletion or not status.last_promoted_spec:
        tick.enter(Phase.TERMINATED, Reason.TERMINATED, f"{kind} for {tick.target} deleted")
        tick.act(ReleaseFinalizer())
        return
    # Readiness observed on the tick that first restores was read before the scale-up (and a scaled-to-zero
    # target reads as 100 % ready): only a later tick, after the restore was recorded, may release the finalizer.
    restored = status.phase is Phase.TERMINATING and status.gates.get(GATE_RESTORE_ON_DELETE) == REQUESTED
    if status.phase is not Phase.TERMINATING:
        tick.enter(
            Phase.TERMINATING,
            Reason.TERMINATING,
            f"{kind} deleted: restoring {tick.target} and its routes (revertOnDeletion)",
        )
    tick.act(RestoreOnDelete())
    if not restored:
        tick.update(gates={**tick.status.gates, GATE_RESTORE_ON_DELETE: REQUESTED})
    elif tick.obs.canary_ready_percent >= spec.analysis.canary_ready_threshold:
        tick.enter(Phase.TERMINATED, Reason.TERMINATED, f"{tick.target} restored; {kind} deleted")
        tick.act(ReleaseFinalizer())
        return
    since = tick.status.progress_time if tick.status.progress_time is not None else tick.now
    if tick.now - since > effective_deadline(spec):
        tick.enter(
            Phase.TERMINATED,
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            f"Progress deadline exceeded while restoring {tick.target}; releasing the {kind} anyway",
            warning=True,
        )
        tick.act(ReleaseFinalizer())
        return
    tick.hold(Hold.CANARY_NOT_READY, f"Waiting for {tick.target} to be restored")


def suspended(tick: Tick, kind: str = "Canary") -> None:
    """``suspend: true`` (Canary, BlueGreen): frozen — no actions, and the deadline clock does not run — but the
    status still acknowledges the spec (``observedGeneration``, conditions saying "Suspended"), so ``kubectl wait``,
    kstatus and Flux do not see a stale generation as a rollout in progress forever. One Event on entering."""
    status, now = tick.status, tick.now
    if status.phase in DEADLINE_PHASES:
        tick.update(progress_time=now)
    if status.gates.get(GATE_SUSPENDED) != DONE:
        tick.note(Reason.SUSPENDED, f"{kind} for {tick.target} suspended: no actions until spec.suspend is false")
        tick.update(gates={**status.gates, GATE_SUSPENDED: DONE})
    generation = tick.obs.generation or status.observed_generation
    tick.update(
        observed_generation=generation,
        conditions=derive_conditions(tick.status, now, generation, suspended=True),
    )


def resumed(tick: Tick) -> None:
    """Forget a past suspension, so the next one is announced again."""
    gates = tick.status.gates
    if GATE_SUSPENDED in gates:
        tick.update(gates={key: value for key, value in gates.items() if key != GATE_SUSPENDED})


def _finish(tick: Tick) -> None:
    wait = human_wait(tick.spec, tick.status, tick.now)
    text = wait_message(tick, wait) if wait is not None else ""
    desired = None if tick.obs.deleting else desired_routes(tick.spec, tick.status)
    finish(tick, wait, text, desired)


def wait_message(tick: Tick, wait: Hold) -> str:
    """What ``status.message`` says while the rollout waits for a person (shown before the latest look's news)."""
    target = tick.target
    texts = {
        Hold.MANUAL_PAUSE: f"Paused at step {tick.status.step_index}: waiting for `kubectl coalmine promote {target}`",
        Hold.CONFIRM_PROMOTION: f"Halt {target} advancement waiting for promotion approval",
        Hold.CONFIRM_TRAFFIC_INCREASE: f"Halt {target} advancement waiting for traffic increase approval",
        Hold.CONFIRM_ROLLOUT: f"Halt {target} advancement waiting for approval",
        Hold.USER_PAUSE: f"Rollout of {target} paused by a manual request; resume it to continue",
    }
    return texts.get(wait, f"Waiting for a person ({wait})")


def finish(tick: Tick, wait: Hold | None, wait_text: str, desired: SetWeights | None) -> None:
    """Bookkeeping every tick shares (Canary and BlueGreen): freeze the deadline and show the wait while a person
    is awaited, heal drifted routes towards ``desired``, derive the conditions."""
    status, obs = tick.status, tick.obs
    track_waits(tick, wait)
    if wait is not None:
        tick.update(progress_time=tick.now)
        # A look during the wait rewrites the hold; the wait is still what holds the rollout, so show it first.
        if status.hold is not wait and status.hold not in WORLD_HOLDS:
            news = f"; last look: {status.message}" if status.hold is not None and status.message else ""
            tick.update(hold=wait, message=wait_text + news)
    routed = any(isinstance(action, SetWeights) for action in tick.actions)
    if desired is not None and not routed:
        seen = obs.routes
        if seen is None:
            tick.act(desired)
            tick.warn(Reason.ROUTES_DRIFTED, f"Routes for {tick.target} not found; recreating them")
        elif (seen.primary, seen.canary) != (desired.primary, desired.canary):
            tick.act(desired)
            tick.warn(
                Reason.ROUTES_DRIFTED,
                f"Routes for {tick.target} drifted to {seen.primary}/{seen.canary}; "
                f"restoring {desired.primary}/{desired.canary}",
            )
    generation = obs.generation or tick.status.observed_generation
    _converge_spec_edits(tick, generation)
    tick.update(
        observed_generation=generation,
        conditions=derive_conditions(tick.status, tick.now, generation),
    )


_NO_CONVERGE = frozenset({Phase.INITIALIZING, Phase.TERMINATING, Phase.TERMINATED})


def _converge_spec_edits(tick: Tick, generation: int) -> None:
    """A spec edit reaches the Services and router objects in the tick that sees it, whatever the phase (Succeeded
    included), instead of at the next release; ``Initialize`` already builds them from the current spec."""
    if tick.obs.deleting or generation == tick.status.applied_generation:
        return
    if any(isinstance(action, Initialize) for action in tick.actions):
        tick.update(applied_generation=generation)
        return
    if tick.status.phase in _NO_CONVERGE or not tick.status.last_promoted_spec:
        return
    tick.act(ConvergeObjects())
    tick.update(applied_generation=generation)


_PHASE_RULES: dict[Phase, Callable[[Tick], None]] = {
    Phase.INITIALIZED: _steady,
    Phase.SUCCEEDED: _steady,
    Phase.FAILED: _steady,
    Phase.WAITING: _waiting,
    Phase.PROGRESSING: analyse,
    Phase.WAITING_PROMOTION: analyse,
    Phase.PROMOTING: promoting,
    Phase.FINALISING: finalising,
    Phase.INITIALIZING: _initialize,
    Phase.TERMINATING: lambda tick: None,
    Phase.TERMINATED: lambda tick: None,
}

__all__ = [
    "DEADLINE_PHASES",
    "Probes",
    "check_deadline",
    "finish",
    "plan",
    "resumed",
    "step",
    "suspended",
    "terminate",
    "wait_message",
]
