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
from controller.rollout.decision import Decision, PromotePrimary, ScaleCanary, SetWeights
from controller.rollout.machine import plan, step
from controller.rollout.moves import current_weight_step, iterations_mode
from controller.rollout.observations import HookOutcome, ManualRequest, Observations, RouteWeights
from controller.rollout.phases import ANALYSING, ManualAction, Phase
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
)


def observe(world: World, beat: Beat, probes_hooks: tuple[HookType, ...], metrics: bool, rid: int) -> Observations:
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
    request = ManualRequest(f"req-{rid}", beat.request, 0.0) if beat.request is not None else None
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
    # failed and no-data checks are cumulative within a revision's analysis
    if before.phase in ANALYSING and after.phase in ANALYSING and after.last_applied_spec == before.last_applied_spec:
        assert after.failed_checks >= before.failed_checks and after.no_data_checks >= before.no_data_checks
    # every phase change is announced with a CamelCase reason
    if after.phase is not before.phase:
        assert decision.events
    assert all(CAMEL.match(event.reason.value) for event in decision.events)
    # deterministic, and a restarted operator resumes exactly from the stored status
    assert step(spec, before, obs, now) == decision
    stored = json.loads(json.dumps(after.to_dict()))
    assert CanaryStatus.from_dict(stored) == after


def check_rerun(spec: CanarySpec, decision: Decision, obs: Observations, now: float) -> None:
    """Re-running the tick at the same ``now`` (e.g. after a crash before the status write landed) adds no look."""
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
        obs = observe(world, beat, probes.hooks, probes.metrics, rid)
        decision = step(spec, status, obs, now)
        check_tick(spec, status, obs, now, decision)
        check_rerun(spec, decision, obs, now)
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
