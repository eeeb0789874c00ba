"""The judge's fast paths decide exactly as the full computation does.

``coalmine simulate`` relies on two shortcuts: ``ratio_look`` (update, log E and bounds from one pass over the
grid) and ``judge(..., detail=False)`` (no people-only bounds or ``detectable``). Both must leave every decision,
p-value and stored state bit-for-bit unchanged, whatever the traffic.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.judge import judge
from analysis.policy import JudgePolicy, RateComparison, ThresholdMetric
from analysis.samples import ArmCounts, Look, ThresholdValue
from analysis.sequential import RatioDesign, RatioState, ratio_bounds, ratio_log_e, ratio_look, ratio_update

POLICIES = (
    JudgePolicy(alpha=0.01, min_requests=100, error_rate=RateComparison(1.0)),
    JudgePolicy(
        alpha=0.05,
        min_requests=50,
        error_rate=RateComparison(1.1),
        latency=RateComparison(1.2, 250.0),
        thresholds=(ThresholdMetric("request-success-rate", 99.0),),
    ),
    JudgePolicy(alpha=0.001, min_requests=0, latency=RateComparison(1.5, 500.0), require_evidence=True),
)


def _looks(rng: np.random.Generator, count: int) -> list[Look]:
    """Looks with changing weights and traffic from 0.5 to 1,000 rps; the canary sometimes 3× worse."""
    rps = rng.choice([0.5, 10.0, 1000.0])
    ratio = rng.choice([1.0, 3.0])
    looks = []
    for _ in range(count):
        weight = int(rng.integers(0, 101))
        n_c = int(rng.poisson(rps * 30 * weight / 100))
        n_p = int(rng.poisson(rps * 30 * (100 - weight) / 100))
        canary = ArmCounts(n_c, int(rng.binomial(n_c, 0.005 * ratio)), int(rng.binomial(n_c, 0.02 * ratio)))
        primary = ArmCounts(n_p, int(rng.binomial(n_p, 0.005)), int(rng.binomial(n_p, 0.02)))
        looks.append(Look(0, 30, canary, primary, thresholds={"request-success-rate": ThresholdValue(99.5)}))
    return looks


@pytest.mark.parametrize("seed", range(6))
def test_ratio_look_equals_update_log_e_and_bounds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    design = RatioDesign(theta0=float(rng.choice([1.0, 1.25])))
    state = RatioState()
    for look in _looks(rng, 40):
        counts = (look.canary.requests, look.primary.requests, look.canary.errors, look.primary.errors)
        fused = ratio_look(design, state, *counts, 0.01)
        state = ratio_update(design, state, *counts)
        assert fused.state == state
        assert fused.log_e == ratio_log_e(design, state)
        assert (fused.lower, fused.upper) == ratio_bounds(design, state, 0.01)
        quick = ratio_look(design, state, *counts, 0.01, bounds=False)
        assert quick.state == ratio_update(design, state, *counts) and quick.lower is quick.upper is None


@pytest.mark.parametrize("seed", range(6))
def test_judging_without_detail_decides_identically(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    policy = POLICIES[seed % len(POLICIES)]
    full_state: dict[str, object] | None = None
    quick_state: dict[str, object] | None = None
    for look in _looks(rng, 40):
        full = judge(policy, look, full_state)
        quick = judge(policy, look, quick_state, detail=False)
        assert (quick.outcome, quick.promotable, quick.hold_reason, quick.state) == (
            full.outcome,
            full.promotable,
            full.hold_reason,
            full.state,
        )
        for slow, fast in zip(full.metrics, quick.metrics, strict=True):
            assert (fast.outcome, fast.estimate, fast.p_value, fast.log_e_value, fast.canary_requests) == (
                slow.outcome,
                slow.estimate,
                slow.p_value,
                slow.log_e_value,
                slow.canary_requests,
            )
            if policy.require_evidence:  # the bounds decide promotion then, so they are always there
                assert (fast.lower, fast.upper) == (slow.lower, slow.upper)
            elif fast.kind in ("errorRate", "latency"):
                assert fast.lower is fast.upper is None
        if full.outcome == "rejected":
            assert quick.reason == full.reason
        assert quick.detectable == ""
        full_state, quick_state = dict(full.state), dict(quick.state)
