"""A tiny fake cluster for the rollout engine's tests: it carries out a Decision's actions and reports observations.

It is deliberately dumb (every action takes effect at once) so the tests exercise the engine, not the fake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.verdict import Outcome, Verdict
from controller.rollout.decision import (
    Decision,
    Initialize,
    PromotePrimary,
    RestoreOnDelete,
    ScaleCanary,
    SetWeights,
)
from controller.rollout.machine import plan, step
from controller.rollout.observations import (
    HookOutcome,
    ManualRequest,
    Observations,
    RouteWeights,
    TargetObservation,
)
from controller.rollout.phases import ManualAction
from controller.rollout.spec import CanarySpec, HookType, parse_canary_spec
from controller.rollout.status import CanaryStatus

T0 = 1_700_000_000.0


SUCCESS_RATE = {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}


def make_spec(analysis: Mapping[str, Any] | None = None, **top: Any) -> CanarySpec:
    """A podinfo Canary; ``analysis`` replaces the default (stepWeight 20 up to 60, threshold 2, interval 1m).

    Unless the analysis names its own ``metrics`` or ``comparison``, it checks Flagger's success rate, so every
    look past the first needs a verdict.
    """
    body = dict({"interval": "1m", "threshold": 2, "stepWeight": 20, "maxWeight": 60} if analysis is None else analysis)
    if "metrics" not in body and "comparison" not in body:
        body["metrics"] = [SUCCESS_RATE]
    raw: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": body,
        **top,
    }
    return parse_canary_spec(raw)


def hook(*types: str) -> list[dict[str, str]]:
    return [{"name": f"{t}-gate", "type": t, "url": f"http://hooks/{t}"} for t in types]


PASS = Verdict(Outcome.PASS, "all checks passed")
FAIL = Verdict(Outcome.FAIL, "request-success-rate 95.00% < 99%")
NO_DATA = Verdict(Outcome.NO_DATA, "no values found for request-success-rate")
REJECTED = Verdict(Outcome.REJECTED, "error rate 3.1× the primary's (p=0.004)")


@dataclass
class World:
    """What the operator would see: the target, the primary, the routes. ``apply`` carries out actions."""

    revision: str = "v1"
    configs: dict[str, str] = field(default_factory=dict)
    target_exists: bool = True
    canary_up: bool = True
    canary_ready: float = 100.0
    canary_stalled: bool = False
    route_problem: str | None = None
    primary_revision: str | None = None
    primary_ready: float = 100.0
    routes: RouteWeights | None = None
    match_active: bool = False
    mirror_weight: int | None = None
    deleting: bool = False
    generation: int = 1

    def apply(self, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, Initialize):
                self.primary_revision = self.revision
            elif isinstance(action, PromotePrimary):
                self.primary_revision = action.pod_template_hash
            elif isinstance(action, ScaleCanary):
                self.canary_up = action.up
            elif isinstance(action, SetWeights):
                self.routes = RouteWeights(action.primary, action.canary)
                self.match_active = action.match_active
                self.mirror_weight = action.mirror_weight
            elif isinstance(action, RestoreOnDelete):
                self.canary_up = True

    def observe(
        self,
        verdict: Verdict | None = None,
        hooks: Mapping[HookType, HookOutcome] | None = None,
        request: ManualRequest | None = None,
    ) -> Observations:
        return Observations(
            target=TargetObservation(
                exists=self.target_exists, pod_template_hash=self.revision, tracked_configs=dict(self.configs)
            ),
            primary_ready_percent=self.primary_ready if self.primary_revision else 0.0,
            canary_ready_percent=self.canary_ready if self.canary_up else 0.0,
            canary_stalled=self.canary_stalled and self.canary_up,
            route_problem=self.route_problem,
            primary_updated=self.primary_revision is not None,
            primary_revision=self.primary_revision or "",
            routes=self.routes,
            verdict=verdict,
            hooks=dict(hooks or {}),
            request=request,
            generation=self.generation,
            deleting=self.deleting,
        )


def gates(passed: bool, *types: HookType, message: str = "") -> dict[HookType, HookOutcome]:
    return {t: HookOutcome(passed, message) for t in types}


def request(action: str, rid: str = "r1") -> ManualRequest:
    return ManualRequest(rid, ManualAction(action), 0.0)


@dataclass
class Run:
    """Drives spec + world tick by tick the way the operator does (plan → observe → step → apply)."""

    spec: CanarySpec
    world: World = field(default_factory=World)
    status: CanaryStatus = field(default_factory=CanaryStatus)
    now: float = T0
    decisions: list[Decision] = field(default_factory=list)

    def tick(
        self,
        verdict: Verdict | None = PASS,
        hooks: Mapping[HookType, HookOutcome] | None = None,
        request: ManualRequest | None = None,
        advance: float = 0.0,
    ) -> Decision:
        """One tick ``advance`` seconds after the previous one; the verdict is given only if a look is due."""
        self.now += advance
        probes = plan(self.spec, self.status, self.now)
        obs = self.world.observe(verdict if probes.metrics else None, hooks, request)
        decision = step(self.spec, self.status, obs, self.now)
        self.world.apply(decision)
        self.status = decision.status
        self.decisions.append(decision)
        return decision

    def until_phase(self, phase: str, limit: int = 60, **kwargs: Any) -> Decision:
        """Tick once per interval until the phase is reached (fails the test if it never is)."""
        interval = self.spec.analysis.interval_s
        for _ in range(limit):
            decision = self.tick(advance=interval, **kwargs)
            if decision.status.phase == phase:
                return decision
        raise AssertionError(f"phase {phase} not reached; stuck in {self.status.phase}: {self.status.message}")

    def initialized(self) -> Run:
        self.tick()  # creates the primary
        self.tick(advance=5)  # the primary is ready: routes switch to it
        assert self.status.phase == "Initialized", self.status
        return self

    def progressing(self, revision: str = "v2") -> Run:
        self.initialized()
        self.world.revision = revision
        self.tick(advance=5)
        assert self.status.phase == "Progressing", self.status
        # The operator ticks every few seconds: the next tick sees the scaled-up canary ready.
        self.tick(advance=5)
        assert self.status.phase == "Progressing" and self.status.hold is None, self.status
        return self
