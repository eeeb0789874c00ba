"""Drive the real rollout engine and judge over a simulated clock, with the looks coming from a pluggable source.

Nothing here re-implements a decision. Each tick asks :func:`controller.rollout.machine.plan` what is due, gets the
look for the due window from a :class:`LookSource`, runs :func:`analysis.judge.judge` on it and hands everything to
:func:`controller.rollout.machine.step` — the same calls the operator makes. What differs between ``coalmine
simulate`` and ``coalmine judge`` is only where the looks come from: synthetic traffic that follows the weights the
engine sets (:mod:`controller.simulation.synthetic`), or a past window of a real Prometheus (``controller.backtest``,
which does the I/O and so lives outside this pure package). A BlueGreen is driven the same way through its own
engine: the rollout kind (:mod:`controller.rollout.kinds`) supplies ``plan``, ``step`` and the judge's policy.

Assumptions, said once and also shown in the timeline: webhooks pass (gates open, a rollback hook does not ask for a
rollback); both Deployments are always ready; a manual pause (``pause: {}``) is promoted by a person
``approval_delay_s`` after it starts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import reduce
from typing import Any, Protocol

import numpy as np

from analysis.judge import judge
from analysis.policy import JudgePolicy
from analysis.samples import Look
from analysis.verdict import Verdict
from controller.rollout.decision import EventType, Initialize, PromotePrimary, ScaleCanary, SetWeights
from controller.rollout.durations import format_duration
from controller.rollout.kinds import CANARY, Strategy
from controller.rollout.observations import HookOutcome, ManualRequest, Observations, RouteWeights, TargetObservation
from controller.rollout.phases import ManualAction, Phase, is_human_hold, is_terminal
from controller.rollout.spec import CanarySpec, HookType
from controller.rollout.status import CanaryStatus, format_time

PROMOTED = "promoted"
ROLLED_BACK = "rolledBack"
UNDECIDED = "undecided"


@dataclass(frozen=True)
class Routing:
    """How the router splits traffic right now, as the engine's last :class:`SetWeights` asked.

    ``match_active``: the A/B route sends requests matching ``analysis.match`` to the canary. ``mirror_weight``:
    that percent of the primary's requests is copied to the canary (the copies' responses are discarded, but the
    canary serves them, so its metrics count them). ``canary_up``: the canary Deployment is scaled up, so traffic
    sent straight to its Service (a load tester) reaches it.
    """

    primary: int = 100
    canary: int = 0
    match_active: bool = False
    mirror_weight: int | None = None
    canary_up: bool = False


class LookSource(Protocol):
    """Where a run's looks come from: synthetic traffic, or a Prometheus holding a past window."""

    def advance(self, start: float, end: float, routing: Routing) -> None:
        """Traffic flowed over ``[start, end)`` under ``routing`` (a replay of recorded data ignores this)."""
        ...

    def look(self, window: tuple[float, float]) -> Look:
        """The look for ``window`` = (start, end]: per-arm counts, and threshold values evaluated at ``end``."""
        ...


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a run's timeline: when (seconds since the release), where the rollout stood, what happened.

    ``evidence`` is the verdict (``Verdict.to_dict()``) on the lines that report a look, for ``--json``.
    """

    seconds: float
    phase: str
    weight: int
    message: str
    evidence: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class RunResult:
    """The outcome of one rollout: ``decision_seconds`` is when it was promoted or rolled back (None: undecided)."""

    seed: int
    result: str  # promoted | rolledBack | undecided
    decision_seconds: float | None
    reason: str
    max_canary_weight: int
    timeline: tuple[TimelineEntry, ...] = ()


@dataclass(frozen=True)
class DriveOptions:
    """The simulated clock: when the release happens, how long to run, the tick, and the simulated person.

    ``tick_s`` None uses :func:`tick_seconds`. ``approval_delay_s`` is how long after a manual pause starts the
    simulated person runs ``kubectl coalmine promote``.
    """

    start: float = 1_700_000_000.0
    max_duration_s: float = 3600.0
    tick_s: float | None = None
    approval_delay_s: float = 0.0
    record: bool = False


def tick_seconds(spec: CanarySpec) -> float:
    """The clock's resolution: the largest whole second dividing the interval and every metric interval."""
    periods = [max(1, round(spec.analysis.interval_s))] + [max(1, round(m.interval_s)) for m in spec.analysis.metrics]
    return float(reduce(math.gcd, periods))


def evidence_line(verdict: Verdict) -> str:
    """The per-metric evidence of one look on one line: θ̂, p and requests for comparisons, values for thresholds."""
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


class _Run:
    """One rollout of the release over the simulated clock."""

    def __init__(
        self, spec: Any, source: LookSource, options: DriveOptions, seed: int, kind: Strategy[Any] = CANARY
    ) -> None:
        self.spec = spec
        self.kind = kind
        self.view: CanarySpec = kind.view(spec)
        self.source = source
        self.options = options
        self.policies: dict[Phase, JudgePolicy] = {}
        self.seed = seed
        self.timeline: list[TimelineEntry] = []
        self.routing = Routing()
        self.status = CanaryStatus()
        self.max_weight = 0
        self.last_warning = ""
        self.primary_revision = ""
        self.requests_sent = 0
        self.paused_since: float | None = None
        self.last_judged: tuple[Look, Mapping[str, Any], JudgePolicy] | None = None

    def _policy(self) -> JudgePolicy:
        """The judge's policy for the current phase (a BlueGreen drops comparisons once blue has no traffic)."""
        phase = self.status.phase
        policy = self.policies.get(phase)
        if policy is None:
            policy = self.policies[phase] = self.kind.policy(self.spec, self.status)
        return policy

    def _note(self, now: float, message: str, evidence: Mapping[str, Any] | None = None) -> None:
        if self.options.record:
            seconds = now - self.options.start
            self.timeline.append(TimelineEntry(seconds, str(self.status.phase), self.routing.canary, message, evidence))

    def _tick(self, now: float, template: str, request: ManualRequest | None) -> list[str]:
        probes = self.kind.plan(self.spec, self.status, now)
        verdict: Verdict | None = None
        if probes.metrics and probes.window is not None:
            look = self.source.look(probes.window)
            # Without a timeline nobody reads the bounds and `detectable` of every look: skip them (decisions are
            # identical, see analysis.judge.judge); the last look is judged again in full for the outcome's reason.
            policy = self._policy()
            verdict = judge(policy, look, self.status.judge, detail=self.options.record)
            self.last_judged = (look, self.status.judge, policy)
        # Webhooks pass: gates open, pre-rollout/rollout checks succeed, a rollback hook does not ask for one.
        hooks = {hook: HookOutcome(passed=hook is not HookType.ROLLBACK) for hook in probes.hooks}
        observations = Observations(
            target=TargetObservation(exists=True, pod_template_hash=template),
            primary_ready_percent=100.0,
            canary_ready_percent=100.0,
            primary_updated=True,
            primary_revision=self.primary_revision,
            routes=RouteWeights(self.routing.primary, self.routing.canary),
            verdict=verdict,
            hooks=hooks,
            request=request,
            generation=1,
        )
        if verdict is not None and self.options.record:  # shows the phase and weight the look's traffic saw
            self._note(now, f"look {verdict.outcome}: {evidence_line(verdict)}", verdict.to_dict())
        decision = self.kind.step(self.spec, self.status, observations, now)
        for action in decision.actions:
            if isinstance(action, SetWeights):
                self.routing = Routing(
                    action.primary, action.canary, action.match_active, action.mirror_weight, self.routing.canary_up
                )
            elif isinstance(action, ScaleCanary):
                self.routing = replace(self.routing, canary_up=action.up)
            elif isinstance(action, Initialize):
                self.primary_revision = template
            elif isinstance(action, PromotePrimary):
                self.primary_revision = action.pod_template_hash
        self.status = decision.status
        self.max_weight = max(self.max_weight, self.routing.canary)
        messages = [f"{event.reason}: {event.message}" for event in decision.events]
        # The last warning of the tick: when a tick both halts and rolls back, the rollback is the reason.
        self.last_warning = next(
            (f"{e.reason}: {e.message}" for e in reversed(decision.events) if e.type is EventType.WARNING),
            self.last_warning,
        )
        for message in messages:
            self._note(now, message)
        return messages

    def _detectable(self) -> str:
        """What the last look could have detected (the judge's ``detectable``), as a suffix for the reason."""
        if self.last_judged is None:
            return ""
        look, prior, policy = self.last_judged
        detectable = judge(policy, look, prior).detectable
        return f"; {detectable}" if detectable else ""

    def _manual_request(self, now: float) -> ManualRequest | None:
        """The simulated person: promotes a manual pause ``approval_delay_s`` after it began."""
        if not (is_human_hold(self.status.hold) and self.status.phase is Phase.WAITING_PROMOTION):
            self.paused_since = None
            return None
        if self.paused_since is None:
            self.paused_since = now
        if now - self.paused_since < self.options.approval_delay_s - 1e-9:
            return None
        self.requests_sent += 1
        self.paused_since = None
        self._note(now, "simulated person: kubectl coalmine promote")
        return ManualRequest(id=f"sim-{self.requests_sent}", action=ManualAction.PROMOTE, at=now)

    def run(self) -> RunResult:
        options = self.options
        tick = options.tick_s if options.tick_s is not None else tick_seconds(self.view)
        now = options.start - 10 * tick
        for _ in range(10):  # initialise on the stable revision before the clock starts
            self._tick(now, "stable", None)
            now += tick
            if self.status.phase is Phase.INITIALIZED:
                break
        self.timeline.clear()
        self.routing = Routing()
        now = options.start
        decided_at: float | None = None
        result, reason = UNDECIDED, ""
        while now - options.start <= options.max_duration_s + 1e-9:
            before = self.status.phase
            messages = self._tick(now, "release", self._manual_request(now))
            phase = self.status.phase
            if decided_at is None and phase is Phase.FAILED:
                decided_at, result = now, ROLLED_BACK
                reason = self.last_warning or (messages[-1] if messages else "rolled back")
            if decided_at is None and self.kind.promoted(self.spec, self.status):
                decided_at, result = now, PROMOTED
                after = "the last step" if self.kind is CANARY else "the analysis"
                reason = f"promoted after {after}" + self._detectable()
            if is_terminal(phase) and (phase is not before or decided_at is not None):
                break
            self.source.advance(now, now + tick, self.routing)
            now += tick
        if decided_at is None:
            why = f" ({self.status.message})" if self.status.message else ""
            reason = (
                f"no decision within {format_duration(options.max_duration_s)}: still {self.status.phase} "
                f"at canary weight {self.routing.canary}%{why}"
            )
        return RunResult(
            seed=self.seed,
            result=result,
            decision_seconds=None if decided_at is None else decided_at - options.start,
            reason=reason,
            max_canary_weight=self.max_weight,
            timeline=tuple(self.timeline),
        )


def drive(
    spec: Any, source: LookSource, options: DriveOptions, seed: int = 0, kind: Strategy[Any] = CANARY
) -> RunResult:
    """One rollout of a new revision of ``spec``'s target, with looks from ``source``; ``spec`` is of ``kind``
    (a :class:`~controller.rollout.spec.CanarySpec` by default, or a BlueGreen's with ``kinds.BLUEGREEN``)."""
    return _Run(spec, source, options, seed, kind).run()


def summarize(results: Sequence[RunResult]) -> dict[str, Any]:
    """The ``--json`` summary: counts, the rollback fraction and decision-time quantiles (over decided runs)."""
    decided = [r.decision_seconds for r in results if r.decision_seconds is not None]
    promoted = sum(r.result == PROMOTED for r in results)
    rolled_back = sum(r.result == ROLLED_BACK for r in results)
    return {
        "runs": len(results),
        "promoted": promoted,
        "rolledBack": rolled_back,
        "undecided": len(results) - promoted - rolled_back,
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


def timeline_json(result: RunResult, start: float | None = None) -> list[dict[str, Any]]:
    """A run's timeline as JSON rows; with ``start`` (epoch seconds) each row also gets its wall-clock ``time``."""
    rows: list[dict[str, Any]] = []
    for entry in result.timeline:
        row: dict[str, Any] = {"seconds": entry.seconds, "phase": entry.phase, "weight": entry.weight}
        if start is not None:
            row["time"] = format_time(start + entry.seconds)
        row["message"] = entry.message
        if entry.evidence is not None:
            row["verdict"] = dict(entry.evidence)
        rows.append(row)
    return rows
