"""Progressing, WaitingPromotion, Promoting and Finalising: one look per interval, then one move.

A look combines the judge's verdict with the rollout hooks. Its outcome decides: ``rejected`` rolls back at once,
``fail`` adds a failed check (cumulative for the revision; rollback at ``threshold``), ``noData`` never moves
anything and rolls back after ``noDataLimit`` looks in a row, and only ``pass`` makes the next move (a step, an
iteration, or promotion). Every recorded look is progress for the progress deadline: a rollout that keeps looking is
not stalled, whatever the looks say (Flagger's rule; the outcomes have their own limits).
"""

from __future__ import annotations

from analysis.verdict import Outcome, Verdict
from controller.rollout.decision import Reason, SetWeights
from controller.rollout.durations import format_duration
from controller.rollout.inconclusive import roll_back_or_pause
from controller.rollout.moves import (
    APPROVED,
    GATE_CONFIRM_PROMOTION,
    GATE_PRE_ROLLOUT,
    PASSED,
    REFUSED,
    MoveKind,
    ab_mode,
    canary_has_traffic,
    confirm_promotion_pending,
    elapsed,
    gathering_paused,
    has_hooks,
    human_wait,
    is_first_look,
    look_due,
    needs_verdict,
    next_move,
    pause_gate,
    traffic_gate,
)
from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import HookType, Pause, SetWeight, canary_steps
from controller.rollout.status import is_paused
from controller.rollout.tick import Tick, begin_promotion, rollback, succeed

_SEVERITY = {Outcome.PASS: 0, Outcome.NO_DATA: 1, Outcome.FAIL: 2, Outcome.REJECTED: 3}


def analyse(tick: Tick) -> None:
    """Progressing / WaitingPromotion: wait for a ready canary, then run the look if one is due."""
    spec, obs = tick.spec, tick.obs
    if obs.canary_ready_percent < spec.analysis.canary_ready_threshold:
        if rolled_back_stalled(tick):
            return
        tick.hold(
            Hold.CANARY_NOT_READY,
            f"Waiting for {tick.target} to become ready "
            f"({obs.canary_ready_percent:g}% < {spec.analysis.canary_ready_threshold}%)",
            Reason.WAITING,
        )
        return
    if tick.status.hold is Hold.CANARY_NOT_READY:
        tick.update(hold=None, message="")
    if held_by_refused_route(tick):
        return
    # plan() gathered nothing for a canary the previous tick found not ready, so the look waits one more tick.
    gathered = not gathering_paused(tick.start)
    if spec.skip_analysis:
        begin_promotion(tick, skipped=True)
        return
    if is_paused(tick.status) or not look_due(spec, tick.status, tick.now) or not gathered:
        return
    _look(tick)


def held_by_refused_route(tick: Tick) -> bool:
    """The router's object is refused (a Gateway did not accept the HTTPRoute): traffic does not move as the
    status says, so nothing is analysed or advanced until it is fixed (one Warning Event, notified as an error).
    It is no progress: the progress deadline rolls back a route that stays refused."""
    problem = tick.obs.route_problem
    if problem is None:
        if tick.status.hold is Hold.ROUTE_NOT_ACCEPTED:
            tick.update(hold=None, message="")
        return False
    tick.hold(
        Hold.ROUTE_NOT_ACCEPTED,
        f"Routes for {tick.target} are not in effect: {problem}",
        Reason.ROUTE_NOT_ACCEPTED,
        warning=True,
    )
    return True


def rolled_back_stalled(tick: Tick) -> bool:
    """Flagger's readiness rule: a canary whose Deployment reports ``ProgressDeadlineExceeded`` will not become
    ready by waiting longer, so it is rolled back now (True) instead of at our own deadline."""
    if not tick.obs.canary_stalled:
        return False
    rollback(
        tick,
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        f"Rolling back {tick.target}: Deployment {tick.target} exceeded its progress deadline "
        f"({tick.obs.canary_ready_percent:g}% ready)",
    )
    return True


def _hook_failed(tick: Tick, hook_type: HookType) -> str | None:
    """None if the hooks of this type passed (or there are none); otherwise why they did not."""
    if not has_hooks(tick.spec, hook_type):
        return None
    outcome = tick.obs.hooks.get(hook_type)
    if outcome is None:
        return f"{hook_type} hooks were not run"
    return None if outcome.passed else f"{hook_type} hook failed: {outcome.message or 'no reason given'}"


def rollback_requested(tick: Tick) -> bool:
    """A ``rollback`` webhook answered with success (Flagger: it asks for a rollback): roll back now."""
    answer = tick.obs.hooks.get(HookType.ROLLBACK)
    if not (has_hooks(tick.spec, HookType.ROLLBACK) and answer is not None and answer.passed):
        return False
    detail = f" ({answer.message})" if answer.message else ""
    rollback(tick, Reason.ROLLBACK_REQUESTED, f"Rolling back {tick.target}: a rollback webhook asked for it{detail}")
    return True


def record_look(
    tick: Tick, outcome: Outcome, reason: str, *, collecting: bool = False, person_waits: bool = False
) -> bool:
    """Record a look (verdict outcome combined with the ``rollout`` hooks) and act on a look that did not pass:
    rejected rolls back, fail counts a failed check, noData holds and counts the no-data looks in a row (a look
    with data resets the count), rolling back at ``noDataLimit``. True if it passed.

    ``collecting``: the judge had requests but not yet ``minRequests`` — it holds like no data, but data arrived.
    ``person_waits``: a person holds the rollout (a pause, a gate); no data then never rolls back — they decide."""
    failure = _hook_failed(tick, HookType.ROLLOUT)
    hook: HookType | None = None
    if failure is not None and _SEVERITY[outcome] < _SEVERITY[Outcome.FAIL]:
        outcome, reason, hook = Outcome.FAIL, failure, HookType.ROLLOUT
    tick.update(last_analysis_time=tick.now, progress_time=tick.now)
    if outcome is Outcome.NO_DATA and not collecting:
        _no_data(tick, reason, person_waits=person_waits)
        return False
    tick.update(no_data_checks=0)
    if outcome is Outcome.NO_DATA:
        tick.hold(Hold.NO_DATA, f"Halt {tick.target} advancement: {reason}")
        return False
    if outcome is Outcome.REJECTED:
        rollback(tick, Reason.COMPARISON_REJECTED, f"Rolling back {tick.target}: {reason}")
        return False
    if outcome is Outcome.FAIL:
        _failed_check(tick, reason, hook)
        return False
    return True


def _no_data(tick: Tick, reason: str, *, person_waits: bool) -> None:
    """Never a pass, never a hang: ``noDataLimit`` no-data looks in a row roll back with reason ``NoData``."""
    count = tick.status.no_data_checks + 1
    limit = tick.spec.analysis.no_data_limit
    tick.update(no_data_checks=count)
    if count >= limit and not person_waits:
        roll_back_or_pause(
            tick,
            Reason.NO_DATA,
            f"Rolling back {tick.target}: no data for {count} looks in a row (noDataLimit {limit}): {reason}",
        )
        return
    message = f"Halt {tick.target} advancement: no data ({reason}); no-data looks in a row {count}/{limit}"
    tick.warn(Reason.NO_DATA, message)
    tick.update(hold=Hold.NO_DATA, message=message)


def _look(tick: Tick) -> None:
    spec, obs = tick.spec, tick.obs
    if rollback_requested(tick):
        return
    verdict: Verdict | None = None
    if is_first_look(tick.status):
        failure = _hook_failed(tick, HookType.PRE_ROLLOUT)
        tick.update(last_analysis_time=tick.now, progress_time=tick.now)
        if failure is not None:
            _failed_check(tick, failure, HookType.PRE_ROLLOUT)
            return
        tick.update(gates={**tick.status.gates, GATE_PRE_ROLLOUT: PASSED})
        tick.note(Reason.ANALYSIS_STARTED, f"Starting canary analysis for {tick.target}")
    else:
        outcome, reason = Outcome.PASS, "checks passed"
        if needs_verdict(spec) and canary_has_traffic(spec, tick.status):
            verdict = obs.verdict
            if verdict is None:
                # The operator did not run this look: nothing is recorded, the next window still starts at the
                # previous look, so no data is lost or counted twice.
                tick.hold(Hold.ANALYSIS_PENDING, f"Waiting for the analysis of {tick.target}")
                return
            outcome, reason = verdict.outcome, verdict.reason
            tick.update(judge=dict(verdict.state), evidence=verdict.to_dict())
        collecting = verdict is not None and verdict.collecting
        waits = human_wait(spec, tick.status, tick.now) is not None
        if not record_look(tick, outcome, reason, collecting=collecting, person_waits=waits):
            return
    _advance(tick, verdict)


def _failed_check(tick: Tick, reason: str, hook: HookType | None = None) -> None:
    """A failed check; ``hook`` is the webhook type that failed it, if one did (see ``Event.hook``)."""
    count = tick.status.failed_checks + 1
    threshold = tick.spec.analysis.threshold
    tick.update(failed_checks=count)
    if count >= threshold:
        rollback(tick, Reason.ROLLED_BACK, f"Rolling back {tick.target} failed checks threshold reached {count}")
        return
    message = f"Halt {tick.target} advancement: {reason} (failed checks {count}/{threshold})"
    tick.warn(Reason.HALTED, message, hook=hook)
    tick.update(hold=Hold.FAILED_CHECK, message=message)


def _advance(tick: Tick, verdict: Verdict | None) -> None:
    """A passing look: make the next move, unless a pause or a gate holds it."""
    spec, status = tick.spec, tick.status
    move = next_move(spec, status, tick.now)
    if move.kind is MoveKind.HOLD_MANUAL_PAUSE:
        tick.hold(
            Hold.MANUAL_PAUSE,
            f"Paused at step {status.step_index}: waiting for `kubectl coalmine promote {tick.target}`",
        )
    elif move.kind is MoveKind.HOLD_TIMED_PAUSE:
        # A passing look during a timed pause is progress as planned: the pause is the spec, not a stall.
        tick.update(hold=Hold.TIMED_PAUSE, progress_time=tick.now)
        tick.update(message=f"Paused at step {status.step_index}, {format_duration(move.remaining_s)} left")
    elif move.kind is MoveKind.MIRROR:
        tick.update(mirrored=True, step_start_time=tick.now)
        tick.set_weights(100, 0)
        tick.progress(f"Advance {tick.target} canary mirroring")
        tick.note(Reason.ADVANCED, f"Advance {tick.target} canary mirroring")
    elif move.kind is MoveKind.ITERATE:
        count = status.iterations + 1
        tick.update(iterations=count, mirrored=spec.analysis.mirror and not ab_mode(spec), step_start_time=tick.now)
        tick.set_weights(100, 0)
        message = f"Advance {tick.target} canary iteration {count}/{spec.analysis.iterations}"
        tick.progress(message)
        tick.note(Reason.ADVANCED, message)
    elif move.kind is MoveKind.SET_WEIGHT:
        if move.increases_from(status.canary_weight) and not _traffic_increase_open(tick):
            return
        _enter_step(tick)
    elif move.kind is MoveKind.ENTER_PAUSE:
        _enter_step(tick)
    else:
        _try_promote(tick, verdict)


def _traffic_increase_open(tick: Tick) -> bool:
    spec, status = tick.spec, tick.status
    if not has_hooks(spec, HookType.CONFIRM_TRAFFIC_INCREASE):
        return True
    if status.gates.get(traffic_gate(status.step_index)) == APPROVED:
        return True
    outcome = tick.obs.hooks.get(HookType.CONFIRM_TRAFFIC_INCREASE)
    if outcome is not None and outcome.passed:
        return True
    tick.update(gates={**status.gates, traffic_gate(status.step_index): REFUSED})
    tick.hold(
        Hold.CONFIRM_TRAFFIC_INCREASE,
        f"Halt {tick.target} advancement waiting for traffic increase approval",
        Reason.WAITING,
        warning=True,
    )
    return False


def _enter_step(tick: Tick) -> None:
    steps = canary_steps(tick.spec.analysis)
    index = tick.status.step_index
    step = steps[index]
    if isinstance(step, SetWeight):
        tick.update(step_index=index + 1, mirrored=False, step_start_time=tick.now)
        tick.set_weights(100 - step.weight, step.weight)
        message = f"Advance {tick.target} canary weight {step.weight}"
        tick.progress(message)
        tick.note(Reason.ADVANCED, message)
        # A pause right after a weight starts with it: `setWeight: 10, pause: 10m` means ten minutes at 10 %.
        if index + 1 < len(steps) and isinstance(steps[index + 1], Pause):
            _enter_pause(tick, index + 1)
    else:
        _enter_pause(tick, index)


def _enter_pause(tick: Tick, index: int) -> None:
    pause = canary_steps(tick.spec.analysis)[index]
    assert isinstance(pause, Pause)
    tick.update(step_index=index + 1, step_start_time=tick.now)
    weight = tick.status.canary_weight
    if pause.duration_s is None:
        tick.enter(
            Phase.WAITING_PROMOTION,
            Reason.PAUSED,
            f"Paused {tick.target} at canary weight {weight}: waiting for `kubectl coalmine promote {tick.target}`",
        )
        tick.update(hold=Hold.MANUAL_PAUSE)
    else:
        message = f"Pausing {tick.target} for {format_duration(pause.duration_s)} at canary weight {weight}"
        tick.progress(message)
        tick.update(hold=Hold.TIMED_PAUSE)
        tick.note(Reason.PAUSED, message)


def _try_promote(tick: Tick, verdict: Verdict | None) -> None:
    spec, status = tick.spec, tick.status
    if verdict is not None and not verdict.promotable:
        why = verdict.hold_reason or "the judge has not shown the canary to be within tolerance yet"
        tick.hold(Hold.EVIDENCE, f"Holding {tick.target} before promotion: {why}", Reason.EVIDENCE_HOLD)
        return
    if confirm_promotion_pending(spec, status):
        outcome = tick.obs.hooks.get(HookType.CONFIRM_PROMOTION)
        if outcome is None or not outcome.passed:
            message = f"Halt {tick.target} advancement waiting for promotion approval"
            if status.phase is not Phase.WAITING_PROMOTION:
                tick.enter(Phase.WAITING_PROMOTION, Reason.WAITING_PROMOTION, message, warning=True)
            tick.update(hold=Hold.CONFIRM_PROMOTION, message=message)
            return
        tick.update(gates={**status.gates, GATE_CONFIRM_PROMOTION: APPROVED})
        tick.note(Reason.PROMOTION_APPROVED, f"Confirm-promotion check passed for {tick.target}")
    begin_promotion(tick)


def promoting(tick: Tick) -> None:
    """Wait for the primary to run the promoted spec, then shift traffic back (per interval with
    ``stepWeightPromotion``, else at once) and go Finalising."""
    spec, obs, status = tick.spec, tick.obs, tick.status
    if status.paused_by_user:
        return
    copied = obs.primary_revision == status.last_applied_spec
    ready = copied and obs.primary_updated and obs.primary_ready_percent >= spec.analysis.primary_ready_threshold
    if not ready:
        if status.hold is Hold.PROMOTION_STALLED:
            return  # the deadline passed: keep saying so (and the Stalled condition) until the primary is ready
        tick.hold(
            Hold.PRIMARY_NOT_READY,
            f"Waiting for {tick.target}-primary to roll out the promoted spec "
            f"({obs.primary_ready_percent:g}% ready, updated: {obs.primary_updated})",
        )
        return
    shift = spec.analysis.step_weight_promotion
    if not shift or status.canary_weight == 0:
        tick.act(SetWeights(100, 0))  # also ends the A/B match route and any mirror
        tick.update(mirrored=False, canary_weight=0)
        tick.enter(Phase.FINALISING, Reason.FINALISING, f"Routing all traffic to primary {tick.target}-primary")
        return
    started = status.step_start_time
    if started is not None and not elapsed(tick.now, started, spec.analysis.interval_s):
        return
    canary = max(0, status.canary_weight - shift)
    tick.update(step_start_time=tick.now)
    tick.set_weights(100 - canary, canary)
    message = f"Advance {tick.target} primary weight {100 - canary}"
    tick.progress(message)
    tick.note(Reason.PRIMARY_WEIGHT_ADVANCED, message)
    if canary == 0:
        tick.enter(Phase.FINALISING, Reason.FINALISING, f"Routing all traffic to primary {tick.target}-primary")


def finalising(tick: Tick) -> None:
    """All traffic is on the primary: scale the canary down and record the promoted revision."""
    tick.act(SetWeights(100, 0))
    succeed(
        tick,
        f"Promotion completed! Scaling down {tick.target}. Canary analysis completed successfully, promotion finished.",
    )


def advance_on_approval(tick: Tick) -> None:
    """A person promoted a rollout paused on weak evidence: make the next move now, as a passing look would."""
    _advance(tick, None)


def approve_pause(tick: Tick) -> None:
    """A person promoted a manual pause: the next passing look moves on."""
    tick.update(gates={**tick.status.gates, pause_gate(tick.status.step_index): APPROVED})
    tick.enter(Phase.PROGRESSING, Reason.PROMOTION_APPROVED, f"Manual pause of {tick.target} approved")
