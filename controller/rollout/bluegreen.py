"""The BlueGreen engine: ``plan`` says what to gather this tick, ``step`` decides what to do with it.

Same contract as the Canary engine (:mod:`controller.rollout.machine`): pure functions of (spec, status,
[observations,] now) returning :class:`~controller.rollout.machine.Probes` and a
:class:`~controller.rollout.decision.Decision`, with the same actions, Events, status record and conditions, so the
operator shell, ``kubectl coalmine`` and dashboards serve both kinds. Blue is ``<target>-primary``, green the target.

Phases (Flagger's spelling, see docs/bluegreen.md): Progressing = green scaling up, preview, pre-promotion analysis;
WaitingPromotion = analysis passed, waiting for ``autoPromotion.afterSeconds`` or a person; Promoting = all traffic on
green, post-promotion analysis, then blue takes green's spec; Finalising = traffic back on blue, green kept up for
``scaleDownDelaySeconds``; Succeeded. Blue's pods are never touched before the post-promotion analysis passed, so
any failure until then is one VirtualService write away from safety (``SetWeights(100, 0)``).

The in-flight phase rules live in :mod:`~controller.rollout.bluegreen_phases`; this module handles new revisions,
deletion, the routes every tick must hold, and reuses the Canary's initialization, deadline and steady rules.
"""

from __future__ import annotations

from collections.abc import Callable

from analysis.policy import JudgePolicy
from controller.rollout.bluegreen_phases import (
    GATE_POST_PROMOTION,
    GATE_PREVIEW,
    ON,
    finalising,
    person_wait,
    post_promotion_running,
    pre_promotion,
    primary_changed,
    promoting,
    waiting_promotion,
)
from controller.rollout.bluegreen_requests import BLUEGREEN_HANDLERS
from controller.rollout.bluegreen_spec import BlueGreenSpec
from controller.rollout.decision import Decision, Reason, SetWeights
from controller.rollout.judging import policy_from_spec
from controller.rollout.machine import (
    Probes,
    _detect_revision,
    _initialize,
    _steady,
    _waiting,
    check_deadline,
    finish,
    resumed,
    suspended,
    terminate,
)
from controller.rollout.max_duration import check_max_duration
from controller.rollout.moves import (
    APPROVED,
    GATE_CONFIRM_PROMOTION,
    GATE_POST_ROLLOUT,
    PENDING,
    gathering_paused,
    has_hooks,
    is_first_look,
    look_due,
    needs_verdict,
    waiting_phase_hooks,
)
from controller.rollout.observations import Observations
from controller.rollout.phases import Hold, Phase
from controller.rollout.requests import handle_request
from controller.rollout.spec import HookType
from controller.rollout.status import CanaryStatus
from controller.rollout.tick import Tick, start_progressing


def _looking(spec: BlueGreenSpec, status: CanaryStatus) -> bool:
    return status.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION) or post_promotion_running(spec, status)


def plan(spec: BlueGreenSpec, status: CanaryStatus, now: float) -> Probes:
    """Pure: which look and which hooks are due this tick."""
    view = spec.canary
    if view.suspend:
        return Probes()
    phase = status.phase
    if phase is Phase.WAITING:
        return Probes(hooks=waiting_phase_hooks(view, status, now))
    if _looking(spec, status):
        if status.paused_by_user or gathering_paused(status) or not look_due(view, status, now):
            return Probes()
        hooks: list[HookType] = []
        if has_hooks(view, HookType.ROLLBACK):
            hooks.append(HookType.ROLLBACK)
        first = phase is Phase.PROGRESSING and is_first_look(status)
        if first and has_hooks(view, HookType.PRE_ROLLOUT):
            hooks.append(HookType.PRE_ROLLOUT)
        if not first and has_hooks(view, HookType.ROLLOUT):
            hooks.append(HookType.ROLLOUT)
        if (
            phase is Phase.WAITING_PROMOTION
            and has_hooks(view, HookType.CONFIRM_PROMOTION)
            and status.gates.get(GATE_CONFIRM_PROMOTION) != APPROVED
        ):
            hooks.append(HookType.CONFIRM_PROMOTION)
        metrics = not first and needs_verdict(view)
        start = status.last_analysis_time if status.last_analysis_time is not None else now - view.analysis.interval_s
        return Probes(metrics=metrics, window=(start, now) if metrics else None, hooks=tuple(hooks))
    if (
        phase in (Phase.SUCCEEDED, Phase.FAILED)
        and status.gates.get(GATE_POST_ROLLOUT) == PENDING
        and has_hooks(view, HookType.POST_ROLLOUT)
    ):
        return Probes(hooks=(HookType.POST_ROLLOUT,))
    return Probes()


def judge_policy(spec: BlueGreenSpec, status: CanaryStatus) -> JudgePolicy:
    """The judge's policy for this status: the Canary's, but thresholds only once all traffic is on green.

    After the switch blue serves nothing, so a green-vs-blue comparison would only ever say "no data"; the
    threshold metrics (success rate, latency, templates) are what can still catch a bad green.
    """
    policy = policy_from_spec(spec.canary)
    if status.phase is Phase.PROMOTING:
        return JudgePolicy(thresholds=policy.thresholds)
    return policy


def step(spec: BlueGreenSpec, status: CanaryStatus, obs: Observations, now: float) -> Decision:
    """Pure: the BlueGreen semantics of docs/bluegreen.md for one tick."""
    tick = Tick(spec.canary, status, obs, now)
    if obs.deleting:
        terminate(tick, "BlueGreen")
    elif spec.canary.suspend:
        suspended(tick, "BlueGreen")
        return tick.decision()
    else:
        resumed(tick)
        _run(tick, spec)
    _finish(tick, spec)
    return tick.decision()


def _run(tick: Tick, spec: BlueGreenSpec) -> None:
    phase = tick.status.phase
    if phase is Phase.INITIALIZING:
        handle_request(tick, BLUEGREEN_HANDLERS)
        _initialize(tick)
        return
    if phase in (Phase.TERMINATING, Phase.TERMINATED):
        return
    if not tick.obs.target.exists and phase not in (Phase.PROMOTING, Phase.FINALISING):
        tick.hold(Hold.TARGET_MISSING, f"Target {tick.target} not found", Reason.TARGET_MISSING, warning=True)
        _check_deadline(tick, spec)
        return
    if tick.status.hold is Hold.TARGET_MISSING:
        tick.update(hold=None)
    _new_revision(tick, spec)
    handle_request(tick, BLUEGREEN_HANDLERS)
    _RULES[tick.status.phase](tick, spec)
    if tick.status.progress_time != tick.now:
        _check_deadline(tick, spec)
    wait = person_wait(spec, tick.status, tick.now)
    check_max_duration(tick, None if wait is None else wait[0], primary_changed=primary_changed(spec, tick.status))


def _check_deadline(tick: Tick, spec: BlueGreenSpec) -> None:
    """The Canary's deadline rule; until blue takes green's spec a rollback is one route write back to blue."""
    wait = person_wait(spec, tick.status, tick.now)
    changed = primary_changed(spec, tick.status)
    check_deadline(tick, None if wait is None else wait[0], primary_changed=changed)


def _new_revision(tick: Tick, spec: BlueGreenSpec) -> None:
    """A new revision restarts a rollout; while all traffic is on green it first goes back to blue."""
    status, target = tick.status, tick.obs.target
    if status.phase is not Phase.PROMOTING:
        _detect_revision(tick)  # the Canary's rule; it leaves Promoting and Finalising alone
        return
    revision, configs = target.pod_template_hash, dict(target.tracked_configs)
    if not target.exists or (revision == status.last_applied_spec and configs == dict(status.tracked_configs)):
        return
    if post_promotion_running(spec, status):
        # Green (serving everyone) is rolling to an unanalysed revision; blue is still the old, known one.
        tick.update(last_applied_spec=revision, tracked_configs=configs)
        start_progressing(
            tick,
            Reason.ANALYSIS_RESTARTED,
            f"New revision of {tick.target} during post-promotion analysis: all traffic back to blue "
            f"{tick.target}-primary, restarting",
        )
        return
    if status.canary_weight > 0:
        # Blue is already taking the analysed revision: route to it now rather than to a changing green.
        tick.act(SetWeights(100, 0))
        tick.update(canary_weight=0)
        tick.warn(
            Reason.PROMOTING,
            f"{tick.target} changed while blue is being promoted: all traffic moved to blue {tick.target}-primary; "
            "the new revision rolls out after this promotion",
        )


def desired_routes(spec: BlueGreenSpec, status: CanaryStatus) -> SetWeights | None:
    """The routes the VirtualService should hold for this status (None where Coalmine does not own them)."""
    if status.phase in (Phase.INITIALIZING, Phase.TERMINATING, Phase.TERMINATED) or not status.last_promoted_spec:
        return None
    previewing = status.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION) and status.gates.get(GATE_PREVIEW) == ON
    return SetWeights(
        status.primary_weight,
        status.canary_weight,
        match_active=previewing and bool(spec.preview.match),
        mirror_weight=spec.preview.mirror_weight if previewing and status.mirrored else None,
    )


def _finish(tick: Tick, spec: BlueGreenSpec) -> None:
    wait = person_wait(spec, tick.status, tick.now)
    desired = None if tick.obs.deleting else desired_routes(spec, tick.status)
    finish(tick, None if wait is None else wait[0], "" if wait is None else wait[1], desired)


def _steady_rule(tick: Tick, spec: BlueGreenSpec) -> None:
    _steady(tick)


def _waiting_rule(tick: Tick, spec: BlueGreenSpec) -> None:
    _waiting(tick)


def _nothing(tick: Tick, spec: BlueGreenSpec) -> None:
    return None


_RULES: dict[Phase, Callable[[Tick, BlueGreenSpec], None]] = {
    Phase.INITIALIZED: _steady_rule,
    Phase.SUCCEEDED: _steady_rule,
    Phase.FAILED: _steady_rule,
    Phase.WAITING: _waiting_rule,
    Phase.PROGRESSING: pre_promotion,
    Phase.WAITING_PROMOTION: waiting_promotion,
    Phase.PROMOTING: promoting,
    Phase.FINALISING: finalising,
    Phase.INITIALIZING: lambda tick, spec: _initialize(tick),
    Phase.TERMINATING: _nothing,
    Phase.TERMINATED: _nothing,
}

__all__ = [
    "GATE_POST_PROMOTION",
    "GATE_PREVIEW",
    "ON",
    "desired_routes",
    "judge_policy",
    "plan",
    "post_promotion_running",
    "step",
]
