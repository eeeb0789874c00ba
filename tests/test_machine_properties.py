"""Property tests: random valid Canary specs driven through random observation sequences.

Each example runs the operator's loop (plan → observe → step → apply) against the fake cluster in
``rollout_world`` and checks, after every tick, the promises the engine makes to users.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rollout_world import SUCCESS_RATE, T0, World

from analysis.verdict import Outcome, Verdict
from controller.rollout.decision import Decision, PromotePrimary, Reason, ScaleCanary, SetWeights
from controller.rollout.machine import plan, step
from controller.rollout.moves import current_weight_step, gathering_paused, human_wait, iterations_mode
from controller.rollout.observations import HookOutcome, ManualRequest, Observations, RouteWeights
from controller.rollout.phases import ANALYSING, WORLD_HOLDS, Hold, ManualAction, Phase
from controller.rollout.spec import CanarySpec, HookType, parse_canary_spec
from controller.rollout.status import CanaryStatus

HOOK_TYPES = [t.value for t in HookType if t is not HookType.EVENT]
CAMEL = re.compile(r"^[A-Z][A-Za-z]+$")


@st.composite
def specs(draw: st.DrawFn) -> CanarySpec:
    """Valid specs of every shape: stepWeight/maxWeight, stepWeights, steps with pauses, A/B, blue/green."""
    interval = draw(st.sampled_from(["30s", "1m", "2m"]))
    analysis: dict[str, Any] = {"interval": interval, "threshold": draw(st.integers(1, 4))}
    mode = draw(st.sampled_from(["stepWeight", "stepWeights", "steps", "ab", "bg"]))
    if mode == "stepWeight":
        step_weight = draw(st.integers(5, 60))
        analysis |= {"stepWeight": step_weight, "maxWeight": draw(st.integers(step_weight, 100))}
    elif mode == "stepWeights":
        analysis["stepWeights"] = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=5)))
    elif mode == "steps":
        weights = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=4)))
        steps: list[dict[str, Any]] = []
        for weight in weights:
            steps.append({"setWeight": weight})
            pause = draw(st.sampled_from([None, "timed", "manual"]))
            if pause == "timed":
                steps.append({"pause": {"duration": draw(st.sampled_from(["30s", "2m", "5m"]))}})
            elif pause == "manual":
                steps.append({"pause": {}})
        analysis["steps"] = steps
    else:
        analysis["iterations"] = draw(st.integers(1, 5))
        if mode == "ab":
            analysis["match"] = [{"headers": {"x-canary": {"exact": "yes"}}}]
    if mode in ("stepWeight", "stepWeights", "bg") and draw(st.booleans()):
        analysis["mirror"] = True
    if draw(st.booleans()):
        analysis["stepWeightPromotion"] = draw(st.integers(10, 60))
    if draw(st.booleans()):
        analysis["comparison"] = {"requireEvidence": draw(st.booleans())}
    else:
        analysis["metrics"] = [SUCCESS_RATE]
    hook_types = draw(st.sets(st.sampled_from(HOOK_TYPES), max_size=4))
    analysis["webhooks"] = [{"name": t, "type": t, "url": f"http://hooks/{t}"} for t in sorted(hook_types)]
    return parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": analysis,
            "progressDeadlineSeconds": draw(st.sampled_from([120, 300, 600])),
            "skipAnalysis": draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()),
        }
    )


@dataclass(frozen=True)
class Beat:
    """One tick's randomness: how much time passed and what the world did."""

    advance: float
    outcome: Outcome
    promotable: bool
    hooks_pass: tuple[bool, ...]
    canary_ready: bool
    primary_ready: bool
    request: ManualAction | None
    new_revision: bool
    drift: bool
    promote_if_waiting: bool  # a person answers a WaitingPromotion, whatever the looks meanwhile said


beats = st.builds(
    Beat,
    advance=st.sampled_from([0.5, 5.0, 30.0, 90.0, 120.0, 400.0] + [60.0] * 14),
    outcome=st.sampled_from([Outcome.PASS] * 12 + [Outcome.FAIL, Outcome.NO_DATA, Outcome.REJECTED]),
    promotable=st.sampled_from([True, True, True, False]),
    hooks_pass=st.lists(st.sampled_from([True, True, True, False]), min_size=8, max_size=8).map(tuple),
    canary_ready=st.sampled_from([True] * 19 + [False]),
    primary_ready=st.sampled_from([True] * 19 + [False]),
    request=st.sampled_from([None] * 40 + list(ManualAction)),
    new_revision=st.sampled_from([False] * 30 + [True]),
    drift=st.sampled_from([False] * 30 + [True]),
    promote_if_waiting=st.sampled_from([False] * 5 + [True]),
)


def observe(
    world: World, beat: Beat, probes_hooks: tuple[HookType, ...], metrics: bool, rid: int, phase: Phase
) -> Observations:
    world.canary_ready = 100.0 if beat.canary_ready else 30.0
    world.primary_ready = 100.0 if beat.primary_ready else 30.0
    if beat.drift and world.routes is not None:
        world.routes = RouteWeights(50, 50)
    hooks = {}
    for index, hook_type in enumerate(probes_hooks):
        passed = beat.hooks_pass[index % len(beat.hooks_pass)]
        # a rollback hook that "passes" asks for a rollback: make that rare
        hooks[hook_type] = HookOutcome(passed if hook_type is not HookType.ROLLBACK else not passed, "hook said so")
    verdict = Verdict(beat.outcome, f"look was {beat.outcome}", promotable=beat.promotable) if metrics else None
    action = ManualAction.PROMOTE if phase is Phase.WAITING_PROMOTION and beat.promote_if_waiting else beat.request
    request = ManualRequest(f"req-{rid}", action, 0.0) if action is not None else None
    return world.observe(verdict, hooks, request)


def check_tick(spec: CanarySpec, before: CanaryStatus, obs: Observations, now: float, decision: Decision) -> None:
    after = decision.status
    # weights stay within 0..100 and sum to 100
    assert 0 <= after.canary_weight <= 100
    for action in decision.actions:
        if isinstance(action, SetWeights):
            assert 0 <= action.canary <= 100 and action.primary + action.canary == 100
    # the canary weight never exceeds the current step's weight while analysing
    if after.phase in ANALYSING:
        expected = 0 if iterations_mode(spec) else current_weight_step(spec, after)
        assert after.canary_weight <= expected
    # a rollback always ends at primary 100 / canary 0 with the canary scaled down
    if after.phase is Phase.FAILED and before.phase is not Phase.FAILED and before.phase is not Phase.INITIALIZING:
        assert SetWeights(100, 0) in decision.actions and ScaleCanary(up=False) in decision.actions
        assert after.canary_weight == 0
    # never promote on a failing, no-data, rejected or unproven look
    promoted = any(isinstance(action, PromotePrimary) for action in decision.actions)
    if promoted:
        assert before.phase in ANALYSING
        if obs.verdict is not None:
            assert obs.verdict.outcome is Outcome.PASS and obs.verdict.promotable
        if not spec.skip_analysis and after.last_analysis_time != now:
            raise AssertionError("promoted without a look")
    # failed checks are cumulative within a revision's analysis; no-data checks count no-data looks in a row:
    # one more per no-data look, back to zero only on a look that had data
    if before.phase in ANALYSING and after.phase in ANALYSING and after.last_applied_spec == before.last_applied_spec:
        assert after.failed_checks >= before.failed_checks
        assert after.no_data_checks in (before.no_data_checks, before.no_data_checks + 1, 0)
        if after.no_data_checks != before.no_data_checks:
            assert after.last_analysis_time == now
            if after.no_data_checks > before.no_data_checks:
                assert obs.verdict is not None and obs.verdict.outcome is Outcome.NO_DATA
    # no data never hangs and never promotes: at noDataLimit in a row it rolls back, unless a person holds it
    if after.no_data_checks >= spec.analysis.no_data_limit and after.phase in ANALYSING:
        assert human_wait(spec, after, now) is not None or before.no_data_checks >= spec.analysis.no_data_limit
    # every phase change is announced with a CamelCase reason
    if after.phase is not before.phase:
        assert decision.events
    assert all(CAMEL.match(event.reason.value) for event in decision.events)
    # deterministic, and a restarted operator resumes exactly from the stored status
    assert step(spec, before, obs, now) == decision
    stored = json.loads(json.dumps(after.to_dict()))
    assert CanaryStatus.from_dict(stored) == after


def check_waiting_for_a_person(before: CanaryStatus, obs: Observations, decision: Decision) -> None:
    """WaitingPromotion waits for a person (a manual pause or confirm-promotion): whatever the looks meanwhile said
    (no data, a failed check, no evidence), ``promote`` is accepted and the progress deadline never fires."""
    reasons = [event.reason for event in decision.events]
    assert Reason.PROGRESS_DEADLINE_EXCEEDED not in reasons, decision.status.message
    if obs.request is not None and obs.request.action is ManualAction.PROMOTE:
        assert Reason.REQUEST_IGNORED not in reasons, (before.hold, before.message, decision.events)
    if decision.status.phase is Phase.WAITING_PROMOTION:
        assert decision.status.hold in (Hold.MANUAL_PAUSE, Hold.CONFIRM_PROMOTION, Hold.USER_PAUSE, *WORLD_HOLDS)


def check_rerun(spec: CanarySpec, before: CanaryStatus, decision: Decision, obs: Observations, now: float) -> None:
    """Re-running the tick at the same ``now`` (e.g. after a crash before the status write landed) adds no look.

    Not after a tick that deferred its look because plan gathered nothing for a canary found not ready: that tick
    ran no look, so the next one may."""
    if gathering_paused(before):
        return
    again = step(spec, decision.status, obs, now)
    first, second = decision.status, again.status
    if first.phase in ANALYSING and second.phase in ANALYSING:
        assert (second.step_index, second.iterations) == (first.step_index, first.iterations)
        assert (second.failed_checks, second.no_data_checks) == (first.failed_checks, first.no_data_checks)
        assert second.canary_weight == first.canary_weight
        assert second.last_analysis_time == first.last_analysis_time


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=st.lists(beats, min_size=5, max_size=80))
def test_random_rollouts_keep_every_promise(spec: CanarySpec, script: list[Beat]) -> None:
    drive(spec, script)


@st.composite
def waiting_specs(draw: st.DrawFn) -> CanarySpec:
    """Specs that wait for a person in WaitingPromotion: a manual pause, confirm-promotion, or both."""
    weights = sorted(draw(st.sets(st.integers(1, 100), min_size=1, max_size=3)))
    manual_after = draw(st.sampled_from([None, *range(len(weights))]))
    steps: list[dict[str, Any]] = []
    for index, weight in enumerate(weights):
        steps.append({"setWeight": weight})
        if index == manual_after:
            steps.append({"pause": {}})
    hooks = ["confirm-promotion"] if manual_after is None or draw(st.booleans()) else []
    hooks += sorted(draw(st.sets(st.sampled_from(["rollout", "pre-rollout", "confirm-traffic-increase"]))))
    analysis: dict[str, Any] = {
        "interval": "1m",
        "threshold": draw(st.integers(2, 6)),
        "steps": steps,
        "webhooks": [{"name": t, "type": t, "url": f"http://hooks/{t}"} for t in hooks],
    }
    if draw(st.booleans()):
        analysis["comparison"] = {"requireEvidence": draw(st.booleans())}
    else:
        analysis["metrics"] = [SUCCESS_RATE]
    return parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": analysis,
            "progressDeadlineSeconds": draw(st.sampled_from([120, 300])),
        }
    )


# Looks that often do not pass, and a person who often answers.
waiting_beats = st.builds(
    Beat,
    advance=st.sampled_from([5.0, 60.0, 60.0, 60.0, 120.0]),
    outcome=st.sampled_from([Outcome.PASS] * 3 + [Outcome.NO_DATA] * 3 + [Outcome.FAIL]),
    promotable=st.sampled_from([True, True, False]),
    hooks_pass=st.lists(st.sampled_from([True, False, False]), min_size=8, max_size=8).map(tuple),
    canary_ready=st.sampled_from([True] * 9 + [False]),
    primary_ready=st.just(True),
    request=st.sampled_from([None] * 12 + [ManualAction.PAUSE, ManualAction.RESUME, ManualAction.PROMOTE_FULL]),
    new_revision=st.just(False),
    drift=st.just(False),
    promote_if_waiting=st.sampled_from([False] * 3 + [True]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=waiting_specs(), script=st.lists(waiting_beats, min_size=10, max_size=60))
def test_a_person_can_always_answer_a_waiting_promotion_whatever_the_looks_said(
    spec: CanarySpec, script: list[Beat]
) -> None:
    drive(spec, script)


def drive(spec: CanarySpec, script: list[Beat]) -> None:
    """The operator's loop over ``script``, checking every promise after every tick."""
    world = World()
    status = CanaryStatus()
    now = T0
    revisions = 1
    last_move: tuple[float, str] | None = None
    for rid, beat in enumerate(script):
        now += beat.advance
        if beat.new_revision or rid == 2:  # every example rolls out at least one new revision
            revisions += 1
            world.revision = f"v{revisions}"
        probes = plan(spec, status, now)
        obs = observe(world, beat, probes.hooks, probes.metrics, rid, status.phase)
        decision = step(spec, status, obs, now)
        check_tick(spec, status, obs, now, decision)
        if status.phase is Phase.WAITING_PROMOTION and world.revision == status.last_applied_spec:
            check_waiting_for_a_person(status, obs, decision)
        check_rerun(spec, status, decision, obs, now)
        after = decision.status
        # at most one move (step or iteration) per analysis interval within a revision's analysis
        moved = after.phase in ANALYSING | {Phase.PROMOTING} and (
            after.step_index > status.step_index or after.iterations > status.iterations
        )
        if moved:
            if last_move is not None and last_move[1] == after.last_applied_spec and status.phase in ANALYSING:
                assert now - last_move[0] >= spec.analysis.interval_s
            last_move = (now, after.last_applied_spec)
        if after.phase is Phase.PROGRESSING and after.step_index == 0 and after.iterations == 0:
            last_move = None
        world.apply(decision)
        status = after
        # in a settled state all traffic is on the primary (drift is healed the same tick)
        if status.phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.INITIALIZED) and status.last_promoted_spec:
            assert world.routes == RouteWeights(100, 0)
