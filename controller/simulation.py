"""``coalmine simulate``: drive the real rollout engine and judge with a simulated clock and synthetic traffic.

Nothing here re-implements a decision. Each tick asks :func:`controller.rollout.machine.plan` what is due, builds the
look from synthetic counters exactly as the Prometheus provider would (disjoint windows, success rate over the
metric's interval, p99 by ``histogram_quantile``), runs :func:`analysis.judge.judge` on it, and hands everything to
:func:`controller.rollout.machine.step` — the same calls the operator makes. The weights the engine sets decide how
the next slice of traffic is split. Webhooks are taken as passing and manual pauses as promoted by a person at once
(the timeline says so); MetricTemplate metrics are not simulated and are left out of the policy (reported).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import reduce

import numpy as np

from analysis.judge import judge
from analysis.samples import ArmCounts, Look, ThresholdValue
from analysis.synthetic import ArmSlice, TrafficGenerator, TrafficModel, histogram_quantile, slow_count
from analysis.verdict import Verdict
from controller.rollout.decision import EventType, Initialize, PromotePrimary, SetWeights
from controller.rollout.judging import policy_from_spec
from controller.rollout.machine import plan, step
from controller.rollout.observations import HookOutcome, ManualRequest, Observations, RouteWeights, TargetObservation
from controller.rollout.phases import ManualAction, Phase, is_human_hold, is_terminal
from controller.rollout.spec import BUILTIN_METRICS, CanarySpec, HookType
from controller.rollout.status import CanaryStatus

EPOCH = 1_700_000_000.0
"""Simulated wall clock at the release (any fixed epoch: status stores RFC3339 times)."""

PROMOTED = "promoted"
ROLLED_BACK = "rolledBack"
UNDECIDED = "undecided"


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a run's timeline: when, where the rollout stood, and what happened."""

    seconds: float
    phase: str
    weight: int
    message: str


@dataclass(frozen=True)
class RunResult:
    """The outcome of one simulated rollout."""

    seed: int
    result: str  # promoted | rolledBack | undecided
    decision_seconds: float | None
    reason: str
    max_canary_weight: int
    timeline: tuple[TimelineEntry, ...] = ()


@dataclass(frozen=True)
class _Slice:
    start: float
    end: float
    canary: ArmSlice
    primary: ArmSlice


def simulated_spec(spec: CanarySpec) -> tuple[CanarySpec, tuple[str, ...]]:
    """The spec the simulator can evaluate, and the names of the metrics it had to leave out (MetricTemplates)."""
    kept = tuple(m for m in spec.analysis.metrics if m.is_builtin)
    dropped = tuple(m.name for m in spec.analysis.metrics if not m.is_builtin)
    return replace(spec, analysis=replace(spec.analysis, metrics=kept)), dropped


def tick_seconds(spec: CanarySpec) -> float:
    """The simulated clock's resolution: the largest whole second dividing the interval and every metric interval."""
    periods = [max(1, round(spec.analysis.interval_s))] + [max(1, round(m.interval_s)) for m in spec.analysis.metrics]
    return float(reduce(math.gcd, periods))


class _Run:
    """State of one simulated rollout (one seed)."""

    def __init__(self, spec: CanarySpec, traffic: TrafficModel, seed: int, record: bool) -> None:
        self.spec = spec
        self.policy = policy_from_spec(spec)
        slow_ms = self.policy.latency.slow_threshold_ms if self.policy.latency else None
        extra = () if slow_ms is None else (slow_ms,)
        self.generator = TrafficGenerator(traffic, np.random.default_rng(seed), extra_edges_ms=extra)
        self.default_edges = traffic.buckets_ms
        self.slow_ms = slow_ms
        self.seed = seed
        self.record = record
        self.slices: list[_Slice] = []
        self.timeline: list[TimelineEntry] = []
        self.routes = RouteWeights(100, 0)
        self.status = CanaryStatus()
        self.max_weight = 0
        self.last_warning = ""
        self.primary_revision = ""
        self.intervals = {m.name: m.interval_s for m in spec.analysis.metrics}

    # -- traffic ---------------------------------------------------------------------------------------------------
    def _advance_traffic(self, start: float, end: float) -> None:
        weight = self.routes.canary
        canary = self.generator.slice("canary", start - EPOCH, end - EPOCH, weight)
        primary = self.generator.slice("primary", start - EPOCH, end - EPOCH, 100 - weight)
        self.slices.append(_Slice(start, end, canary, primary))

    def _window(self, start: float, end: float) -> list[_Slice]:
        chosen: list[_Slice] = []
        for piece in reversed(self.slices):
            if piece.end <= start:
                break
            if piece.start >= start - 1e-9 and piece.end <= end + 1e-9:
                chosen.append(piece)
        return chosen

    def _counts(self, pieces: Sequence[_Slice], arm: str) -> ArmCounts:
        requests = errors = slow = 0
        for piece in pieces:
            counters = piece.canary if arm == "canary" else piece.primary
            requests += counters.requests
            errors += counters.errors
            if self.slow_ms is not None and counters.requests:
                slow += slow_count(counters, self.generator.edges_ms, self.slow_ms)
        return ArmCounts(requests=requests, errors=errors, slow=slow)

    def _threshold(self, name: str, end: float) -> ThresholdValue:
        pieces = self._window(end - self.intervals[name], end)
        if name == "request-success-rate":
            counts = self._counts(pieces, "canary")
            if counts.requests == 0:
                return ThresholdValue()
            return ThresholdValue(100.0 * (1.0 - counts.errors / counts.requests))
        edges = self.generator.edges_ms
        cumulative = [0] * len(edges)
        total = 0
        for piece in pieces:
            total += piece.canary.requests
            if piece.canary.requests:
                cumulative = [a + b for a, b in zip(cumulative, piece.canary.buckets, strict=True)]
        value = histogram_quantile(0.99, edges, cumulative, total)
        return ThresholdValue(None if math.isnan(value) else value)

    def _look(self, window: tuple[float, float]) -> Look:
        pieces = self._window(*window)
        thresholds = {
            metric.name: self._threshold(metric.name, window[1])
            for metric in self.policy.thresholds
            if metric.name in BUILTIN_METRICS
        }
        return Look(
            start=window[0],
            end=window[1],
            canary=self._counts(pieces, "canary"),
            primary=self._counts(pieces, "primary"),
            thresholds=thresholds,
        )

    # -- engine ----------------------------------------------------------------------------------------------------
    def _note(self, now: float, message: str) -> None:
        if self.record:
            self.timeline.append(TimelineEntry(now - EPOCH, str(self.status.phase), self.routes.canary, message))

    def _tick(self, now: float, template: str, request: ManualRequest | None) -> list[str]:
        probes = plan(self.spec, self.status, now)
        verdict: Verdict | None = None
        if probes.metrics and probes.window is not None:
            verdict = judge(self.policy, self._look(probes.window), self.status.judge)
        hooks = {hook: HookOutcome(passed=hook is not HookType.ROLLBACK) for hook in probes.hooks}
        observations = Observations(
            target=TargetObservation(exists=True, pod_template_hash=template),
            primary_ready_percent=100.0,
            canary_ready_percent=100.0,
            primary_updated=True,
            primary_revision=self.primary_revision,
            routes=self.routes,
            verdict=verdict,
            hooks=hooks,
            request=request,
            generation=1,
        )
        decision = step(self.spec, self.status, observations, now)
        for action in decision.actions:
            if isinstance(action, SetWeights):
                self.routes = RouteWeights(action.primary, action.canary)
            elif isinstance(action, Initialize):
                self.primary_revision = template
            elif isinstance(action, PromotePrimary):
                self.primary_revision = action.pod_template_hash
        self.status = decision.status
        self.max_weight = max(self.max_weight, self.routes.canary)
        messages = [f"{event.reason}: {event.message}" for event in decision.events]
        if verdict is not None and self.record:
            messages.insert(0, f"look {verdict.outcome}: " + _evidence_line(verdict))
        self.last_warning = next(
            (f"{e.reason}: {e.message}" for e in decision.events if e.type is EventType.WARNING), self.last_warning
        )
        for message in messages:
            self._note(now, message)
        return messages

    def run(self, max_duration_s: float) -> RunResult:
        tick = tick_seconds(self.spec)
        now = EPOCH - 10 * tick
        for _ in range(10):  # initialise on the stable revision before the clock starts
            self._tick(now, "stable", None)
            now += tick
            if self.status.phase is Phase.INITIALIZED:
                break
        self.timeline.clear()
        now, requests_sent = EPOCH, 0
        decided_at: float | None = None
        result, reason = UNDECIDED, f"no decision within {max_duration_s:g} s"
        while now - EPOCH <= max_duration_s:
            request = None
            if is_human_hold(self.status.hold) and self.status.phase is Phase.WAITING_PROMOTION:
                requests_sent += 1
                request = ManualRequest(id=f"sim-{requests_sent}", action=ManualAction.PROMOTE, at=now)
                self._note(now, "simulated person: kubectl coalmine promote")
            before = self.status.phase
            messages = self._tick(now, "release", request)
            phase = self.status.phase
            if decided_at is None and phase is Phase.FAILED:
                decided_at, result = now, ROLLED_BACK
                reason = self.last_warning or (messages[-1] if messages else "rolled back")
            if decided_at is None and phase in (Phase.PROMOTING, Phase.FINALISING, Phase.SUCCEEDED):
                decided_at, result = now, PROMOTED
                reason = "promoted after the last step"
            if is_terminal(phase) and phase is not before:
                break
            if is_terminal(phase) and decided_at is not None:
                break
            self._advance_traffic(now, now + tick)
            now += tick
        return RunResult(
            seed=self.seed,
            result=result,
            decision_seconds=None if decided_at is None else decided_at - EPOCH,
            reason=reason,
            max_canary_weight=self.max_weight,
            timeline=tuple(self.timeline),
        )


def _evidence_line(verdict: Verdict) -> str:
    parts = []
    for metric in verdict.metrics:
        if metric.p_value is not None:
            estimate = "—" if metric.estimate is None else f"{metric.estimate:.2f}"
            parts.append(f"{metric.metric} θ̂={estimate} p={metric.p_value:.3g} n={metric.canary_requests:,}")
        elif metric.value is not None:
            parts.append(f"{metric.metric}={metric.value:.4g}")
        else:
            parts.append(f"{metric.metric} {metric.outcome}")
    return "; ".join(parts) if parts else verdict.reason


def simulate(
    spec: CanarySpec,
    traffic: TrafficModel,
    *,
    runs: int = 1,
    seed: int = 0,
    max_duration_s: float = 3600.0,
    record_timeline: bool = False,
) -> list[RunResult]:
    """Run ``runs`` independent seeded rollouts (seed, seed+1, …). Same seed, same result."""
    return [_Run(spec, traffic, seed + index, record_timeline).run(max_duration_s) for index in range(runs)]


def summarize(results: Sequence[RunResult]) -> dict[str, object]:
    """The ``--json`` summary: counts, the rollback fraction and decision-time quantiles."""
    decided = [r.decision_seconds for r in results if r.decision_seconds is not None]
    promoted = sum(r.result == PROMOTED for r in results)
    rolled_back = sum(r.result == ROLLED_BACK for r in results)
    return {
        "runs": len(results),
        "promoted": promoted,
        "rolledBack": rolled_back,
        "rollbackFraction": rolled_back / len(results) if results else 0.0,
        "medianDecisionSeconds": float(np.median(decided)) if decided else None,
        "p90DecisionSeconds": float(np.percentile(decided, 90)) if decided else None,
        "results": [
            {
                "seed": r.seed,
                "result": r.result,
                "decisionSeconds": r.decision_seconds,
                "reason": r.reason,
                "maxCanaryWeight": r.max_canary_weight,
            }
            for r in results
        ],
    }


__all__ = ["RunResult", "TimelineEntry", "simulate", "simulated_spec", "summarize"]
