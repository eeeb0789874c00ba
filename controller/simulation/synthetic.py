"""The synthetic look source of ``coalmine simulate``: seeded traffic that follows the routes the engine sets.

Each tick's traffic is drawn by :class:`analysis.synthetic.TrafficGenerator` for both arms, split as the router
would split it: by weight; with the A/B match route active, ``match_fraction`` of all requests go to the canary;
with mirroring, the canary also serves copies of ``mirror_weight`` percent of the primary's requests; and an optional
load tester sends ``load_test_rps`` straight to the canary while it is scaled up (blue/green relies on one). A look sums
the slices inside its window exactly as Prometheus' ``increase`` over disjoint windows would, and threshold metrics
are computed from the same counters the way the built-in queries compute them: the canary's success rate over the
metric's ``interval`` and its p99 by ``histogram_quantile`` interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from analysis.samples import ArmCounts, Look, ThresholdValue
from analysis.synthetic import ArmSlice, TrafficGenerator, TrafficModel, histogram_quantile, slow_count
from controller.rollout.bluegreen_spec import BlueGreenSpec
from controller.rollout.judging import policy_from_spec
from controller.rollout.kinds import CANARY, Strategy
from controller.rollout.spec import BUILTIN_METRICS, CanarySpec
from controller.simulation.driver import DriveOptions, Routing, RunResult, drive

SUCCESS_RATE = "request-success-rate"


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


def simulated_bluegreen(spec: BlueGreenSpec) -> tuple[BlueGreenSpec, tuple[str, ...]]:
    """:func:`simulated_spec` for a BlueGreen: the same metrics left out of its analysis."""
    view, dropped = simulated_spec(spec.canary)
    return replace(spec, canary=view), dropped


def arm_shares(routing: Routing, match_fraction: float, load_test_percent: float = 0.0) -> tuple[float, float]:
    """Percent of all requests the (canary, primary) serve under ``routing``; mirrored copies count for both.

    ``load_test_percent``: requests sent straight to the canary's Service (Flagger's load tester) while the canary
    is scaled up, as a percentage of the routed traffic; they bypass the router.
    """
    if routing.match_active:
        matched = 100.0 * match_fraction
        canary, primary = matched, 100.0 - matched
    else:
        canary, primary = float(routing.canary), float(routing.primary)
    if routing.mirror_weight:
        canary += primary * routing.mirror_weight / 100.0
    if routing.canary_up:
        canary += load_test_percent
    return canary, primary


class SyntheticSource:
    """Synthetic traffic for one run (one seed); a :class:`~controller.simulation.driver.LookSource`."""

    def __init__(
        self,
        spec: CanarySpec,
        traffic: TrafficModel,
        seed: int,
        *,
        origin: float,
        match_fraction: float = 0.1,
        load_test_rps: float = 0.0,
    ) -> None:
        policy = policy_from_spec(spec)
        self.slow_ms = policy.latency.slow_threshold_ms if policy.latency else None
        extra = () if self.slow_ms is None else (self.slow_ms,)
        self.generator = TrafficGenerator(traffic, np.random.default_rng(seed), extra_edges_ms=extra)
        self.origin = origin
        self.match_fraction = match_fraction
        self.load_test_percent = 100.0 * load_test_rps / traffic.rps if traffic.rps > 0 else 0.0
        self.thresholds = {m.name: m.interval_s for m in spec.analysis.metrics if m.name in BUILTIN_METRICS}
        self.slices: list[_Slice] = []

    def advance(self, start: float, end: float, routing: Routing) -> None:
        canary_share, primary_share = arm_shares(routing, self.match_fraction, self.load_test_percent)
        begin, finish = start - self.origin, end - self.origin
        canary = self.generator.slice("canary", begin, finish, canary_share)
        primary = self.generator.slice("primary", begin, finish, primary_share)
        self.slices.append(_Slice(start, end, canary, primary))

    def _window(self, start: float, end: float) -> list[_Slice]:
        chosen: list[_Slice] = []
        for piece in reversed(self.slices):
            if piece.end <= start + 1e-9:
                break
            if piece.start >= start - 1e-9 and piece.end <= end + 1e-9:
                chosen.append(piece)
        return chosen

    def _counts(self, pieces: Sequence[_Slice], canary: bool) -> ArmCounts:
        requests = errors = slow = 0
        for piece in pieces:
            counters = piece.canary if canary else piece.primary
            requests += counters.requests
            errors += counters.errors
            if self.slow_ms is not None and counters.requests:
                slow += slow_count(counters, self.generator.edges_ms, self.slow_ms)
        return ArmCounts(requests=requests, errors=errors, slow=slow)

    def _threshold(self, name: str, end: float) -> ThresholdValue:
        pieces = self._window(end - self.thresholds[name], end)
        if name == SUCCESS_RATE:
            counts = self._counts(pieces, canary=True)
            if counts.requests == 0:
                return ThresholdValue()  # 0/0 in Prometheus: NaN, which is no data
            return ThresholdValue(100.0 * (1.0 - counts.errors / counts.requests))
        edges = self.generator.edges_ms
        cumulative = np.zeros(len(edges), dtype=np.int64)
        total = 0
        for piece in pieces:
            if piece.canary.requests:
                total += piece.canary.requests
                cumulative += piece.canary.buckets
        value = histogram_quantile(0.99, edges, cumulative.tolist(), total)
        return ThresholdValue(None if math.isnan(value) else value)

    def look(self, window: tuple[float, float]) -> Look:
        pieces = self._window(*window)
        return Look(
            start=window[0],
            end=window[1],
            canary=self._counts(pieces, canary=True),
            primary=self._counts(pieces, canary=False),
            thresholds={name: self._threshold(name, window[1]) for name in self.thresholds},
        )


def simulate(
    spec: Any,
    traffic: TrafficModel,
    *,
    runs: int = 1,
    seed: int = 0,
    options: DriveOptions | None = None,
    match_fraction: float = 0.1,
    load_test_rps: float = 0.0,
    kind: Strategy[Any] = CANARY,
) -> list[RunResult]:
    """Run ``runs`` independent seeded rollouts (seed, seed+1, …) of ``spec`` (see :func:`simulated_spec`), a
    CanarySpec or, with ``kind=BLUEGREEN``, a BlueGreenSpec (see :func:`simulated_bluegreen`).

    Same seed, same result: each run draws its traffic from its own generator seeded with its seed.
    """
    chosen = options if options is not None else DriveOptions()
    return [
        drive(
            spec,
            SyntheticSource(
                kind.view(spec),
                traffic,
                seed + index,
                origin=chosen.start,
                match_fraction=match_fraction,
                load_test_rps=load_test_rps,
            ),
            chosen,
            seed + index,
            kind,
        )
        for index in range(runs)
    ]
