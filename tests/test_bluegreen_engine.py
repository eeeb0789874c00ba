"""The BlueGreen engine, phase by phase: a pure table driven through the same tiny fake cluster as the Canary's.

What users rely on: traffic never leaves blue before the switch, the switch is one 0/100 step, a failure before blue
is touched puts everyone back on blue in one write, and green goes away only after the scale-down delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rollout_world import FAIL, NO_DATA, PASS, REJECTED, T0, World, hook, request

from analysis.verdict import Outcome, Verdict
from controller.rollout.bluegreen import GATE_POST_PROMOTION, desired_routes, judge_policy, plan, step
from controller.rollout.bluegreen_spec import BlueGreenSpec, parse_bluegreen_spec
from controller.rollout.decision import Decision, PromotePrimary, Reason, ScaleCanary, SetWeights
from controller.rollout.kinds import BLUEGREEN, CANARY
from controller.rollout.observations import HookOutcome, ManualRequest, RouteWeights
from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import HookType
from controller.rollout.status import CanaryStatus

MINUTE = 60.0
SUCCESS_RATE = {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}


def make_spec(**top: Any) -> BlueGreenSpec:
    """A podinfo BlueGreen: 1m looks, threshold 2, success rate checked, 2 pre-promotion looks, auto-promotion."""
    analysis = {"interval": "1m", "threshold": 2, "metrics": [SUCCESS_RATE], **top.pop("analysis", {})}
    raw: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": analysis,
        "prePromotionAnalysis": {"iterations": 2},
        "scaleDownDelaySeconds": 30,
        **top,
    }
    return parse_bluegreen_spec({key: value for key, value in raw.items() if value is not None})


@dataclass
class Run:
    """Drives spec + world tick by tick the way the operator does (plan → observe → step → apply)."""

    spec: BlueGreenSpec
    world: World = field(default_factory=World)
    status: CanaryStatus = field(default_factory=CanaryStatus)
    now: float = T0
    decisions: list[Decision] = field(default_factory=list)

    def tick(
        self,
        verdict: Verdict | None = PASS,
        hooks: dict[HookType, HookOutcome] | None = None,
        request: ManualRequest | None = None,
        advance: float = 0.0,
    ) -> Decision:
        self.now += advance
        probes = plan(self.spec, self.status, self.now)
        obs = self.world.observe(verdict if probes.metrics else None, hooks, request)
        decision = step(self.spec, self.status, obs, self.now)
        self.world.apply(decision)
        self.status = decision.status
        self.decisions.append(decision)
        return decision

    def look(self, verdict: Verdict | None = PASS, **kwargs: Any) -> Decision:
        return self.tick(verdict, advance=MINUTE, **kwargs)

    @property
    def weights(self) -> list[SetWeights]:
        return [a for d in self.decisions for a in d.actions if isinstance(a, SetWeights)]

    @property
    def events(self) -> list[tuple[Reason, str]]:
        return [(e.reason, e.message) for d in self.decisions for e in d.events]

    def initialized(self) -> Run:
        self.tick()
        self.tick(advance=5)
        assert self.status.phase is Phase.INITIALIZED, self.status
        return self

    def progressing(self, revision: str = "v2") -> Run:
        self.initialized()
        self.world.revision = revision
        self.tick(advance=5)
        assert self.status.phase is Phase.PROGRESSING, self.status
        # The operator ticks every few seconds: the next tick sees the scaled-up green ready.
        self.tick(advance=5)
        assert self.status.phase is Phase.PROGRESSING and self.status.hold is None, self.status
        return self

    def previewing(self) -> Run:
        self.progressing()
        self.look()  # the first look: pre-rollout hooks, then the preview routes go on
        return self

    def switched(self) -> Run:
        self.previewing()
        self.look()
        self.look()
        assert self.status.phase is Phase.PROMOTING, self.status
        return self


def blue_never_changed(run: Run) -> bool:
    return not any(isinstance(a, PromotePrimary) for d in run.decisions for a in d.actions)


# --- Initializing, new revision, green readiness ------------------------------------------------------------------


def test_initialization_puts_all_traffic_on_blue_and_scales_green_down() -> None:
    run = Run(make_spec()).initialized()
    assert run.world.routes == RouteWeights(100, 0)
    assert run.world.primary_revision == "v1" and not run.world.canary_up
    assert run.status.condition("Ready").status == "True"  # type: ignore[union-attr]


def test_a_new_revision_scales_green_up_with_no_traffic_and_no_preview_yet() -> None:
    run = Run(make_spec(preview={"mirror": True})).progressing()
    started = run.decisions[-2]  # progressing() ends with a tick that sees green ready
    assert ScaleCanary(up=True) in started.actions
    assert run.weights[-1] == SetWeights(100, 0)
    assert run.status.condition("Ready").status == "False"  # type: ignore[union-attr]
    assert run.status.condition("Reconciling").status == "True"  # type: ignore[union-attr]


def test_green_not_ready_holds_without_preview_and_the_deadline_fails_it_back_to_blue() -> None:
    run = Run(make_spec(progressDeadlineSeconds=300, preview={"mirror": True})).progressing()
    run.world.canary_ready = 40.0
    run.look()
    assert run.status.hold is Hold.CANARY_NOT_READY and run.world.mirror_weight is None
    for _ in range(6):
        run.look()
    assert run.status.phase is Phase.FAILED and run.events[-1][0] is Reason.PROGRESS_DEADLINE_EXCEEDED
    assert run.world.routes == RouteWeights(100, 0) and not run.world.canary_up
    assert blue_never_changed(run)


# --- preview -------------------------------------------------------------------------------------------------------


def test_mirror_preview_copies_the_configured_share_of_traffic_to_green() -> None:
    run = Run(make_spec(preview={"mirror": True, "mirrorWeight": 30})).previewing()
    assert run.weights[-1] == SetWeights(100, 0, mirror_weight=30)
    assert run.status.mirrored and run.status.canary_weight == 0
    assert run.events[-1][0] is Reason.ANALYSIS_STARTED and "30% of live traffic mirrored" in run.events[-1][1]


def test_match_preview_routes_matching_requests_to_green() -> None:
    match = [{"headers": {"x-preview": {"exact": "1"}}}]
    run = Run(make_spec(preview={"match": match})).previewing()
    assert run.weights[-1] == SetWeights(100, 0, match_active=True)
    assert run.spec.canary.analysis.match == tuple(match)  # the router builds the match route from the view


def test_mirror_and_match_together() -> None:
    match = [{"headers": {"x-preview": {"exact": "1"}}}]
    run = Run(make_spec(preview={"match": match, "mirror": True})).previewing()
    assert run.weights[-1] == SetWeights(100, 0, match_active=True, mirror_weight=100)


def test_no_preview_analyses_greens_own_traffic() -> None:
    run = Run(make_spec()).previewing()
    assert run.weights[-1] == SetWeights(100, 0)
    assert plan(run.spec, run.status, run.now + MINUTE).metrics  # the look still reads green's metrics


def test_the_first_look_runs_pre_rollout_hooks_and_a_failing_one_counts_as_a_failed_check() -> None:
    spec = make_spec(analysis={"threshold": 1, "webhooks": hook("pre-rollout")}, preview={"mirror": True})
    run = Run(spec).progressing()
    assert plan(spec, run.status, run.now + MINUTE).hooks == (HookType.PRE_ROLLOUT,)
    assert not plan(spec, run.status, run.now + MINUTE).metrics
    run.look(hooks={HookType.PRE_ROLLOUT: HookOutcome(False, "smoke test failed")})
    assert run.status.phase is Phase.FAILED and run.world.mirror_weight is None


def test_drifted_routes_during_the_preview_are_restored_with_the_mirror() -> None:
    run = Run(make_spec(preview={"mirror": True, "mirrorWeight": 50})).previewing()
    run.world.routes = RouteWeights(50, 50)  # someone edited the VirtualService
    decision = run.tick(advance=1)
    assert SetWeights(100, 0, mirror_weight=50) in decision.actions
    assert Reason.ROUTES_DRIFTED in [e.reason for e in decision.events]


# --- pre-promotion analysis ------------------------------------------------------------------------------------------


def test_pre_promotion_passes_after_its_iterations_and_switches_all_traffic_at_once() -> None:
    run = Run(make_spec(preview={"mirror": True})).previewing()
    run.look()
    assert run.status.phase is Phase.PROGRESSING and run.status.iterations == 1
    switched = run.look()
    assert switched.status.phase is Phase.PROMOTING
    assert SetWeights(0, 100) in switched.actions  # no mirror, no match: everyone on green
    assert run.world.routes == RouteWeights(0, 100) and run.world.mirror_weight is None
    # Without post-promotion analysis blue takes green's spec right after (never before) the switch.
    assert switched.actions.index(SetWeights(0, 100)) < switched.actions.index(PromotePrimary("v2"))


def test_pre_promotion_failure_rolls_back_and_traffic_never_left_blue() -> None:
    run = Run(make_spec(preview={"mirror": True})).previewing()
    run.look(FAIL)
    assert run.status.hold is Hold.FAILED_CHECK and run.status.phase is Phase.PROGRESSING
    run.look(FAIL)
    assert run.status.phase is Phase.FAILED
    assert all(w.primary == 100 for w in run.weights)
    assert run.world.mirror_weight is None and not run.world.canary_up
    assert blue_never_changed(run) and run.world.primary_revision == "v1"


def test_a_rejected_comparison_rolls_back_on_the_spot() -> None:
    run = Run(make_spec(analysis={"comparison": {}})).previewing()
    run.look(REJECTED)
    assert run.status.phase is Phase.FAILED and run.events[-1][0] is Reason.COMPARISON_REJECTED


def test_no_data_holds_without_counting_a_look() -> None:
    run = Run(make_spec()).previewing()
    run.look(NO_DATA)
    assert run.status.hold is Hold.NO_DATA and run.status.iterations == 0 and run.status.failed_checks == 0


def test_duration_run_switches_once_the_duration_passed() -> None:
    run = Run(make_spec(prePromotionAnalysis={"duration": "3m"})).previewing()
    run.look()
    run.look()
    assert run.status.phase is Phase.PROGRESSING  # 2 minutes in
    assert run.look().status.phase is Phase.PROMOTING


def test_without_pre_promotion_analysis_green_is_switched_once_ready() -> None:
    run = Run(make_spec(prePromotionAnalysis=None)).previewing()
    assert run.status.phase is Phase.PROMOTING and run.world.routes == RouteWeights(0, 100)


def test_require_evidence_holds_the_switch_until_the_judge_is_sure() -> None:
    unsure = Verdict(Outcome.PASS, "not enough requests", promotable=False, hold_reason="120/1000 requests")
    run = Run(make_spec(analysis={"comparison": {"requireEvidence": True}})).previewing()
    run.look(unsure)
    run.look(unsure)
    assert run.status.phase is Phase.PROGRESSING and run.status.hold is Hold.EVIDENCE
    assert run.look().status.phase is Phase.PROMOTING


# --- WaitingPromotion -------------------------------------------------------------------------------------------------


def test_auto_promotion_after_seconds_waits_then_switches() -> None:
    run = Run(make_spec(autoPromotion={"afterSeconds": 150})).previewing()
    run.look()
    run.look()
    assert run.status.phase is Phase.WAITING_PROMOTION and run.status.hold is Hold.TIMED_PAUSE
    assert "in 2m30s" in run.status.message
    run.look()
    run.look()
    assert run.status.phase is Phase.WAITING_PROMOTION and run.world.routes == RouteWeights(100, 0)
    assert run.look().status.phase is Phase.PROMOTING


def test_manual_promotion_waits_for_a_person_without_a_deadline_then_switches_on_request() -> None:
    run = Run(make_spec(autoPromotion={"enabled": False}, progressDeadlineSeconds=120)).previewing()
    run.look()
    run.look()
    assert run.status.phase is Phase.WAITING_PROMOTION and run.status.hold is Hold.MANUAL_PAUSE
    assert "kubectl coalmine promote podinfo" in run.status.message
    for _ in range(10):  # ten minutes: far past the deadline, which does not run while a person is awaited
        run.look()
    assert run.status.phase is Phase.WAITING_PROMOTION
    switched = run.tick(request=request("promote"), advance=1)
    assert switched.status.phase is Phase.PROMOTING and SetWeights(0, 100) in switched.actions


def test_analysis_keeps_running_while_waiting_and_a_failure_rolls_back() -> None:
    run = Run(make_spec(autoPromotion={"enabled": False}, analysis={"threshold": 1})).previewing()
    run.look()
    run.look()
    run.look(FAIL)
    assert run.status.phase is Phase.FAILED and blue_never_changed(run)


def test_confirm_promotion_hook_gates_the_switch() -> None:
    run = Run(make_spec(analysis={"webhooks": hook("confirm-promotion")})).previewing()
    run.look()
    run.look()
    assert run.status.phase is Phase.WAITING_PROMOTION and run.status.hold is Hold.CONFIRM_PROMOTION
    assert HookType.CONFIRM_PROMOTION in plan(run.spec, run.status, run.now + MINUTE).hooks
    run.look(hooks={HookType.CONFIRM_PROMOTION: HookOutcome(False, "closed")})
    assert run.status.phase is Phase.WAITING_PROMOTION
    assert run.look(hooks={HookType.CONFIRM_PROMOTION: HookOutcome(True)}).status.phase is Phase.PROMOTING


def test_promote_during_pre_promotion_is_refused_with_a_reason_but_promote_full_skips_ahead() -> None:
    run = Run(make_spec(prePromotionAnalysis={"iterations": 5})).previewing()
    refused = run.tick(request=request("promote", "r1"), advance=1)
    assert [e.reason for e in refused.events] == [Reason.REQUEST_IGNORED]
    run.tick(request=request("promote-full", "r2"), advance=1)
    assert run.look().status.phase is Phase.PROMOTING


# --- Promoting: post-promotion analysis, copy to blue --------------------------------------------------------------


def test_post_promotion_failure_switches_traffic_back_to_blue_at_once() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 2}, analysis={"threshold": 1})).switched()
    failed = run.look(FAIL)
    assert failed.status.phase is Phase.FAILED
    assert SetWeights(100, 0) in failed.actions and ScaleCanary(up=False) in failed.actions
    assert run.world.routes == RouteWeights(100, 0)
    assert blue_never_changed(run) and run.world.primary_revision == "v1"


def test_post_promotion_pass_copies_green_to_blue_then_returns_traffic_to_blue() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 2})).switched()
    run.look()
    assert run.world.primary_revision == "v1"
    copying = run.look()
    assert PromotePrimary("v2") in copying.actions and copying.status.gates[GATE_POST_PROMOTION] == "passed"
    assert run.world.routes == RouteWeights(0, 100)  # still on green while blue rolls out
    run.world.primary_ready = 50.0
    assert run.tick(advance=5).status.hold is Hold.PRIMARY_NOT_READY
    run.world.primary_ready = 100.0
    back = run.tick(advance=5)
    assert back.status.phase is Phase.FINALISING and run.world.routes == RouteWeights(100, 0)
    assert run.world.canary_up  # green stays up for the scale-down delay


def test_post_promotion_runs_thresholds_only_because_blue_has_no_traffic() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 1}, analysis={"comparison": {}})).previewing()
    assert judge_policy(run.spec, run.status).error_rate is not None
    run.look()
    run.look()
    policy = judge_policy(run.spec, run.status)
    assert run.status.phase is Phase.PROMOTING
    assert policy.error_rate is None and policy.compared == ()
    assert [t.name for t in policy.thresholds] == ["request-success-rate"]
    assert run.status.judge == {} and run.status.failed_checks == 0  # a fresh judge after the switch


def test_scale_down_delay_is_honoured_then_succeeded() -> None:
    run = Run(make_spec()).switched()
    run.tick(advance=5)  # blue copied and ready: Finalising
    assert run.status.phase is Phase.FINALISING
    run.tick(advance=20)
    assert run.world.canary_up and run.status.hold is Hold.TIMED_PAUSE and "in 10s" in run.status.message
    done = run.tick(advance=10)
    assert done.status.phase is Phase.SUCCEEDED and ScaleCanary(up=False) in done.actions
    assert not run.world.canary_up and run.status.last_promoted_spec == "v2"
    assert run.status.condition("Ready").status == "True"  # type: ignore[union-attr]


def test_zero_scale_down_delay_finishes_in_the_same_tick() -> None:
    run = Run(make_spec(scaleDownDelaySeconds=0)).switched()
    assert run.tick(advance=5).status.phase is Phase.SUCCEEDED


def test_a_new_revision_during_post_promotion_goes_back_to_blue_and_restarts() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 3})).switched()
    run.world.revision = "v3"
    restarted = run.tick(advance=5)
    assert restarted.status.phase is Phase.PROGRESSING and run.world.routes == RouteWeights(100, 0)
    assert restarted.status.last_applied_spec == "v3" and blue_never_changed(run)


def test_a_new_revision_while_blue_is_being_promoted_moves_traffic_to_blue_and_waits() -> None:
    run = Run(make_spec()).switched()  # no post-promotion: blue is already being promoted
    run.world.primary_ready = 10.0
    run.world.revision = "v3"
    moved = run.tick(advance=1)
    assert moved.status.phase is Phase.PROMOTING and run.world.routes == RouteWeights(100, 0)
    run.world.primary_ready = 100.0
    run.tick(advance=5)
    run.tick(advance=30)
    assert run.status.phase is Phase.SUCCEEDED and run.status.last_promoted_spec == "v2"
    assert run.tick(advance=5).status.phase is Phase.PROGRESSING  # then v3 rolls out


def test_abort_during_post_promotion_switches_back_but_not_once_blue_is_changing() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 3})).switched()
    aborted = run.tick(request=request("abort"), advance=1)
    assert aborted.status.phase is Phase.FAILED and run.world.routes == RouteWeights(100, 0)
    late = Run(make_spec()).switched()
    late.world.primary_ready = 10.0
    refused = late.tick(request=request("abort"), advance=1)
    assert refused.status.phase is Phase.PROMOTING and refused.events[-1].reason is Reason.REQUEST_IGNORED


def test_user_pause_freezes_post_promotion_and_resume_continues() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 1})).switched()
    run.tick(request=request("pause", "p1"), advance=1)
    assert not plan(run.spec, run.status, run.now + MINUTE).metrics
    for _ in range(15):
        run.look()
    assert run.status.phase is Phase.PROMOTING and run.status.hold is Hold.USER_PAUSE
    run.tick(request=request("resume", "p2"), advance=1)
    run.look()
    assert run.status.gates.get(GATE_POST_PROMOTION) == "passed"


# --- restart, suspend, deletion ------------------------------------------------------------------------------------


def test_a_restarted_operator_reading_status_back_mid_switch_decides_the_same() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 2})).switched()
    run.look()
    stored = CanaryStatus.from_dict(run.status.to_dict())
    assert stored == run.status
    obs = run.world.observe(PASS)
    assert step(run.spec, stored, obs, run.now + MINUTE) == step(run.spec, run.status, obs, run.now + MINUTE)


def test_suspend_freezes_everything() -> None:
    run = Run(make_spec()).previewing()
    frozen = make_spec(suspend=True)
    before = run.status
    decision = step(frozen, before, run.world.observe(PASS), run.now + 10 * MINUTE)
    assert decision.actions == () and decision.status.phase is before.phase
    assert [e.reason.value for e in decision.events] == ["Suspended"]  # once, on entering
    again = step(frozen, decision.status, run.world.observe(PASS), run.now + 11 * MINUTE)
    assert again.actions == () and again.events == ()
    ready = again.status.condition("Ready")
    assert ready is not None and ready.message.startswith("Suspended")
    assert plan(frozen, before, run.now + MINUTE).metrics is False


def test_deletion_with_revert_on_deletion_restores_the_target() -> None:
    run = Run(make_spec(revertOnDeletion=True)).initialized()
    run.world.deleting = True
    assert run.tick(advance=1).status.phase is Phase.TERMINATING and run.world.canary_up
    assert run.tick(advance=1).status.phase is Phase.TERMINATED


def test_desired_routes_keep_the_preview_only_while_previewing() -> None:
    spec = make_spec(preview={"mirror": True, "mirrorWeight": 20})
    run = Run(spec).previewing()
    assert desired_routes(spec, run.status) == SetWeights(100, 0, mirror_weight=20)
    run.look()
    run.look()
    assert desired_routes(spec, run.status) == SetWeights(0, 100)


def test_a_bluegreen_counts_as_promoted_only_once_blue_takes_greens_spec() -> None:
    """``coalmine simulate`` and the operator shell ask the kind when a rollout is decided."""
    run = Run(make_spec(postPromotionAnalysis={"iterations": 1})).switched()
    assert not BLUEGREEN.promoted(run.spec, run.status)  # all traffic on green, but it can still go back to blue
    run.look()
    assert BLUEGREEN.promoted(run.spec, run.status)
    assert CANARY.promoted(run.spec.canary, run.status)


def test_retry_after_a_failure_runs_the_same_revision_again() -> None:
    run = Run(make_spec(analysis={"threshold": 1})).previewing()
    run.look(FAIL)
    assert run.status.phase is Phase.FAILED
    retried = run.tick(request=request("retry", "again"), advance=5)
    assert retried.status.phase is Phase.PROGRESSING and retried.status.last_applied_spec == "v2"
    assert ScaleCanary(up=True) in retried.actions and run.world.routes == RouteWeights(100, 0)
    assert retried.status.failed_checks == 0 and "bluegreen/preview" not in retried.status.gates


def test_a_switch_whose_status_write_was_lost_is_redone_on_the_next_tick() -> None:
    """The operator crashed after the VirtualService write but before the status write: the next tick starts from
    the old status and the routes already at 0/100, and must switch again rather than call it drift."""
    run = Run(make_spec(postPromotionAnalysis={"iterations": 2})).previewing()
    run.look()
    before = run.status
    lost = step(run.spec, before, run.world.observe(PASS), run.now + MINUTE)
    run.world.apply(lost)  # the routes were written...
    assert run.world.routes == RouteWeights(0, 100)
    again = step(run.spec, before, run.world.observe(PASS), run.now + MINUTE + 2)  # ...the status was not
    assert again.status.phase is Phase.PROMOTING and SetWeights(0, 100) in again.actions
    assert Reason.ROUTES_DRIFTED not in [e.reason for e in again.events]


# --- waits for a person, stalls, readiness (review fixes) ----------------------------------------------------------


def test_a_wait_for_a_person_survives_looks_without_data_and_promote_still_switches() -> None:
    run = Run(make_spec(autoPromotion={"enabled": False}, progressDeadlineSeconds=300)).previewing()
    run.look()
    run.look()
    assert run.status.phase is Phase.WAITING_PROMOTION and run.status.hold is Hold.MANUAL_PAUSE
    for _ in range(12):  # twelve minutes without data, deadline five
        decision = run.look(NO_DATA)
        assert decision.status.phase is Phase.WAITING_PROMOTION and decision.status.hold is Hold.MANUAL_PAUSE
    assert run.status.no_data_checks == 12
    switched = run.tick(request=request("promote"), advance=1)
    assert Reason.REQUEST_IGNORED not in [e.reason for e in switched.events]
    assert switched.status.phase is Phase.PROMOTING and SetWeights(0, 100) in switched.actions


def test_a_refused_confirm_promotion_survives_a_failed_look_and_promote_still_switches() -> None:
    spec = make_spec(analysis={"threshold": 3, "webhooks": hook("confirm-promotion")}, progressDeadlineSeconds=300)
    run = Run(spec).previewing()
    closed = {HookType.CONFIRM_PROMOTION: HookOutcome(False, "closed")}
    run.look(hooks=closed)
    run.look(hooks=closed)
    assert run.status.phase is Phase.WAITING_PROMOTION and run.status.hold is Hold.CONFIRM_PROMOTION
    run.look(FAIL, hooks=closed)
    for _ in range(8):
        run.look(NO_DATA, hooks=closed)
    assert run.status.phase is Phase.WAITING_PROMOTION and run.status.hold is Hold.CONFIRM_PROMOTION
    assert run.status.failed_checks == 1 and "last look:" in run.status.message
    assert run.tick(request=request("promote"), advance=1).status.phase is Phase.PROMOTING


def test_a_stalled_copy_to_blue_is_not_rolled_back_and_finishes_once_blue_is_ready() -> None:
    run = Run(make_spec(progressDeadlineSeconds=300)).switched()  # no post-promotion: blue is being updated
    assert run.world.primary_revision == "v2"
    run.world.primary_ready = 30.0
    for _ in range(10):
        decision = run.look()
        assert decision.status.phase is Phase.PROMOTING and SetWeights(100, 0) not in decision.actions
    stalled = [(r, m) for r, m in run.events if r is Reason.PROMOTION_STALLED]
    assert len(stalled) == 1 and Reason.PROGRESS_DEADLINE_EXCEEDED not in [r for r, _ in run.events]
    assert run.status.hold is Hold.PROMOTION_STALLED
    assert run.status.condition("Stalled").status == "True"  # type: ignore[union-attr]
    assert run.world.routes == RouteWeights(0, 100)  # everyone stays on the analysed green
    run.world.primary_ready = 100.0
    assert run.tick(advance=5).status.phase is Phase.FINALISING
    assert run.world.routes == RouteWeights(100, 0)


def test_the_deadline_still_rolls_back_during_post_promotion_while_blue_is_untouched() -> None:
    run = Run(make_spec(postPromotionAnalysis={"iterations": 3}, progressDeadlineSeconds=300)).switched()
    for _ in range(7):
        run.look(NO_DATA)
    assert run.status.phase is Phase.FAILED and run.world.routes == RouteWeights(100, 0)
    assert blue_never_changed(run)


def test_nothing_is_gathered_while_green_is_not_ready() -> None:
    run = Run(make_spec(analysis={"webhooks": hook("pre-rollout", "rollout")})).progressing()
    run.world.canary_ready = 20.0
    run.look()
    assert run.status.hold is Hold.CANARY_NOT_READY
    probes = plan(run.spec, run.status, run.now + MINUTE)
    assert not probes.metrics and probes.hooks == ()
    run.look()
    run.world.canary_ready = 100.0
    run.tick(advance=2)
    assert plan(run.spec, run.status, run.now + 2).hooks == (HookType.PRE_ROLLOUT,)
    first = run.tick(hooks={HookType.PRE_ROLLOUT: HookOutcome(True)}, advance=2)
    assert first.status.failed_checks == 0 and first.status.gates.get("pre-rollout") == "passed"
