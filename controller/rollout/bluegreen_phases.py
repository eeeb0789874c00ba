"""The BlueGreen's in-flight phases, one rule each: Progressing (green scales up, preview, pre-promotion analysis),
WaitingPromotion (the timer, a hook or a person), Promoting (the switch, post-promotion analysis, blue takes green's
spec) and Finalising (green kept up for ``scaleDownDelaySeconds``).

Split from :mod:`controller.rollout.bluegreen` (which owns ``plan``/``step`` and what every tick shares) so each
module has one job. A look here is the Canary's look (:mod:`controller.rollout.looks`) without weight steps:
``pass`` counts towards the current analysis run, ``fail`` towards ``threshold``, ``rejected`` rolls back at once.
"""

from __future__ import annotations

from analysis.verdict import Outcome, Verdict
from controller.rollout.bluegreen_requests import _POST_GATE, MANUAL_SWITCH
from controller.rollout.bluegreen_spec import BlueGreenSpec
from controller.rollout.decision import PromotePrimary, Reason, SetWeights
from controller.rollout.durations import format_duration
from controller.rollout.looks import (
    _failed_check,
    _hook_failed,
    held_by_refused_route,
    record_look,
    rollback_requested,
    rolled_back_stalled,
)
from controller.rollout.moves import (
    APPROVED,
    GATE_CONFIRM_PROMOTION,
    GATE_CONFIRM_ROLLOUT,
    GATE_PRE_ROLLOUT,
    PASSED,
    gathering_paused,
    has_hooks,
    is_first_look,
    look_due,
    needs_verdict,
)
from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import HookType
from controller.rollout.status import CanaryStatus
from controller.rollout.tick import Tick, succeed

GATE_PREVIEW = "bluegreen/preview"
"""Set once green is ready and the first look passed: the preview routes (mirror, match) are on."""
GATE_POST_PROMOTION = _POST_GATE
"""Set when the post-promotion analysis passed and blue is being given green's spec."""
ON = "on"


def post_promotion_running(spec: BlueGreenSpec, status: CanaryStatus) -> bool:
    """All traffic is on green and its post-promotion analysis still runs (blue untouched)."""
    return (
        status.phase is Phase.PROMOTING
        and spec.post_promotion is not None
        and status.gates.get(GATE_POST_PROMOTION) != PASSED
    )


def _green_ready(tick: Tick) -> bool:
    threshold = tick.spec.analysis.canary_ready_threshold
    ready = tick.obs.canary_ready_percent
    if ready < threshold:
        if rolled_back_stalled(tick):
            return False
        tick.hold(
            Hold.CANARY_NOT_READY,
            f"Waiting for green {tick.target} to become ready ({ready:g}% < {threshold}%)",
            Reason.WAITING,
        )
        return False
    if tick.status.hold is Hold.CANARY_NOT_READY:
        tick.update(hold=None, message="")
    return not held_by_refused_route(tick)


def _look(tick: Tick, spec: BlueGreenSpec) -> tuple[bool, Verdict | None]:
    """Run the due look: (passed, verdict). A look that did not pass has already acted (hold, check, rollback)."""
    if rollback_requested(tick):
        return False, None
    verdict: Verdict | None = None
    outcome, reason = Outcome.PASS, "checks passed"
    if needs_verdict(tick.spec):
        verdict = tick.obs.verdict
        if verdict is None:
            tick.hold(Hold.ANALYSIS_PENDING, f"Waiting for the analysis of {tick.target}")
            return False, None
        outcome, reason = verdict.outcome, verdict.reason
        tick.update(judge=dict(verdict.state), evidence=verdict.to_dict())
    collecting = verdict is not None and verdict.collecting
    waits = person_wait(spec, tick.status, tick.now) is not None
    return record_look(tick, outcome, reason, collecting=collecting, person_waits=waits), verdict


def _first_look(tick: Tick, spec: BlueGreenSpec) -> None:
    """Pre-rollout hooks with green ready and no traffic yet; then the preview routes go on."""
    failure = _hook_failed(tick, HookType.PRE_ROLLOUT)
    tick.update(last_analysis_time=tick.now, progress_time=tick.now)
    if failure is not None:
        _failed_check(tick, failure, HookType.PRE_ROLLOUT)
        return
    preview = spec.preview
    tick.update(
        gates={**tick.status.gates, GATE_PRE_ROLLOUT: PASSED, GATE_PREVIEW: ON},
        mirrored=preview.mirror,
        iterations=0,
        step_start_time=tick.now,
    )
    tick.act(
        SetWeights(
            100,
            0,
            match_active=bool(preview.match),
            mirror_weight=preview.mirror_weight if preview.mirror else None,
        )
    )
    ways = []
    if preview.mirror:
        ways.append(f"{preview.mirror_weight}% of live traffic mirrored")
    if preview.match:
        ways.append("matching requests routed")
    how = " and ".join(ways) if ways else "no preview routes (its own traffic)"
    message = f"Green {tick.target} is ready: previewing with {how}; pre-promotion analysis started"
    tick.progress(message)
    tick.note(Reason.ANALYSIS_STARTED, message)
    if spec.pre_promotion is None:
        _pre_promotion_passed(tick, spec)


def pre_promotion(tick: Tick, spec: BlueGreenSpec) -> None:
    """Progressing: green scales up, then one look per interval until the pre-promotion analysis passed."""
    if not _green_ready(tick) or tick.status.paused_by_user or not look_due(tick.spec, tick.status, tick.now):
        return
    if gathering_paused(tick.start):
        return  # plan() gathered nothing for a green the previous tick found not ready: look next tick
    if is_first_look(tick.status):
        _first_look(tick, spec)
        return
    passed, verdict = _look(tick, spec)
    if not passed:
        return
    run = spec.pre_promotion
    count = tick.status.iterations + 1
    progress = run.describe(count, tick.status.step_start_time, tick.now) if run is not None else str(count)
    message = f"Pre-promotion analysis of green {tick.target}: look {progress} passed"
    tick.update(iterations=count)
    tick.progress(message)
    tick.note(Reason.ADVANCED, message)
    finished = run is None or run.done(count, tick.status.step_start_time, tick.now)
    if not (finished or tick.status.promote_full):
        return
    if verdict is not None and not verdict.promotable:
        why = verdict.hold_reason or "the judge has not shown green to be within tolerance yet"
        tick.hold(Hold.EVIDENCE, f"Holding {tick.target} before the switch: {why}", Reason.EVIDENCE_HOLD)
        return
    _pre_promotion_passed(tick, spec)


def switch_wait(spec: BlueGreenSpec, status: CanaryStatus, now: float) -> tuple[bool, Hold, str]:
    """Whether traffic may switch now; otherwise the hold and message that say what it waits for. Pure, so the
    deadline and ``promote`` read the wait from phase, gates and clock rather than from the last look's hold."""
    auto, target = spec.auto_promotion, spec.canary.target_ref.name
    if status.promote_full or status.gates.get(MANUAL_SWITCH) == APPROVED:
        return True, Hold.MANUAL_PAUSE, ""
    if not auto.enabled:
        return (
            False,
            Hold.MANUAL_PAUSE,
            f"Pre-promotion analysis passed: waiting for `kubectl coalmine promote {target}` to switch "
            "all traffic to green",
        )
    if has_hooks(spec.canary, HookType.CONFIRM_PROMOTION) and status.gates.get(GATE_CONFIRM_PROMOTION) != APPROVED:
        return False, Hold.CONFIRM_PROMOTION, f"Halt {target} switch waiting for promotion approval"
    since = status.last_transition_time if status.phase is Phase.WAITING_PROMOTION else now
    remaining = auto.after_s - (now - (since if since is not None else now))
    if remaining > 0:
        return False, Hold.TIMED_PAUSE, f"Switching all traffic to green {target} in {format_duration(remaining)}"
    return True, Hold.TIMED_PAUSE, ""


def person_wait(spec: BlueGreenSpec, status: CanaryStatus, now: float) -> tuple[Hold, str] | None:
    """The person a BlueGreen waits for (user pause, confirm-rollout, or the switch in WaitingPromotion), if any."""
    target = spec.canary.target_ref.name
    if status.paused_by_user:
        return Hold.USER_PAUSE, f"Rollout of {target} paused by a manual request; resume it to continue"
    if status.phase is Phase.WAITING:
        if has_hooks(spec.canary, HookType.CONFIRM_ROLLOUT) and status.gates.get(GATE_CONFIRM_ROLLOUT) != APPROVED:
            return Hold.CONFIRM_ROLLOUT, f"Halt {target} advancement waiting for approval"
        return None
    if status.phase is Phase.WAITING_PROMOTION:
        allowed, hold, message = switch_wait(spec, status, now)
        if not allowed and hold in (Hold.MANUAL_PAUSE, Hold.CONFIRM_PROMOTION):
            return hold, message
    return None


def primary_changed(spec: BlueGreenSpec, status: CanaryStatus) -> bool:
    """Blue has been given green's spec: from here a rollback would route everyone to the new revision."""
    return status.phase is Phase.FINALISING or (
        status.phase is Phase.PROMOTING and status.gates.get(GATE_POST_PROMOTION) == PASSED
    )


def _pre_promotion_passed(tick: Tick, spec: BlueGreenSpec) -> None:
    allowed, hold, message = switch_wait(spec, tick.status, tick.now)
    if allowed:
        _switch(tick, spec)
        return
    tick.enter(Phase.WAITING_PROMOTION, Reason.WAITING_PROMOTION, message)
    tick.update(hold=hold)
    # The timer starts now, so re-evaluate with the phase's own clock.
    _, hold, message = switch_wait(spec, tick.status, tick.now)
    tick.update(hold=hold, message=message)


def waiting_promotion(tick: Tick, spec: BlueGreenSpec) -> None:
    """WaitingPromotion: looks keep running on the preview; switch once the timer, a hook or a person allows."""
    if not _green_ready(tick) or tick.status.paused_by_user:
        return
    if look_due(tick.spec, tick.status, tick.now) and not gathering_paused(tick.start):
        passed, _ = _look(tick, spec)
        if not passed:
            return
        outcome = tick.obs.hooks.get(HookType.CONFIRM_PROMOTION)
        if outcome is not None and outcome.passed:
            tick.update(gates={**tick.status.gates, GATE_CONFIRM_PROMOTION: APPROVED})
            tick.note(Reason.PROMOTION_APPROVED, f"Confirm-promotion check passed for {tick.target}")
    allowed, hold, message = switch_wait(spec, tick.status, tick.now)
    if allowed:
        _switch(tick, spec)
        return
    tick.update(hold=hold, message=message)
    if hold is Hold.TIMED_PAUSE:
        tick.update(progress_time=tick.now)  # a planned wait is not a stall


def _switch(tick: Tick, spec: BlueGreenSpec) -> None:
    """All traffic to green in one VirtualService write; blue keeps running the old revision untouched."""
    gates = {key: value for key, value in tick.status.gates.items() if key not in (GATE_PREVIEW, MANUAL_SWITCH)}
    tick.act(SetWeights(0, 100))
    tick.update(
        canary_weight=100,
        mirrored=False,
        iterations=0,
        failed_checks=0,
        no_data_checks=0,
        judge={},
        gates=gates,
        promote_full=False,
        step_start_time=tick.now,
        last_analysis_time=tick.now,
    )
    after = "post-promotion analysis started" if spec.post_promotion is not None else "no post-promotion analysis"
    tick.enter(
        Phase.PROMOTING,
        Reason.PROMOTING,
        f"Switched all traffic to green {tick.target}; blue {tick.target}-primary kept as it was; {after}",
    )
    if spec.post_promotion is None:
        _copy_to_blue(tick)


def _copy_to_blue(tick: Tick) -> None:
    tick.update(gates={**tick.status.gates, GATE_POST_PROMOTION: PASSED})
    tick.act(PromotePrimary(tick.status.last_applied_spec))
    message = f"Copying green {tick.target} template spec to blue {tick.target}-primary"
    tick.progress(message)
    tick.note(Reason.PROMOTING, message)


def promoting(tick: Tick, spec: BlueGreenSpec) -> None:
    """Promoting: the post-promotion analysis on all traffic, then blue takes green's spec and traffic returns."""
    status, obs = tick.status, tick.obs
    if status.paused_by_user:
        return
    if post_promotion_running(spec, status):
        if not _green_ready(tick) or not look_due(tick.spec, status, tick.now) or gathering_paused(tick.start):
            return
        passed, _ = _look(tick, spec)
        if not passed:
            return
        run = spec.post_promotion
        assert run is not None
        count = tick.status.iterations + 1
        progress = run.describe(count, tick.status.step_start_time, tick.now)
        message = f"Post-promotion analysis of green {tick.target}: look {progress} passed"
        tick.update(iterations=count)
        tick.progress(message)
        tick.note(Reason.ADVANCED, message)
        if run.done(count, tick.status.step_start_time, tick.now) or tick.status.promote_full:
            tick.update(promote_full=False)
            _copy_to_blue(tick)
        return
    analysis = tick.spec.analysis
    copied = obs.primary_revision == status.last_applied_spec
    if not (copied and obs.primary_updated and obs.primary_ready_percent >= analysis.primary_ready_threshold):
        if status.hold is Hold.PROMOTION_STALLED:
            return  # past the deadline: keep saying so (and the Stalled condition) until blue is ready
        tick.hold(
            Hold.PRIMARY_NOT_READY,
            f"Waiting for blue {tick.target}-primary to roll out the promoted spec "
            f"({obs.primary_ready_percent:g}% ready, updated: {obs.primary_updated})",
        )
        return
    tick.act(SetWeights(100, 0))
    tick.update(canary_weight=0, step_start_time=tick.now)
    tick.enter(
        Phase.FINALISING,
        Reason.FINALISING,
        f"Blue {tick.target}-primary runs the promoted revision: all traffic back to blue; green {tick.target} "
        f"stays up {format_duration(spec.scale_down_delay_s)} before it is scaled down",
    )
    finalising(tick, spec)


def finalising(tick: Tick, spec: BlueGreenSpec) -> None:
    """Traffic is on the promoted blue: keep green up for ``scaleDownDelaySeconds``, then scale it down."""
    started = tick.status.step_start_time if tick.status.step_start_time is not None else tick.now
    remaining = spec.scale_down_delay_s - (tick.now - started)
    if remaining > 0:
        tick.update(
            hold=Hold.TIMED_PAUSE,
            progress_time=tick.now,
            message=f"Scaling green {tick.target} down in {format_duration(remaining)}",
        )
        return
    succeed(
        tick,
        f"Promotion completed! Blue {tick.target}-primary runs the new revision; green {tick.target} scaled down.",
    )


__all__ = [
    "GATE_POST_PROMOTION",
    "GATE_PREVIEW",
    "ON",
    "finalising",
    "person_wait",
    "post_promotion_running",
    "pre_promotion",
    "primary_changed",
    "promoting",
    "switch_wait",
    "waiting_promotion",
]
