"""``coalmine plan``'s numbers: what a rollout's settings can detect at a given traffic, and what they cost.

Pure (no I/O). Everything is measured by :func:`controller.simulation.synthetic.simulate` — the real engine and judge
on seeded synthetic Poisson traffic — never by a formula for the engine: a regression "is detected" when at least
``POWER`` (90 %) of the runs roll back before promotion. Three questions, each over ``runs`` seeded rollouts:

- healthy: the canary behaves like the primary; how often does it roll back anyway, and why (the threshold checks
  — Flagger's ``request-success-rate`` and ``request-duration`` — or the comparison, whose budget is ``alpha``)?
- error rate: the smallest ratio on :data:`RATIOS` of canary to primary 5xx rate rolled back ≥ 90 % of the time;
- latency (when the comparison has ``latency``): the same for the share of requests slower than ``slowThresholdMs``,
  made by giving a fraction of canary requests ``slowThresholdMs`` extra latency.

Monte-Carlo uncertainty is reported as 95 % Wilson intervals: with 200 runs a measured 90 % is 85–93 %.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analysis.synthetic import ArmBehaviour, TrafficModel
from controller.rollout.bluegreen_spec import BlueGreenSpec
from controller.rollout.durations import format_duration
from controller.rollout.kinds import BLUEGREEN, CANARY, Strategy
from controller.simulation.budget import Budget, budget_of, min_requests_warning
from controller.simulation.driver import PROMOTED, ROLLED_BACK, DriveOptions, RunResult
from controller.simulation.synthetic import simulate, simulated_bluegreen, simulated_spec

RATIOS: tuple[float, ...] = (1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
POWER = 0.9
Z95 = 1.959964


@dataclass(frozen=True)
class PlanSettings:
    """The traffic a plan assumes and how hard it looks. ``rps`` is all requests at the service."""

    rps: float
    baseline_error_rate: float = 0.005
    baseline_latency_ms: float = 100.0
    latency_sigma: float = 0.6
    runs: int = 200
    seed: int = 0
    match_fraction: float = 0.1
    load_test_rps: float = 0.0
    max_duration_s: float = 3600.0
    approval_delay_s: float = 0.0


@dataclass(frozen=True)
class Rate:
    """``count`` of ``runs`` with its 95 % Wilson interval."""

    count: int
    runs: int

    @property
    def fraction(self) -> float:
        return self.count / self.runs if self.runs else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.count, self.runs)

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval
        return {"count": self.count, "runs": self.runs, "fraction": self.fraction, "interval95": [low, high]}


@dataclass(frozen=True)
class Trial:
    """One point of a grid: the regression's ``ratio``, how often it was rolled back, and how fast."""

    ratio: float
    rolled_back: Rate
    by_cause: dict[str, int]
    median_s: float | None
    p90_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "rolledBack": self.rolled_back.to_json(),
            "byCause": self.by_cause,
            "medianRollbackSeconds": self.median_s,
            "p90RollbackSeconds": self.p90_s,
        }


@dataclass(frozen=True)
class Detection:
    """The smallest detected ratio on the grid (None: not even the last one), and every grid point tried."""

    detectable: float | None
    trials: tuple[Trial, ...]

    def to_json(self) -> dict[str, Any]:
        return {"detectableRatio": self.detectable, "power": POWER, "grid": [t.to_json() for t in self.trials]}


@dataclass(frozen=True)
class Plan:
    """Everything ``coalmine plan`` prints."""

    settings: PlanSettings
    budget: Budget
    min_requests: int | None
    healthy: Trial
    healthy_promoted: int
    healthy_undecided: int
    healthy_median_s: float | None
    healthy_p90_s: float | None
    error_rate: Detection
    latency: Detection | None
    warnings: tuple[str, ...]
    not_simulated: tuple[str, ...]


def wilson(count: int, runs: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion: honest near 0 and 1, where p ± z·se is not."""
    if runs <= 0:
        return 0.0, 1.0
    p = count / runs
    denominator = 1.0 + z * z / runs
    centre = (p + z * z / (2 * runs)) / denominator
    half = z * math.sqrt(p * (1 - p) / runs + z * z / (4 * runs * runs)) / denominator
    low = 0.0 if count <= 0 else max(0.0, centre - half)
    high = 1.0 if count >= runs else min(1.0, centre + half)
    return low, high


def cause_of(result: RunResult) -> str:
    """Why a run rolled back, from its Event reason: the comparison, the threshold checks, or something else."""
    reason = result.reason.split(":", 1)[0]
    if reason == "ComparisonRejected":
        return "comparison"
    if reason == "RolledBack" and "failed checks" in result.reason:
        return "thresholds"
    return reason or "other"


def _quantiles(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.median(values)), float(np.percentile(values, 90))


def _trial(ratio: float, results: Sequence[RunResult]) -> Trial:
    back = [r for r in results if r.result == ROLLED_BACK]
    median, p90 = _quantiles([r.decision_seconds for r in back if r.decision_seconds is not None])
    causes = Counter(cause_of(r) for r in back)
    return Trial(ratio, Rate(len(back), len(results)), dict(sorted(causes.items())), median, p90)


def slow_share(threshold_ms: float, median_ms: float, sigma: float) -> float:
    """P(latency > threshold) for the lognormal body the synthetic traffic draws."""
    if threshold_ms <= 0:
        return 1.0
    return 0.5 * math.erfc(math.log(threshold_ms / median_ms) / (sigma * math.sqrt(2.0)))


class _Runner:
    """Runs batches of seeded rollouts of one spec: the same seeds for every question, so grid points compare."""

    def __init__(self, spec: Any, settings: PlanSettings) -> None:
        self.kind: Strategy[Any] = BLUEGREEN if isinstance(spec, BlueGreenSpec) else CANARY
        self.spec: Any
        self.dropped: tuple[str, ...]
        if isinstance(spec, BlueGreenSpec):
            self.spec, self.dropped = simulated_bluegreen(spec)
        else:
            self.spec, self.dropped = simulated_spec(spec)
        self.settings = settings
        self.baseline = ArmBehaviour(settings.baseline_error_rate, settings.baseline_latency_ms, settings.latency_sigma)
        self.options = DriveOptions(max_duration_s=settings.max_duration_s, approval_delay_s=settings.approval_delay_s)

    def run(self, canary: ArmBehaviour) -> list[RunResult]:
        s = self.settings
        traffic = TrafficModel(rps=s.rps, primary=self.baseline, canary=canary)
        return simulate(
            self.spec,
            traffic,
            runs=s.runs,
            seed=s.seed,
            options=self.options,
            match_fraction=s.match_fraction,
            load_test_rps=s.load_test_rps,
            kind=self.kind,
        )


def _search(runner: _Runner, canary_for: Callable[[float], ArmBehaviour | None]) -> Detection:
    """Walk :data:`RATIOS` upwards and stop at the first ratio rolled back in ≥ POWER of the runs."""
    trials: list[Trial] = []
    for ratio in RATIOS:
        canary = canary_for(ratio)
        if canary is None:
            break
        trial = _trial(ratio, runner.run(canary))
        trials.append(trial)
        if trial.rolled_back.fraction >= POWER:
            return Detection(ratio, tuple(trials))
    return Detection(None, tuple(trials))


def plan(spec: Any, settings: PlanSettings) -> Plan:
    """Measure ``spec`` (a CanarySpec or a BlueGreenSpec) at ``settings``' traffic; see the module doc."""
    runner = _Runner(spec, settings)
    view = runner.kind.view(runner.spec)
    comparison = view.analysis.comparison
    healthy_runs = runner.run(runner.baseline)
    healthy = _trial(1.0, healthy_runs)
    promoted = [r.decision_seconds for r in healthy_runs if r.result == PROMOTED and r.decision_seconds is not None]
    p0 = settings.baseline_error_rate

    def errors(ratio: float) -> ArmBehaviour | None:
        return replace(runner.baseline, error_rate=p0 * ratio) if p0 * ratio <= 1.0 else None

    error_rate = _search(runner, errors)
    latency: Detection | None = None
    if comparison is not None and comparison.latency is not None:
        threshold = comparison.latency.slow_threshold_ms
        s0 = slow_share(threshold, settings.baseline_latency_ms, settings.latency_sigma)

        def slower(ratio: float) -> ArmBehaviour | None:
            if s0 <= 0 or ratio * s0 >= 1.0:
                return None
            fraction = (ratio - 1.0) * s0 / (1.0 - s0)  # these requests get +threshold, so all of them are slow
            return replace(runner.baseline, tail_fraction=fraction, tail_ms=threshold)

        latency = _search(runner, slower)
    budget = budget_of(spec, settings.rps, match_fraction=settings.match_fraction, load_test_rps=settings.load_test_rps)
    warnings = [
        w
        for w in (
            min_requests_warning(
                spec, settings.rps, match_fraction=settings.match_fraction, load_test_rps=settings.load_test_rps
            ),
            _false_rollback_warning(healthy),
            _detection_warning(error_rate, "error-rate"),
        )
        if w
    ]
    median, p90 = _quantiles(promoted)
    undecided = len(healthy_runs) - len(promoted) - healthy.rolled_back.count
    if undecided:
        warnings.append(
            f"{undecided} of {len(healthy_runs)} healthy releases were still undecided after "
            f"{format_duration(settings.max_duration_s)}: the judge waits for evidence it does not get at this traffic "
            "(requireEvidence needs the upper bound within tolerance; minRequests needs the requests); "
            "more traffic, a load test, a wider tolerance or analysis.maxDuration with onInconclusive decide it"
        )
    return Plan(
        settings,
        budget,
        None if comparison is None else comparison.min_requests,
        healthy,
        len(promoted),
        undecided,
        median,
        p90,
        error_rate,
        latency,
        tuple(warnings),
        runner.dropped,
    )


def _false_rollback_warning(healthy: Trial) -> str:
    thresholds = healthy.by_cause.get("thresholds", 0)
    if not thresholds:
        return ""
    low, high = Rate(thresholds, healthy.rolled_back.runs).interval
    return (
        f"the threshold checks roll back {100 * thresholds / healthy.rolled_back.runs:.1f} % of healthy releases "
        f"(95 % interval {100 * low:.1f}–{100 * high:.1f} %), outside the comparison's alpha: loosen or remove them "
        "(the comparison judges the same signal against the primary), or raise `threshold`"
    )


def _detection_warning(detection: Detection, signal: str) -> str:
    if detection.detectable is not None:
        return ""
    top = detection.trials[-1].ratio if detection.trials else RATIOS[-1]
    return f"no {signal} regression up to ×{top:g} is rolled back in {POWER:.0%} of the runs before promotion"


def plan_json(result: Plan) -> dict[str, Any]:
    """``coalmine plan --json``."""
    s = result.settings
    return {
        "rps": s.rps,
        "baselineErrorRate": s.baseline_error_rate,
        "runs": s.runs,
        "seed": s.seed,
        "canaryRequestsBeforePromotion": round(result.budget.canary_requests),
        "analysisSeconds": result.budget.seconds,
        "minRequests": result.min_requests,
        "healthy": {
            "falseRollback": result.healthy.rolled_back.to_json(),
            "byCause": result.healthy.by_cause,
            "thresholdFalseRollback": Rate(result.healthy.by_cause.get("thresholds", 0), s.runs).to_json(),
            "comparisonFalseRollback": Rate(result.healthy.by_cause.get("comparison", 0), s.runs).to_json(),
            "promoted": result.healthy_promoted,
            "undecided": result.healthy_undecided,
            "medianPromotionSeconds": result.healthy_median_s,
            "p90PromotionSeconds": result.healthy_p90_s,
        },
        "errorRate": result.error_rate.to_json(),
        "latency": None if result.latency is None else result.latency.to_json(),
        "warnings": list(result.warnings),
        "notSimulated": list(result.not_simulated),
    }
