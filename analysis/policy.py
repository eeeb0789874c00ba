"""What the judge is asked to decide: thresholds, canary-vs-primary comparisons, and the false-rollback budget.

``JudgePolicy`` is the judge's only input besides the data, so the same decision can be replayed by ``coalmine
simulate``, ``coalmine judge`` and the benchmark. It is built from a Canary spec by
``controller.rollout.judging.policy_from_spec``; ``analysis`` itself never sees the spec.

Several metrics, one budget: ``alpha`` is the family-wise probability of rolling back a healthy release over the whole
rollout, across every compared metric. We split it evenly (Bonferroni, α/M per comparison) rather than averaging
e-values: the split works for every method including the fixed-horizon Mann-Whitney (which has a p-value, not an
e-value), keeps each metric's p-value and confidence bounds readable on their own, and when a single metric regresses
— the common case — it is exactly as fast as the average of e-values (both need that metric's E ≥ M/α).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from analysis.classic import Direction

#: Istio's (and Envoy's) default buckets for ``istio_request_duration_milliseconds`` (the ``le`` boundaries, in ms).
ISTIO_DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5,
    1,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    300000,
    600000,
    1800000,
    3600000,
)


class CompareMethod(StrEnum):
    """How a custom metric's per-interval values are compared canary vs primary (see docs/judge.md)."""

    MSPRT = "msprt"
    MANN_WHITNEY = "mann-whitney"


@dataclass(frozen=True)
class ThresholdMetric:
    """A Flagger-style check of the canary alone: the look's value must lie within [minimum, maximum]."""

    name: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class RateComparison:
    """An always-valid test of the canary's event rate over the primary's: H0 is θ ≤ theta0.

    For errors the events are 5xx responses; for latency they are requests slower than ``slow_threshold_ms``.
    ``theta0`` is 1 + maxRelativeIncrease: the increase the owners accept (it also absorbs persistent per-pod
    differences that would otherwise, correctly but unhelpfully, be detected as a regression).
    """

    theta0: float = 1.0
    slow_threshold_ms: float | None = None  # None for the error-rate test


@dataclass(frozen=True)
class ComparedMetric:
    """A custom metric rendered once per arm and compared canary vs primary."""

    name: str
    method: CompareMethod = CompareMethod.MSPRT
    direction: Direction = Direction.INCREASE
    max_relative_increase: float = 0.0
    max_relative_decrease: float = 0.0
    min_points: int = 10


@dataclass(frozen=True)
class JudgePolicy:
    """Everything the judge decides with.

    ``min_requests`` requests per arm must be seen before the error-rate and latency tests may reject or promote;
    ``require_evidence`` makes promotion wait until each always-valid comparison shows the canary is no worse than
    its tolerance (upper confidence bound within it). ``alpha`` is split evenly over the comparisons (see module doc).
    """

    alpha: float = 0.01
    min_requests: int = 100
    error_rate: RateComparison | None = None
    latency: RateComparison | None = None
    require_evidence: bool = False
    thresholds: tuple[ThresholdMetric, ...] = ()
    compared: tuple[ComparedMetric, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_requests < 0:
            raise ValueError(f"min_requests must be ≥ 0, got {self.min_requests}")
        for rate in (self.error_rate, self.latency):
            if rate is not None and rate.theta0 <= 0:
                raise ValueError(f"theta0 must be positive, got {rate.theta0}")
        for metric in self.compared:
            if metric.min_points < 2:
                raise ValueError(f"{metric.name}: min_points must be ≥ 2, got {metric.min_points}")

    @property
    def comparison_count(self) -> int:
        """M, the number of canary-vs-primary comparisons sharing the family-wise ``alpha``."""
        return (self.error_rate is not None) + (self.latency is not None) + len(self.compared)

    @property
    def alpha_per_comparison(self) -> float:
        """α/M: each comparison's share of the false-rollback budget."""
        return self.alpha / max(self.comparison_count, 1)
