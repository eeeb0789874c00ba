"""From the Canary spec to the judge's policy: the one place that maps user-facing fields onto the statistics.

Kept pure and separate from the spec model so ``analysis`` never sees the spec (it must not import ``controller``), and
so the operator, ``coalmine simulate`` and ``coalmine judge`` build exactly the same policy from the same YAML.
"""

from __future__ import annotations

from analysis.classic import Direction
from analysis.policy import ComparedMetric, CompareMethod, JudgePolicy, RateComparison, ThresholdMetric
from controller.rollout.spec import CanarySpec, MetricSpec


def _threshold(metric: MetricSpec) -> ThresholdMetric | None:
    """Every metric is a Flagger check unless it is *only* compared (a comparison and no thresholdRange).

    The builtin ``request-success-rate`` (percent) and ``request-duration`` (p99, ms) are threshold metrics like any
    other; a metric without bounds still reports NO_DATA when its query returns nothing, as in Flagger.
    """
    has_bounds = metric.threshold_min is not None or metric.threshold_max is not None
    if metric.comparison is not None and not has_bounds:
        return None
    return ThresholdMetric(metric.name, metric.threshold_min, metric.threshold_max)


def _compared(metric: MetricSpec) -> ComparedMetric | None:
    if metric.comparison is None:
        return None
    comparison = metric.comparison
    return ComparedMetric(
        name=metric.name,
        method=CompareMethod(comparison.method),
        direction=Direction(comparison.direction),
        max_relative_increase=comparison.max_relative_increase,
        max_relative_decrease=comparison.max_relative_decrease,
        min_points=comparison.min_points,
    )


def policy_from_spec(spec: CanarySpec) -> JudgePolicy:
    """Build the judge's policy; without ``analysis.comparison`` only thresholds and compared metrics apply."""
    analysis = spec.analysis
    thresholds = tuple(item for item in (_threshold(metric) for metric in analysis.metrics) if item is not None)
    compared = tuple(item for item in (_compared(metric) for metric in analysis.metrics) if item is not None)
    comparison = analysis.comparison
    if comparison is None:
        return JudgePolicy(thresholds=thresholds, compared=compared)
    error_rate = None
    if comparison.error_rate is not None:
        error_rate = RateComparison(theta0=1.0 + comparison.error_rate.max_relative_increase)
    latency = None
    if comparison.latency is not None:
        latency = RateComparison(
            theta0=1.0 + comparison.latency.max_relative_increase,
            slow_threshold_ms=comparison.latency.slow_threshold_ms,
        )
    return JudgePolicy(
        alpha=comparison.alpha,
        min_requests=comparison.min_requests,
        error_rate=error_rate,
        latency=latency,
        require_evidence=comparison.require_evidence,
        thresholds=thresholds,
        compared=compared,
    )
