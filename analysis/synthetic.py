"""Synthetic traffic for ``coalmine simulate``: what Prometheus would have recorded for a canary and its primary.

Pure and seeded. Requests are Poisson at ``rps`` split by the current weights, 5xx errors are binomial, latencies
are lognormal (median M, σ_log S) with an optional tail of extra latency on a fraction of canary requests, binned in
Prometheus' default histogram buckets; shared incidents raise the error rate of both arms. Threshold metrics are
computed from the same counters the way Prometheus would: success rate over the metric's interval and p99 by
``histogram_quantile`` interpolation. The counters are per time slice, so any window can be summed from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# Prometheus client libraries' default buckets, in milliseconds (+Inf is implicit).
DEFAULT_BUCKETS_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


@dataclass(frozen=True)
class ArmBehaviour:
    """How one version behaves: its 5xx rate and latency distribution."""

    error_rate: float = 0.005
    latency_median_ms: float = 100.0
    latency_sigma: float = 0.6
    tail_fraction: float = 0.0
    tail_ms: float = 0.0


@dataclass(frozen=True)
class Incident:
    """A shared incident: from ``start_s`` for ``duration_s`` both arms fail at ``error_rate``."""

    start_s: float
    duration_s: float
    error_rate: float


@dataclass(frozen=True)
class TrafficModel:
    """The whole synthetic workload: total request rate, both versions, incidents and the histogram buckets."""

    rps: float = 10.0
    primary: ArmBehaviour = field(default_factory=ArmBehaviour)
    canary: ArmBehaviour = field(default_factory=ArmBehaviour)
    incidents: tuple[Incident, ...] = ()
    buckets_ms: tuple[float, ...] = DEFAULT_BUCKETS_MS


@dataclass(frozen=True)
class ArmSlice:
    """Counters of one arm over one time slice: requests, 5xx errors and cumulative ``le`` bucket counts."""

    requests: int
    errors: int
    buckets: tuple[int, ...]  # cumulative counts for each finite bucket boundary


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def latency_cdf(behaviour: ArmBehaviour, at_ms: float) -> float:
    """P(latency ≤ at_ms) for the lognormal body mixed with its shifted tail."""

    def body(x: float) -> float:
        if x <= 0:
            return 0.0
        return _normal_cdf((math.log(x) - math.log(behaviour.latency_median_ms)) / behaviour.latency_sigma)

    tail = behaviour.tail_fraction
    return (1.0 - tail) * body(at_ms) + tail * body(at_ms - behaviour.tail_ms)


def bucket_probabilities(behaviour: ArmBehaviour, edges_ms: Sequence[float]) -> np.ndarray:
    """Probabilities of each histogram cell (≤ e0, (e0, e1], …, > e_last), summing to 1."""
    cdf = np.array([latency_cdf(behaviour, edge) for edge in edges_ms])
    cells = np.diff(np.concatenate(([0.0], cdf, [1.0])))
    cells = np.clip(cells, 0.0, 1.0)
    total = float(cells.sum())
    result: np.ndarray = cells / total
    return result


def _error_rate(base: float, incidents: Sequence[Incident], start: float, end: float) -> float:
    """The mean error probability over [start, end), shared incidents included."""
    length = end - start
    if length <= 0:
        return base
    rate = base
    for incident in incidents:
        overlap = min(end, incident.start_s + incident.duration_s) - max(start, incident.start_s)
        if overlap > 0:
            rate += (overlap / length) * (max(incident.error_rate, base) - base)
    return min(1.0, rate)


class TrafficGenerator:
    """Draws slices of traffic for one simulated run; one instance per run, seeded for reproducibility."""

    def __init__(self, model: TrafficModel, rng: np.random.Generator, extra_edges_ms: Sequence[float] = ()):
        self.model = model
        self.rng = rng
        self.edges_ms: tuple[float, ...] = tuple(sorted(set(model.buckets_ms) | set(extra_edges_ms)))
        self._cells = {
            "primary": bucket_probabilities(model.primary, self.edges_ms),
            "canary": bucket_probabilities(model.canary, self.edges_ms),
        }

    def slice(self, arm: str, start: float, end: float, weight_percent: float) -> ArmSlice:
        """Traffic an arm received over [start, end) while it had ``weight_percent`` of the requests."""
        behaviour = self.model.canary if arm == "canary" else self.model.primary
        mean = self.model.rps * max(0.0, end - start) * weight_percent / 100.0
        requests = int(self.rng.poisson(mean)) if mean > 0 else 0
        if requests == 0:
            return ArmSlice(0, 0, (0,) * len(self.edges_ms))
        error_rate = _error_rate(behaviour.error_rate, self.model.incidents, start, end)
        errors = int(self.rng.binomial(requests, error_rate))
        cells = self.rng.multinomial(requests, self._cells[arm])
        cumulative = np.cumsum(cells[:-1])
        return ArmSlice(requests, errors, tuple(cumulative.tolist()))


def slow_count(arm: ArmSlice, edges_ms: Sequence[float], threshold_ms: float) -> int:
    """Requests slower than ``threshold_ms``: total minus the ``le`` bucket at the threshold (a bucket edge)."""
    index = list(edges_ms).index(threshold_ms)
    return arm.requests - arm.buckets[index]


def histogram_quantile(quantile: float, edges_ms: Sequence[float], cumulative: Sequence[float], total: float) -> float:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding the rank.

    Returns NaN without observations (Prometheus returns no value, which Coalmine treats as no data); a rank in the
    +Inf bucket returns the highest finite boundary, as Prometheus does.
    """
    if total <= 0:
        return math.nan
    rank = quantile * total
    lower_edge, lower_count = 0.0, 0.0
    for edge, count in zip(edges_ms, cumulative, strict=True):
        if count >= rank:
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return float(edges_ms[-1])
