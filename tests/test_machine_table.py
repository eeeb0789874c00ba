"""Transition tables for the rollout engine: one row per rule, each phase covered (see docs/phases.md)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from rollout_world import (
    FAIL,
    NO_DATA,
    PASS,
    REJECTED,
    T0,
    Run,
    World,
    gates,
    hook,
    make_spec,
    request,
)

from analysis.verdict import Outcome, Verdict
from controller.rollout.decision import (
    Event,
    EventType,
    Initialize,
    PromotePrimary,
    ReleaseFinalizer,
    RestoreOnDelete,
    ScaleCanary,
    SetWeights,
)
from controller.rollout.machine import Probes, plan, step
from controller.rollout.observations import RouteWeights
from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import HookType
from controller.rollout.status import CanaryStatus

MINUTE = 60.0


def reasons(run: Run) -> list[str]:
    return [event.reason.value for decision in run.decisions for event in decision.events]


def messages(events: tuple[Event, ...]) -> str:
    return " | ".join(event.message for event in events)


def weights(run: Run) -> list[int]:
    return [a.canary for d in run.decisions for a in d.actions if isinstance(a, SetWeights)]


# --- Initializing -------------------------------------------------------------------------------------------------


def test_initialization_creates_the_primary_first_and_routes_only_once_it_is_ready() -> None:
    run = Run(make_spec(), World(primary_ready=0))
    first = run.tick()
    assert first.status.phase is Phase.INITIALIZING
    assert first.actions == (Initialize(),)  # no routes yet: the primary cannot serve
    assert first.status.hold is Hold.PRIMARY_NOT_READY
    assert [e.reason.value for e in first.events] == ["Initializing"]
    run.world.primary_ready = 100
    done = run.tick(advance=10)
    assert done.status.phase is Phase.INITIALIZED
    assert SetWeights(100, 0) in done.actions and ScaleCanary(up=False) in done.actions
    assert done.status.last_applied_spec == done.status.last_promoted_spec == "v1"
    assert "Initialization done! podinfo" in messages(done.events)


def test_initialization_fails_after_the_progress_deadline_without_touching_traffic() -> None:
    run = Run(make_spec(progressDeadlineSeconds=300), World(primary_ready=0))
    run.tick()
    still = run.tick(advance=290)
    assert still.status.phase is Phase.INITIALIZING
    failed = run.tick(advance=20)
    assert failed.status.phase is Phase.FAILED
    assert not any(isinstance(a, SetWeights | ScaleCanary) for a in failed.actions)
    assert "Progress deadline exceeded" in messages(failed.events)
    # a new revision starts the initialization over
    run.world.revision, run.world.primary_ready = "v2", 100
    again = run.tick(advance=10)
    assert again.status.phase is Phase.INITIALIZING and again.actions == (Initialize(),)
    assert run.tick(advance=10).status.phase is Phase.INITIALIZED
    assert run.status.last_promoted_spec == "v2"


def test_missing_target_holds_initialization() -> None:
    run = Run(make_spec(), World(target_exists=False))
    decision = run.tick()
    assert decision.status.hold is Hold.TARGET_MISSING
    assert decision.actions == ()
    assert decision.events[-1].type is EventType.WARNING


# --- new revisions --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "starts"),
    [
        ({"revision": "v2"}, True),
        ({"configs": {"configmap/podinfo": "abc"}}, True),
        ({}, False),
    ],
    ids=["pod-template", "config-checksum", "nothing"],
)
def test_a_new_revision_is_detected_by_hash_or_config_checksum(change: dict[str, object], starts: bool) -> None:
    run = Run(make_spec()).initialized()
    for key, value in change.items():
        setattr(run.world, key, value)
    decision = run.tick(advance=30)
    if starts:
        assert decision.status.phase is Phase.PROGRESSING
        assert ScaleCanary(up=True) in decision.actions
        assert "New revision detected! Scaling up podinfo" in messages(decision.events)
    else:
        assert decision.status.phase is Phase.INITIALIZED
        assert decision.actions == () and decision.events == ()


def test_a_revert_to_the_last_promoted_spec_is_not_a_rollout() -> None:
    run = Run(make_spec()).progressing("v2")
    run.tick(request=request("abort"), advance=5)
    assert run.status.phase is Phase.FAILED
    run.world.revision = "v1"  # back to what the primary runs
    decision = run.tick(advance=5)
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.events[0].reason.value == "RevertDetected"
    assert not any(isinstance(a, ScaleCanary) and a.up for a in decision.actions)


def test_a_failed_revision_stays_failed_until_something_changes() -> None:
    run = Run(make_spec()).progressing("v2")
    run.tick(request=request("abort"), advance=5)
    for _ in range(3):
        assert run.tick(advance=MINUTE).status.phase is Phase.FAILED
    run.world.revision = "v3"
    assert run.tick(advance=5).status.phase is Phase.PROGRESSING


# --- Waiting (confirm-rollout) -------------------------------------------------------------------------------------


def test_confirm_rollout_holds_in_waiting_without_a_deadline_and_opens_on_approval() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "webhooks": hook("confirm-rollout")})
    run = Run(spec).initialized()
    run.world.revision = "v2"
    waiting = run.tick(advance=5)
    assert waiting.status.phase is Phase.WAITING and waiting.status.hold is Hold.CONFIRM_ROLLOUT
    assert not any(isinstance(a, ScaleCanary) for a in waiting.actions)
    assert plan(spec, run.status, run.now + 1).hooks == (HookType.CONFIRM_ROLLOUT,)
    closed = gates(False, HookType.CONFIRM_ROLLOUT, message="HTTP 403")
    for _ in range(20):  # 20 minutes, twice the deadline: a human wait never fails the rollout
        assert run.tick(hooks=closed, advance=MINUTE).status.phase is Phase.WAITING
    assert plan(spec, run.status, run.now + 1).hooks == ()  # polled once per interval
    opened = run.tick(hooks=gates(True, HookType.CONFIRM_ROLLOUT), advance=MINUTE)
    assert opened.status.phase is Phase.PROGRESSING
    assert ScaleCanary(up=True) in opened.actions


def test_promote_request_approves_a_waiting_rollout() -> None:
    run = Run(make_spec({"stepWeight": 50, "webhooks": hook("confirm-rollout")})).initialized()
    run.world.revision = "v2"
    run.tick(advance=5)
    decision = run.tick(request=request("promote"), advance=5)
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.last_request_id == "r1"


# --- Progressing ---------------------------------------------------------------------------------------------------


def test_happy_path_one_step_per_interval_then_promotion_and_finalising() -> None:
    run = Run(make_spec()).progressing()
    assert run.tick(advance=30).status.canary_weight == 0  # first look is one interval after detection
    assert run.tick(advance=30).status.canary_weight == 20
    assert run.tick(advance=59).status.canary_weight == 20  # not due yet
    assert run.tick(advance=1).status.canary_weight == 40
    assert run.tick(advance=MINUTE).status.canary_weight == 60
    promoting = run.tick(advance=MINUTE)
    assert promoting.status.phase is Phase.PROMOTING
    assert PromotePrimary("v2") in promoting.actions
    finalising = run.tick(advance=5)
    assert finalising.status.phase is Phase.FINALISING
    assert SetWeights(100, 0) in finalising.actions
    done = run.tick(advance=5)
    assert done.status.phase is Phase.SUCCEEDED
    assert ScaleCanary(up=False) in done.actions
    assert done.status.last_promoted_spec == "v2"
    assert "Canary analysis completed successfully, promotion finished." in messages(done.events)
    assert weights(run) == [0, 0, 20, 40, 60, 0, 0]
    assert "Advance podinfo canary weight 20" in [e.message for d in run.decisions for e in d.events]


def test_canary_not_ready_holds_and_then_the_deadline_rolls_back() -> None:
    run = Run(make_spec(progressDeadlineSeconds=600)).progressing()
    run.world.canary_ready = 50
    held = run.tick(advance=MINUTE)
    assert held.status.hold is Hold.CANARY_NOT_READY and held.status.canary_weight == 0
    run.tick(advance=500)
    failed = run.tick(advance=MINUTE)
    assert failed.status.phase is Phase.FAILED
    assert "Progress deadline exceeded" in messages(failed.events)
    assert failed.actions == (SetWeights(100, 0), ScaleCanary(up=False))


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_failed_checks_are_cumulative_and_roll_back_at_the_threshold(threshold: int) -> None:
    run = Run(make_spec({"interval": "1m", "threshold": threshold, "stepWeight": 10, "maxWeight": 100})).progressing()
    run.tick(advance=MINUTE)  # first look → 10 %
    outcomes = [FAIL, PASS] * threshold
    for verdict in outcomes:
        decision = run.tick(verdict=verdict, advance=MINUTE)
        if decision.status.phase is Phase.FAILED:
            break
    assert run.status.phase is Phase.FAILED
    assert run.status.failed_checks == threshold  # passing looks in between never reset the count
    assert f"Rolling back podinfo failed checks threshold reached {threshold}" in messages(run.decisions[-1].events)
    assert run.status.canary_weight == 0 and run.world.routes == RouteWeights(100, 0)


def test_a_failing_look_halts_advancement_with_a_warning() -> None:
    run = Run(make_spec({"interval": "1m", "threshold": 3, "stepWeight": 20, "maxWeight": 60})).progressing()
    run.tick(advance=MINUTE)
    decision = run.tick(verdict=FAIL, advance=MINUTE)
    assert decision.status.canary_weight == 20 and decision.status.hold is Hold.FAILED_CHECK
    assert decision.events[0].type is EventType.WARNING
    assert "Halt podinfo advancement: request-success-rate 95.00% < 99%" in decision.events[0].message


def test_no_data_is_counted_apart_and_never_advances_or_promotes() -> None:
    run = Run(make_spec({"interval": "1m", "threshold": 1, "noDataLimit": 4, "stepWeight": 50})).progressing()
    run.tick(advance=MINUTE)
    run.tick(advance=MINUTE)  # → 100 (last step)
    for count in range(1, 4):
        decision = run.tick(verdict=NO_DATA, advance=MINUTE)
        assert decision.status.phase is Phase.PROGRESSING
        assert decision.status.no_data_checks == count and decision.status.failed_checks == 0
        assert decision.status.hold is Hold.NO_DATA
    assert run.tick(verdict=PASS, advance=MINUTE).status.phase is Phase.PROMOTING


def test_persistent_no_data_ends_at_the_no_data_limit_not_the_deadline() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "noDataLimit": 8}, progressDeadlineSeconds=300)
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    for _ in range(7):  # seven minutes of no data, deadline five minutes: the looks are still happening
        assert run.tick(verdict=NO_DATA, advance=MINUTE).status.phase is Phase.PROGRESSING
    assert run.tick(verdict=NO_DATA, advance=MINUTE).status.phase is Phase.FAILED
    assert "no data for 8 looks in a row (noDataLimit 8)" in run.status.message


def test_a_rejected_comparison_rolls_back_at_once_with_its_reason() -> None:
    run = Run(make_spec({"interval": "1m", "threshold": 5, "stepWeight": 20, "comparison": {}})).progressing()
    run.tick(advance=MINUTE)
    decision = run.tick(verdict=REJECTED, advance=MINUTE)
    assert decision.status.phase is Phase.FAILED
    assert decision.events[0].reason.value == "ComparisonRejected"
    assert "error rate 3.1× the primary's" in decision.events[0].message
    assert decision.status.evidence["outcome"] == "rejected"


def test_the_first_look_runs_pre_rollout_hooks_and_a_failure_is_a_failed_check() -> None:
    spec = make_spec({"interval": "1m", "threshold": 2, "stepWeight": 50, "webhooks": hook("pre-rollout")})
    run = Run(spec).progressing()
    probes = plan(spec, run.status, run.now + MINUTE)
    assert probes.hooks == (HookType.PRE_ROLLOUT,) and not probes.metrics
    failed = run.tick(hooks=gates(False, HookType.PRE_ROLLOUT, message="load test refused"), advance=MINUTE)
    assert failed.status.failed_checks == 1 and failed.status.canary_weight == 0
    passed = run.tick(hooks=gates(True, HookType.PRE_ROLLOUT), advance=MINUTE)
    assert passed.status.canary_weight == 50
    assert plan(spec, run.status, run.now + MINUTE).hooks == ()  # pre-rollout runs once per revision


def test_rollout_hooks_run_with_each_look_and_a_failure_counts() -> None:
    spec = make_spec({"interval": "1m", "threshold": 2, "stepWeight": 50, "webhooks": hook("rollout")})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    assert plan(spec, run.status, run.now + MINUTE).hooks == (HookType.ROLLOUT,)
    decision = run.tick(hooks=gates(False, HookType.ROLLOUT, message="HTTP 500"), advance=MINUTE)
    assert decision.status.failed_checks == 1 and decision.status.canary_weight == 50


def test_a_rollback_webhook_that_answers_rolls_back() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "webhooks": hook("rollback")})
    run = Run(spec).progressing()
    run.tick(hooks=gates(False, HookType.ROLLBACK), advance=MINUTE)
    assert run.status.canary_weight == 50
    decision = run.tick(hooks=gates(True, HookType.ROLLBACK, message="operator pressed the button"), advance=MINUTE)
    assert decision.status.phase is Phase.FAILED
    assert decision.events[0].reason.value == "RollbackRequested"


def test_confirm_traffic_increase_gates_each_increase() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "webhooks": hook("confirm-traffic-increase")})
    run = Run(spec).progressing()
    assert HookType.CONFIRM_TRAFFIC_INCREASE in plan(spec, run.status, run.now + MINUTE).hooks
    closed = run.tick(hooks=gates(False, HookType.CONFIRM_TRAFFIC_INCREASE), advance=MINUTE)
    assert closed.status.canary_weight == 0 and closed.status.hold is Hold.CONFIRM_TRAFFIC_INCREASE
    opened = run.tick(hooks=gates(True, HookType.CONFIRM_TRAFFIC_INCREASE), advance=MINUTE)
    assert opened.status.canary_weight == 50
    # a person can open it too
    run.tick(hooks=gates(False, HookType.CONFIRM_TRAFFIC_INCREASE), advance=MINUTE)
    run.tick(request=request("promote"), advance=1)
    assert run.tick(advance=MINUTE).status.canary_weight == 100


def test_a_missing_verdict_records_no_look() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "metrics": [{"name": "request-success-rate"}]})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    before = run.status
    decision = step(spec, before, run.world.observe(), run.now + MINUTE)  # the operator did not run the look
    assert decision.status.last_analysis_time == before.last_analysis_time
    assert decision.status.canary_weight == 50 and decision.status.hold is Hold.ANALYSIS_PENDING


def test_the_judge_state_and_evidence_are_kept_in_status() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "comparison": {}})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    verdict = Verdict(Outcome.PASS, "within tolerance", state={"logE": [0.1, 0.2]})
    decision = run.tick(verdict=verdict, advance=MINUTE)
    assert decision.status.judge == {"logE": [0.1, 0.2]}
    assert decision.status.evidence == verdict.to_dict()


def test_windows_are_disjoint_and_cover_the_time_between_looks() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 10, "metrics": [{"name": "request-success-rate"}]})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    windows = []
    for gap in (MINUTE, 75.0, MINUTE, 90.0):
        probes = plan(spec, run.status, run.now + gap)
        assert probes.metrics and probes.window is not None
        windows.append(probes.window)
        run.tick(advance=gap)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start == end


# --- steps: timed and manual pauses -------------------------------------------------------------------------------


def test_a_timed_pause_holds_the_weight_while_looks_continue() -> None:
    steps = [{"setWeight": 10}, {"pause": {"duration": "5m"}}, {"setWeight": 50}]
    run = Run(make_spec({"interval": "1m", "threshold": 2, "steps": steps})).progressing()
    run.tick(advance=MINUTE)
    assert run.status.canary_weight == 10 and run.status.step_index == 2  # the pause starts with its weight
    for _ in range(4):
        assert run.tick(advance=MINUTE).status.canary_weight == 10
    failing = run.tick(verdict=FAIL, advance=MINUTE)  # analysis keeps running during the pause
    assert failing.status.failed_checks == 1
    assert run.tick(advance=MINUTE).status.canary_weight == 50


def test_a_long_timed_pause_does_not_trip_the_progress_deadline() -> None:
    steps = [{"setWeight": 10}, {"pause": {"duration": "30m"}}, {"setWeight": 50}]
    run = Run(make_spec({"interval": "1m", "steps": steps}, progressDeadlineSeconds=300)).progressing()
    assert run.tick(advance=MINUTE).status.canary_weight == 10  # the first look enters 10 % and the pause
    for _ in range(29):  # 29 more minutes: far past the 5-minute deadline, still planned
        decision = run.tick(advance=MINUTE)
        assert decision.status.phase is Phase.PROGRESSING and decision.status.hold is Hold.TIMED_PAUSE
        assert decision.status.canary_weight == 10
    resumed = run.tick(advance=MINUTE)  # 30 minutes after the pause started
    assert resumed.status.phase is Phase.PROGRESSING and resumed.status.canary_weight == 50
    assert run.tick(advance=MINUTE).status.phase is Phase.PROMOTING
    assert "ProgressDeadlineExceeded" not in reasons(run)


def test_a_manual_pause_waits_for_promote_without_a_deadline() -> None:
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}]
    run = Run(make_spec({"interval": "1m", "steps": steps}, progressDeadlineSeconds=120)).progressing()
    paused = run.tick(advance=MINUTE)
    assert paused.status.phase is Phase.WAITING_PROMOTION and paused.status.hold is Hold.MANUAL_PAUSE
    for _ in range(10):
        decision = run.tick(advance=MINUTE)
        assert decision.status.phase is Phase.WAITING_PROMOTION and decision.status.canary_weight == 20
    approved = run.tick(request=request("promote"), advance=5)
    assert approved.status.phase is Phase.PROGRESSING
    assert run.tick(advance=MINUTE).status.canary_weight == 60


def test_a_manual_pause_still_rolls_back_on_failing_looks() -> None:
    steps = [{"setWeight": 20}, {"pause": {}}]
    run = Run(make_spec({"interval": "1m", "threshold": 1, "steps": steps})).progressing()
    run.tick(advance=MINUTE)
    assert run.tick(verdict=FAIL, advance=MINUTE).status.phase is Phase.FAILED


# --- WaitingPromotion (confirm-promotion) and evidence -------------------------------------------------------------


def test_confirm_promotion_waits_then_promotes_when_the_gate_opens() -> None:
    spec = make_spec({"interval": "1m", "threshold": 2, "stepWeight": 50, "webhooks": hook("confirm-promotion")})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    run.tick(advance=MINUTE)
    closed = gates(False, HookType.CONFIRM_PROMOTION)
    waiting = run.tick(hooks=closed, advance=MINUTE)
    assert waiting.status.phase is Phase.WAITING_PROMOTION and waiting.status.hold is Hold.CONFIRM_PROMOTION
    assert "waiting for promotion approval" in messages(waiting.events)
    run.tick(hooks=closed, advance=MINUTE)
    assert run.tick(verdict=FAIL, hooks=closed, advance=MINUTE).status.failed_checks == 1  # looks continue
    promoted = run.tick(hooks=gates(True, HookType.CONFIRM_PROMOTION), advance=MINUTE)
    assert promoted.status.phase is Phase.PROMOTING


def test_promote_request_opens_confirm_promotion() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 100, "webhooks": hook("confirm-promotion")})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    run.tick(hooks=gates(False, HookType.CONFIRM_PROMOTION), advance=MINUTE)
    assert run.status.phase is Phase.WAITING_PROMOTION
    run.tick(request=request("promote"), advance=5)
    assert HookType.CONFIRM_PROMOTION not in plan(spec, run.status, run.now + MINUTE).hooks
    assert run.tick(advance=MINUTE).status.phase is Phase.PROMOTING


def test_require_evidence_holds_at_the_last_step_until_max_duration() -> None:
    spec = make_spec(
        {"interval": "1m", "stepWeight": 50, "maxDuration": "7m", "comparison": {"requireEvidence": True}},
        progressDeadlineSeconds=300,
    )
    run = Run(spec).progressing()
    unproven = Verdict(Outcome.PASS, "ok", promotable=False, hold_reason="upper bound 1.4× > 1.0×")
    for _ in range(3):
        run.tick(verdict=unproven, advance=MINUTE)
    assert run.status.canary_weight == 100 and run.status.hold is Hold.EVIDENCE
    assert "upper bound 1.4×" in run.status.message
    for _ in range(5):
        run.tick(verdict=unproven, advance=MINUTE)
    assert run.status.phase is Phase.FAILED
    assert "longer than its maxDuration 7m" in run.status.message


# --- Promoting and Finalising --------------------------------------------------------------------------------------


def test_promoting_waits_for_the_primary_rollout() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 100})).progressing()
    run.tick(advance=MINUTE)
    run.world.primary_ready = 40
    assert run.tick(advance=MINUTE).status.phase is Phase.PROMOTING
    held = run.tick(advance=5)
    assert held.status.hold is Hold.PRIMARY_NOT_READY and held.actions == ()
    run.world.primary_ready = 100
    assert run.tick(advance=5).status.phase is Phase.FINALISING


def test_step_weight_promotion_shifts_traffic_back_one_step_per_interval() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 60, "maxWeight": 60, "stepWeightPromotion": 25})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    run.tick(advance=MINUTE)
    assert run.status.phase is Phase.PROMOTING
    assert run.tick(advance=5).status.canary_weight == 35
    assert run.tick(advance=30).status.canary_weight == 35
    assert run.tick(advance=30).status.canary_weight == 10
    last = run.tick(advance=MINUTE)
    assert last.status.canary_weight == 0 and last.status.phase is Phase.FINALISING
    assert run.tick(advance=5).status.phase is Phase.SUCCEEDED


def test_post_rollout_hooks_run_exactly_once_after_success_and_after_failure() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 100, "webhooks": hook("post-rollout")})
    run = Run(spec).progressing()
    run.until_phase("Succeeded")
    assert plan(spec, run.status, run.now + 1).hooks == (HookType.POST_ROLLOUT,)
    failed_hook = run.tick(hooks=gates(False, HookType.POST_ROLLOUT, message="timeout"), advance=1)
    assert failed_hook.events[0].reason.value == "PostRolloutFailed"
    assert plan(spec, run.status, run.now + 1).hooks == ()
    run.world.revision = "v3"
    run.tick(advance=1)
    run.tick(request=request("abort", "r9"), advance=1)
    assert plan(spec, run.status, run.now + 1).hooks == (HookType.POST_ROLLOUT,)


# --- A/B testing and blue/green ------------------------------------------------------------------------------------


def test_ab_testing_routes_matched_traffic_and_promotes_after_the_iterations() -> None:
    match = [{"headers": {"x-canary": {"exact": "insider"}}}]
    run = Run(make_spec({"interval": "1m", "iterations": 3, "match": match, "noDataLimit": 2})).progressing()
    run.tick(advance=MINUTE)
    assert run.status.iterations == 1 and run.world.match_active
    assert run.world.routes == RouteWeights(100, 0)
    run.tick(advance=MINUTE)
    run.tick(verdict=NO_DATA, advance=MINUTE)  # a no-data look is not an iteration
    run.tick(advance=MINUTE)
    assert run.status.iterations == 3 and run.status.phase is Phase.PROGRESSING
    assert run.tick(advance=MINUTE).status.phase is Phase.PROMOTING
    run.tick(advance=5)
    assert not run.world.match_active and run.world.routes == RouteWeights(100, 0)


def test_blue_green_mirrors_then_switches_all_traffic_at_promotion() -> None:
    run = Run(make_spec({"interval": "1m", "iterations": 2, "mirror": True, "mirrorWeight": 50})).progressing()
    run.tick(advance=MINUTE)
    assert run.world.mirror_weight == 50 and run.world.routes == RouteWeights(100, 0)
    run.tick(advance=MINUTE)
    promoting = run.tick(advance=MINUTE)
    assert promoting.status.phase is Phase.PROMOTING
    assert promoting.actions[0] == SetWeights(0, 100)
    assert run.tick(advance=5).status.canary_weight == 0


def test_mirror_with_weights_mirrors_for_one_look_before_the_first_weight() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 50, "mirror": True})).progressing()
    run.tick(advance=MINUTE)
    assert run.status.mirrored and run.world.mirror_weight == 100 and run.status.canary_weight == 0
    run.tick(advance=MINUTE)
    assert not run.status.mirrored and run.world.mirror_weight is None and run.status.canary_weight == 50


# --- revision change mid-analysis, suspend, skipAnalysis -----------------------------------------------------------


def test_a_revision_change_mid_analysis_restarts_it() -> None:
    spec = make_spec({"interval": "1m", "threshold": 3, "stepWeight": 20, "comparison": {}})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    run.tick(verdict=Verdict(Outcome.FAIL, "bad", state={"n": 1}), advance=MINUTE)
    assert run.status.failed_checks == 1 and run.status.judge
    run.world.revision = "v3"
    restarted = run.tick(advance=5)
    status = restarted.status
    assert (status.phase, status.canary_weight, status.failed_checks, status.step_index) == (Phase.PROGRESSING, 0, 0, 0)
    assert status.judge == {} and status.last_applied_spec == "v3"
    assert SetWeights(100, 0) in restarted.actions
    assert "New revision detected! Restarting analysis for podinfo" in messages(restarted.events)


def test_suspend_freezes_everything_including_the_deadline() -> None:
    run = Run(make_spec()).progressing()
    run.tick(advance=MINUTE)
    frozen_spec = make_spec(suspend=True)
    run.spec = frozen_spec
    before = run.status
    for tick in range(30):
        decision = run.tick(verdict=FAIL, advance=MINUTE)
        assert decision.actions == ()
        # one "Suspended" Event on entering, none after
        assert [e.reason.value for e in decision.events] == (["Suspended"] if tick == 0 else [])
    assert run.status.canary_weight == before.canary_weight and run.status.failed_checks == 0
    run.spec = make_spec()
    assert run.tick(advance=MINUTE).status.canary_weight == 40
    run.spec = frozen_spec  # a second suspension is announced again
    assert [e.reason.value for e in run.tick(advance=MINUTE).events] == ["Suspended"]


def test_a_suspended_canary_still_acknowledges_its_generation_and_says_so_in_its_conditions() -> None:
    run = Run(make_spec()).initialized()
    ready_before = run.status.condition("Ready")
    assert ready_before is not None and ready_before.status == "True"
    run.spec = make_spec(suspend=True)
    run.world.generation = 2  # setting spec.suspend bumps metadata.generation
    decision = run.tick(advance=MINUTE)
    assert decision.actions == ()
    assert decision.status.observed_generation == 2
    ready = decision.status.condition("Ready")
    assert ready is not None and ready.status == "True" and ready.observed_generation == 2
    assert ready.last_transition_time == ready_before.last_transition_time
    assert ready.message.startswith("Suspended")
    assert decision.status.phase is Phase.INITIALIZED and decision.status.message == run.decisions[-2].status.message


def test_skip_analysis_promotes_once_the_canary_is_ready() -> None:
    spec = make_spec(
        {"interval": "1m", "stepWeight": 20, "metrics": [{"name": "request-success-rate"}]}, skipAnalysis=True
    )
    run = Run(spec).initialized()
    run.world.revision = "v2"
    run.world.canary_ready = 0
    run.tick(advance=5)
    assert run.tick(advance=5).status.phase is Phase.PROGRESSING
    run.world.canary_ready = 100
    assert not plan(spec, run.status, run.now + MINUTE).metrics
    decision = run.tick(advance=5)
    assert decision.status.phase is Phase.PROMOTING and PromotePrimary("v2") in decision.actions
    assert decision.events[0].reason.value == "AnalysisSkipped"


# --- manual requests -----------------------------------------------------------------------------------------------


def test_promote_full_skips_the_remaining_steps_but_never_on_a_failing_look() -> None:
    run = Run(make_spec({"interval": "1m", "threshold": 5, "stepWeight": 10})).progressing()
    run.tick(advance=MINUTE)
    run.tick(request=request("promote-full"), advance=5)
    assert run.tick(verdict=FAIL, advance=MINUTE).status.phase is Phase.PROGRESSING
    assert run.tick(verdict=NO_DATA, advance=MINUTE).status.phase is Phase.PROGRESSING
    assert run.tick(advance=MINUTE).status.phase is Phase.PROMOTING


def test_abort_rolls_back_now() -> None:
    run = Run(make_spec()).progressing()
    run.tick(advance=MINUTE)
    decision = run.tick(request=request("abort"), advance=5)
    assert decision.status.phase is Phase.FAILED
    assert decision.actions == (SetWeights(100, 0), ScaleCanary(up=False))
    assert decision.events[0].reason.value == "Aborted"


def test_pause_holds_looks_and_the_deadline_until_resume() -> None:
    spec = make_spec(progressDeadlineSeconds=120)
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    run.tick(request=request("pause"), advance=5)
    assert run.status.paused_by_user and run.status.hold is Hold.USER_PAUSE
    assert plan(spec, run.status, run.now + MINUTE) == plan(spec, run.status, run.now)
    for _ in range(10):
        assert run.tick(verdict=FAIL, advance=MINUTE).status.canary_weight == 20
    assert run.status.phase is Phase.PROGRESSING
    resumed = run.tick(request=request("resume", "r2"), advance=5)
    assert not resumed.status.paused_by_user and resumed.status.canary_weight == 20
    assert run.tick(advance=5).status.canary_weight == 40  # the overdue look runs at once


def test_retry_restarts_a_failed_revision_without_a_template_change() -> None:
    run = Run(make_spec()).progressing()
    run.tick(advance=MINUTE)
    run.tick(request=request("abort"), advance=5)
    assert run.status.phase is Phase.FAILED and run.status.failed_checks == 0
    retried = run.tick(request=request("retry", "r2"), advance=5)
    assert retried.status.phase is Phase.PROGRESSING and retried.status.last_applied_spec == "v2"
    assert ScaleCanary(up=True) in retried.actions
    run.until_phase("Succeeded")


@pytest.mark.parametrize(
    ("phase_setup", "action", "why"),
    [
        ("initialized", "promote", "no rollout waiting"),
        ("initialized", "abort", "no rollout in progress"),
        ("initialized", "retry", "only a Failed rollout"),
        ("initialized", "resume", "not paused"),
        ("progressing", "promote", "use promote-full"),
        ("progressing", "retry", "only a Failed rollout"),
        ("promoting", "abort", "promotion is already under way"),
        ("succeeded", "pause", "only a rollout that is progressing"),
        ("succeeded", "promote-full", "only a rollout that is waiting or progressing"),
    ],
)
def test_a_request_that_makes_no_sense_is_ignored_with_a_warning(phase_setup: str, action: str, why: str) -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 100}), World(primary_ready=100))
    if phase_setup == "initialized":
        run.initialized()
    else:
        run.progressing()
        if phase_setup in ("promoting", "succeeded"):
            run.until_phase("Promoting")
        if phase_setup == "succeeded":
            run.until_phase("Succeeded")
    run.world.primary_ready = 0  # keep a Promoting canary in Promoting
    before = run.status
    decision = run.tick(request=request(action, "late"), advance=1)
    assert decision.status.phase is before.phase
    assert decision.status.last_request_id == "late"
    warning = [e for e in decision.events if e.reason.value == "ManualRequestIgnored"]
    assert warning and warning[0].type is EventType.WARNING and why in warning[0].message
    again = run.tick(request=request(action, "late"), advance=1)  # handled once
    assert not [e for e in again.events if e.reason.value == "ManualRequestIgnored"]


# --- deletion, drift, conditions -----------------------------------------------------------------------------------


def test_revert_on_deletion_restores_the_target_before_releasing_the_canary() -> None:
    run = Run(make_spec(revertOnDeletion=True)).initialized()
    run.world.deleting = True
    run.world.canary_ready = 0
    terminating = run.tick(advance=5)
    assert terminating.status.phase is Phase.TERMINATING
    assert terminating.actions == (RestoreOnDelete(),)
    run.world.canary_ready = 100
    done = run.tick(advance=5)
    assert done.status.phase is Phase.TERMINATED and ReleaseFinalizer() in done.actions


@pytest.mark.parametrize("ready_after_restore", [True, False], ids=["target-ready", "target-never-ready"])
def test_revert_on_deletion_never_releases_on_the_tick_that_scales_the_target_up(ready_after_restore: bool) -> None:
    spec = make_spec(revertOnDeletion=True, progressDeadlineSeconds=120)
    run = Run(spec).initialized()
    run.world.deleting = True
    # The target is scaled to zero: the operator reads a 0-replica Deployment as 100 % ready.
    zero_replicas = replace(run.world.observe(), canary_ready_percent=100.0)
    first = step(spec, run.status, zero_replicas, run.now + 5)
    assert first.status.phase is Phase.TERMINATING
    assert first.actions == (RestoreOnDelete(),)  # traffic stays on the primary until the target is up
    run.now += 5
    run.status = first.status
    run.world.apply(first)
    run.world.canary_ready = 0
    waiting = run.tick(advance=5)  # scaled up, pods not ready yet
    assert waiting.status.phase is Phase.TERMINATING and ReleaseFinalizer() not in waiting.actions
    if ready_after_restore:
        run.world.canary_ready = 100
        done = run.tick(advance=5)
        assert done.status.phase is Phase.TERMINATED and ReleaseFinalizer() in done.actions
    else:
        late = run.tick(advance=130)  # the progress deadline still bounds the wait
        assert late.status.phase is Phase.TERMINATED and ReleaseFinalizer() in late.actions
        assert "Progress deadline exceeded" in messages(late.events)


def test_deletion_without_revert_releases_at_once() -> None:
    run = Run(make_spec()).initialized()
    run.world.deleting = True
    decision = run.tick(advance=5)
    assert decision.status.phase is Phase.TERMINATED and decision.actions == (ReleaseFinalizer(),)


def test_drifted_routes_are_restored_from_status() -> None:
    run = Run(make_spec()).progressing()
    run.tick(advance=MINUTE)
    run.world.routes = RouteWeights(50, 50)  # someone edited the VirtualService
    decision = run.tick(advance=5)
    assert decision.actions == (SetWeights(80, 20),)
    assert decision.events[0].reason.value == "RoutesDrifted"


@pytest.mark.parametrize(
    ("phase", "ready", "reconciling", "stalled", "promoted"),
    [
        ("Initialized", "True", "False", "False", "True"),
        ("Progressing", "False", "True", "False", "Unknown"),
        ("Succeeded", "True", "False", "False", "True"),
        ("Failed", "False", "False", "True", "False"),
    ],
)
def test_conditions_follow_the_phase(phase: str, ready: str, reconciling: str, stalled: str, promoted: str) -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 100}))
    run.initialized()
    if phase != "Initialized":
        run.world.revision = "v2"
        run.tick(advance=5)
    if phase == "Succeeded":
        run.until_phase("Succeeded")
    if phase == "Failed":
        run.tick(request=request("abort"), advance=5)
    status = run.status
    assert status.phase == phase
    got = {c.type: c.status for c in status.conditions}
    assert got == {"Promoted": promoted, "Ready": ready, "Reconciling": reconciling, "Stalled": stalled}
    assert all(c.reason == phase and c.observed_generation == 1 for c in status.conditions)


def test_condition_transition_times_move_only_when_the_status_changes() -> None:
    run = Run(make_spec()).initialized()
    ready_since = run.status.condition("Ready")
    assert ready_since is not None
    run.tick(advance=3600)
    assert run.status.condition("Ready") == ready_since
    run.world.revision = "v2"
    run.tick(advance=60)
    moved = run.status.condition("Ready")
    assert moved is not None and moved.status == "False"
    assert moved.last_transition_time != ready_since.last_transition_time


def test_status_round_trips_and_an_empty_status_parses() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 50, "comparison": {}})).progressing()
    run.tick(advance=MINUTE)
    run.tick(verdict=Verdict(Outcome.PASS, "ok", state={"k": 1}), advance=MINUTE + 0.25)
    run.tick(request=request("pause"), advance=1)
    stored = run.status.to_dict()
    assert stored["phase"] == "Progressing" and stored["pausedByUser"] is True
    assert stored["lastAnalysisTime"].endswith(".250000Z")
    assert CanaryStatus.from_dict(stored) == run.status
    assert CanaryStatus.from_dict({}) == CanaryStatus()
    assert CanaryStatus.from_dict(None).phase is Phase.INITIALIZING
    with pytest.raises(ValueError, match="not a Canary phase"):
        CanaryStatus.from_dict({"phase": "Exploding"})


def test_time_is_always_passed_in() -> None:
    spec = make_spec()
    world = World()
    first = step(spec, CanaryStatus(), world.observe(), T0)
    assert first == step(spec, CanaryStatus(), world.observe(), T0)
    assert first.status.last_transition_time == T0


# --- more edges ----------------------------------------------------------------------------------------------------


def test_a_waiting_revision_is_replaced_by_a_newer_one_or_dropped_by_a_revert() -> None:
    run = Run(make_spec({"stepWeight": 50, "webhooks": hook("confirm-rollout")})).initialized()
    run.world.revision = "v2"
    run.tick(advance=5)
    run.world.revision = "v3"
    newer = run.tick(advance=5)
    assert newer.status.phase is Phase.WAITING and newer.status.last_applied_spec == "v3"
    run.world.revision = "v1"
    reverted = run.tick(advance=5)
    assert reverted.status.phase is Phase.SUCCEEDED and reverted.status.last_applied_spec == "v1"


def test_looks_keep_running_during_a_manual_pause() -> None:
    spec = make_spec({"interval": "1m", "steps": [{"setWeight": 20}, {"pause": {}}]})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    assert run.status.phase is Phase.WAITING_PROMOTION
    probes = plan(spec, run.status, run.now + MINUTE)
    assert probes.metrics and probes.window == (run.now, run.now + MINUTE)
    assert not plan(spec, run.status, run.now + MINUTE - 1).metrics


def test_a_target_deleted_mid_analysis_holds_then_rolls_back_at_the_deadline() -> None:
    run = Run(make_spec(progressDeadlineSeconds=300)).progressing()
    run.tick(advance=MINUTE)
    run.world.target_exists = False
    held = run.tick(advance=MINUTE)
    assert held.status.hold is Hold.TARGET_MISSING and held.status.phase is Phase.PROGRESSING
    failed = run.tick(advance=300)
    assert failed.status.phase is Phase.FAILED and "Progress deadline exceeded" in failed.status.message


def test_a_user_pause_also_holds_the_promotion_traffic_shift() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "stepWeightPromotion": 25})
    run = Run(spec).progressing()
    run.until_phase("Promoting")
    run.tick(request=request("pause"), advance=1)
    for _ in range(5):
        assert run.tick(advance=MINUTE).status.canary_weight == 100
    run.tick(request=request("resume", "r2"), advance=1)
    assert run.status.canary_weight == 75


def test_retry_after_a_failed_initialization_initializes_again() -> None:
    run = Run(make_spec(progressDeadlineSeconds=120), World(primary_ready=0))
    run.tick()
    run.tick(advance=200)
    assert run.status.phase is Phase.FAILED
    run.world.primary_ready = 100
    assert run.tick(advance=MINUTE).status.phase is Phase.FAILED  # same revision: no automatic retry loop
    retried = run.tick(request=request("retry"), advance=1)
    assert retried.status.phase is Phase.INITIALIZED
    assert [e.reason.value for e in retried.events] == ["Retried", "Initialized"]


def test_nothing_is_gathered_outside_the_analysis() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 50, "webhooks": hook("rollout", "pre-rollout")})
    run = Run(spec).initialized()
    assert plan(spec, run.status, run.now + 3600) == plan(spec, CanaryStatus(), T0)
    assert not plan(spec, run.status, run.now + 3600).hooks
    suspended = make_spec({"interval": "1m", "stepWeight": 50}, suspend=True)
    run.world.revision = "v2"
    run.tick(advance=5)
    assert plan(suspended, run.status, run.now + 3600) == plan(spec, CanaryStatus(), T0)


# --- waits for a person survive the looks that run meanwhile --------------------------------------------------------

PAUSE_STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]
FAILED_ONCE = Verdict(Outcome.FAIL, "request-success-rate 95.00% < 99%")


def _paused_run() -> Run:
    """The reviewer's repro: a manual pause at 20 %, progress deadline 10 minutes, threshold 3."""
    spec = make_spec({"interval": "1m", "threshold": 3, "steps": PAUSE_STEPS}, progressDeadlineSeconds=600)
    run = Run(spec).progressing()
    paused = run.tick(advance=MINUTE)
    assert paused.status.phase is Phase.WAITING_PROMOTION and paused.status.hold is Hold.MANUAL_PAUSE
    return run


def _confirm_promotion_run() -> Run:
    spec = make_spec(
        {"interval": "1m", "threshold": 3, "stepWeight": 100, "webhooks": hook("confirm-promotion")},
        progressDeadlineSeconds=600,
    )
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    waiting = run.tick(hooks=gates(False, HookType.CONFIRM_PROMOTION), advance=MINUTE)
    assert waiting.status.phase is Phase.WAITING_PROMOTION and waiting.status.hold is Hold.CONFIRM_PROMOTION
    return run


WAITS = {"manual-pause": (_paused_run, Hold.MANUAL_PAUSE), "confirm-promotion": (_confirm_promotion_run, None)}


@pytest.mark.parametrize("look", [NO_DATA, FAILED_ONCE], ids=["after-noData", "after-failed-look"])
@pytest.mark.parametrize("wait", ["manual-pause", "confirm-promotion"])
def test_promote_is_accepted_in_waiting_promotion_after_a_look_that_did_not_pass(wait: str, look: Verdict) -> None:
    setup, _ = WAITS[wait]
    run = setup()
    closed = gates(False, HookType.CONFIRM_PROMOTION)
    held = run.tick(verdict=look, hooks=closed, advance=MINUTE)
    assert held.status.phase is Phase.WAITING_PROMOTION
    # the look is recorded, but the wait for a person is still what is shown
    assert held.status.no_data_checks + held.status.failed_checks == 1
    assert held.status.hold is (Hold.MANUAL_PAUSE if wait == "manual-pause" else Hold.CONFIRM_PROMOTION)
    assert "last look:" in held.status.message
    approved = run.tick(request=request("promote", "p1"), advance=5)
    assert "ManualRequestIgnored" not in [e.reason.value for e in approved.events]
    assert approved.status.phase is Phase.PROGRESSING
    moved = run.tick(hooks=closed, advance=MINUTE)
    if wait == "manual-pause":
        assert moved.status.canary_weight == 50
    else:
        assert moved.status.phase is Phase.PROMOTING


@pytest.mark.parametrize("wait", ["manual-pause", "confirm-promotion"])
def test_looks_without_data_during_a_wait_for_a_person_never_start_the_deadline(wait: str) -> None:
    setup, _ = WAITS[wait]
    run = setup()
    closed = gates(False, HookType.CONFIRM_PROMOTION)
    for _ in range(12):  # 12 minutes of no data, deadline 10 minutes
        decision = run.tick(verdict=NO_DATA, hooks=closed, advance=MINUTE)
        assert decision.status.phase is Phase.WAITING_PROMOTION, decision.status.message
    assert run.status.no_data_checks == 12
    assert "ProgressDeadlineExceeded" not in reasons(run)
    assert run.tick(request=request("promote", "p1"), advance=5).status.phase is Phase.PROGRESSING


def test_a_refused_traffic_increase_can_still_be_promoted_after_a_look_without_data() -> None:
    spec = make_spec(
        {"interval": "1m", "stepWeight": 20, "maxWeight": 40, "webhooks": hook("confirm-traffic-increase")},
        progressDeadlineSeconds=300,
    )
    run = Run(spec).progressing()
    opened = gates(True, HookType.CONFIRM_TRAFFIC_INCREASE)
    closed = gates(False, HookType.CONFIRM_TRAFFIC_INCREASE)
    assert run.tick(hooks=opened, advance=MINUTE).status.canary_weight == 20
    refused = run.tick(hooks=closed, advance=MINUTE)
    assert refused.status.hold is Hold.CONFIRM_TRAFFIC_INCREASE
    for _ in range(8):  # longer than the deadline, without data
        assert run.tick(verdict=NO_DATA, hooks=closed, advance=MINUTE).status.phase is Phase.PROGRESSING
    assert run.status.hold is Hold.CONFIRM_TRAFFIC_INCREASE
    approved = run.tick(request=request("promote", "p1"), advance=5)
    assert "ManualRequestIgnored" not in [e.reason.value for e in approved.events]
    assert run.tick(hooks=closed, advance=MINUTE).status.canary_weight == 40


# --- a stalled promotion is not rolled back --------------------------------------------------------------------------


def test_a_promotion_past_the_deadline_is_stalled_not_rolled_back_and_finishes_once_the_primary_is_ready() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 100}, progressDeadlineSeconds=300)).progressing()
    run.tick(advance=MINUTE)
    run.world.primary_ready = 40
    assert run.tick(advance=MINUTE).status.phase is Phase.PROMOTING
    for _ in range(10):
        decision = run.tick(advance=MINUTE)
        assert decision.status.phase is Phase.PROMOTING
        assert SetWeights(100, 0) not in decision.actions and ScaleCanary(up=False) not in decision.actions
    stalled = [e for d in run.decisions for e in d.events if e.reason.value == "PromotionStalled"]
    assert len(stalled) == 1 and stalled[0].type is EventType.WARNING
    assert "not rolling back" in stalled[0].message.lower()
    assert run.status.hold is Hold.PROMOTION_STALLED
    assert run.status.condition("Stalled").status == "True"  # type: ignore[union-attr]
    assert "ProgressDeadlineExceeded" not in reasons(run)
    run.world.primary_ready = 100
    assert run.tick(advance=5).status.phase is Phase.FINALISING
    done = run.tick(advance=5)
    assert done.status.phase is Phase.SUCCEEDED and done.status.last_promoted_spec == "v2"
    assert done.status.condition("Stalled").status == "False"  # type: ignore[union-attr]


# --- reverts and configs -------------------------------------------------------------------------------------------


def test_a_revert_of_the_template_with_a_changed_config_is_a_rollout_not_a_revert() -> None:
    run = Run(make_spec({"interval": "1m", "threshold": 1, "stepWeight": 100}), World(configs={"configmap/a": "c1"}))
    run.progressing()
    run.tick(verdict=FAIL, advance=MINUTE)
    run.tick(verdict=FAIL, advance=MINUTE)
    assert run.status.phase is Phase.FAILED
    run.world.revision, run.world.configs = "v1", {"configmap/a": "c2"}  # template back, config changed
    decision = run.tick(advance=5)
    assert decision.status.phase is Phase.PROGRESSING
    assert "RevertDetected" not in reasons(run)
    run.until_phase("Succeeded")
    assert dict(run.status.promoted_configs) == {"configmap/a": "c2"}


def test_a_revert_of_both_template_and_configs_is_detected() -> None:
    run = Run(make_spec({"interval": "1m", "threshold": 1, "stepWeight": 100}), World(configs={"configmap/a": "c1"}))
    run.progressing()
    run.world.configs = {"configmap/a": "c2"}
    run.tick(advance=5)  # restarts the analysis of v2 with c2
    run.tick(verdict=FAIL, advance=MINUTE)
    run.tick(verdict=FAIL, advance=MINUTE)
    assert run.status.phase is Phase.FAILED
    run.world.revision, run.world.configs = "v1", {"configmap/a": "c1"}
    assert run.tick(advance=5).status.phase is Phase.SUCCEEDED
    assert "RevertDetected" in reasons(run)


# --- nothing is gathered for a canary that is not ready -------------------------------------------------------------


def test_no_looks_or_hooks_are_asked_for_while_the_canary_is_not_ready() -> None:
    hooks = hook("pre-rollout", "rollout", "confirm-promotion")
    run = Run(make_spec({"interval": "1m", "stepWeight": 50, "webhooks": hooks}, progressDeadlineSeconds=600))
    run.progressing()
    run.world.canary_ready = 10
    run.tick(advance=MINUTE)  # finds the canary not ready (the look planned for it is not run)
    assert run.status.hold is Hold.CANARY_NOT_READY and run.status.step_index == 0
    for gap in (2.0, MINUTE, MINUTE):
        assert plan(run.spec, run.status, run.now + gap) == Probes()  # no queries, no webhook calls
        run.tick(advance=gap)
    run.world.canary_ready = 100
    run.tick(advance=2)  # sees it ready; the look runs with what the next plan gathers
    probes = plan(run.spec, run.status, run.now + 2)
    assert probes.hooks == (HookType.PRE_ROLLOUT,)
    first = run.tick(hooks=gates(True, HookType.PRE_ROLLOUT), advance=2)
    assert first.status.canary_weight == 50 and first.status.failed_checks == 0
    assert HookType.PRE_ROLLOUT not in plan(run.spec, run.status, run.now + MINUTE).hooks
