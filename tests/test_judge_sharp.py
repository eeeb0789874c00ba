"""Issue 20, a sharper judge: the slow-request test's own prior, and how close the error-rate test is to the bound.

Seeded, vectorised simulations through the judge's own functions (``rate_ratio_loglik``, ``mixture_log_e``), each a
few seconds: if the latency prior were lost (back to the error-rate one) or moved where it stops being valid or fast,
these fail. The judge tests check that ``analysis.judge`` really uses that prior, and that a state stored under
another mixture is continued validly (its data kept, its running maximum not).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.judge import judge
from analysis.policy import JudgePolicy, RateComparison
from analysis.samples import ArmCounts, Look
from analysis.sequential import RatioDesign, RatioState, mixture_log_e, rate_ratio_loglik, ratio_log_e

ALPHA = 0.01
LOOKS = 60  # 30 minutes of 30-second looks
MEDIAN_MS, SIGMA = 100.0, 0.6


def slow_share(threshold_ms: float, shift: float = 1.0, tail: float = 0.0, tail_ms: float = 500.0) -> float:
    """P(latency > T) for a lognormal (median 100 ms × shift, σ_log 0.6), a ``tail`` fraction delayed by tail_ms."""

    def above(t: float) -> float:
        return 1.0 if t <= 0 else 0.5 * math.erfc(math.log(t / (MEDIAN_MS * shift)) / (SIGMA * math.sqrt(2)))

    return (1 - tail) * above(threshold_ms) + tail * above(threshold_ms - tail_ms)


def first_rejection(
    design: RatioDesign, p_canary: float, p_primary: float, rps: tuple[float, float], runs: int, seed: int
) -> np.ndarray:
    """Index of the first look at which the e-process rejects, per run (LOOKS when it never does)."""
    rng = np.random.default_rng(seed)
    n_c = rng.poisson(rps[0] * 30, (LOOKS, runs)).astype(float)
    n_p = rng.poisson(rps[1] * 30, (LOOKS, runs)).astype(float)
    e_c = rng.binomial(n_c.astype(np.int64), p_canary).astype(float)
    e_p = rng.binomial(n_p.astype(np.int64), p_primary).astype(float)
    thetas = design.test_thetas
    per_look = rate_ratio_loglik(thetas, n_c[..., None], n_p[..., None], e_c[..., None], e_p[..., None])
    loglik = np.cumsum(per_look, axis=0)
    rejected = mixture_log_e(loglik[..., 1:], loglik[..., 0], design.log_weights) >= math.log(1 / ALPHA)
    return np.where(rejected.any(axis=0), rejected.argmax(axis=0), LOOKS)


def minutes(first: np.ndarray) -> np.ndarray:
    result: np.ndarray = (np.minimum(first, LOOKS) + 1) * 0.5
    return result


LATENCY = RatioDesign.for_latency()
ERRORS = RatioDesign()


def test_a_ten_percent_latency_shift_is_caught_sooner_with_the_latency_prior() -> None:
    """+10 % at 10 rps, T = 250 ms (slow share 6.3 % → 8.6 %, a 1.35× ratio): the issue's ≤ 6 min, with room."""
    shifted, base = slow_share(250, shift=1.1), slow_share(250)
    ours = minutes(first_rejection(LATENCY, shifted, base, (10, 10), runs=3000, seed=201))
    before = minutes(first_rejection(ERRORS, shifted, base, (10, 10), runs=3000, seed=201))
    assert np.median(ours) <= 5.5 < np.median(before) + 0.5
    assert ours.mean() <= 0.9 * before.mean()  # measured −14 %; the error-rate prior's weights would fail this


@pytest.mark.parametrize(("canary_rps", "primary_rps"), [(1, 1), (10, 10), (10, 90), (100, 100)])
def test_the_latency_prior_keeps_false_rollbacks_under_alpha(canary_rps: float, primary_rps: float) -> None:
    base = slow_share(250)  # 6.3 % of requests are "slow": many events a look, the hardest case for the overshoot
    first = first_rejection(LATENCY, base, base, (canary_rps, primary_rps), runs=4000, seed=202)
    assert np.mean(first < LOOKS) <= ALPHA


def test_large_latency_regressions_are_still_caught_in_a_look_or_two() -> None:
    """Weight moved off the large ratios must not cost them: a 2 % tail of +500 ms at T = 500 ms (a 6.4× ratio)
    within the issue-3 target of 2 min, a +50 % shift at T = 250 ms (3.6×) at the first look or two."""
    tail = minutes(first_rejection(LATENCY, slow_share(500, tail=0.02), slow_share(500), (10, 10), 2000, 203))
    assert np.median(tail) <= 1.5 and np.percentile(tail, 90) <= 3.0
    big = minutes(first_rejection(LATENCY, slow_share(250, shift=1.5), slow_share(250), (10, 10), 2000, 204))
    assert np.mean(big <= 1.0) >= 0.95


def test_the_error_rate_test_is_within_a_look_of_the_bound_at_10_v_90() -> None:
    """2× at 10 v 90 rps: no test of these counts at α can beat an SPRT told θ = 2 (Wald–Wolfowitz); ours must stay
    within one 30-s look of it in the median, and within 10 % in the mean (measured: 4.5 vs 5 min)."""
    bound = minutes(first_rejection(RatioDesign(offsets=(8,), weights=(1.0,)), 0.01, 0.005, (10, 90), 3000, 205))
    ours = minutes(first_rejection(ERRORS, 0.01, 0.005, (10, 90), 3000, 205))
    assert np.median(ours) <= np.median(bound) + 0.5
    assert ours.mean() <= 1.1 * bound.mean()


def _look(canary: tuple[float, float], primary: tuple[float, float]) -> Look:
    return Look(0.0, 30.0, ArmCounts(canary[0], 0.0, canary[1]), ArmCounts(primary[0], 0.0, primary[1]))


POLICY = JudgePolicy(error_rate=RateComparison(), latency=RateComparison(slow_threshold_ms=250.0))
LOOKS_DATA = [_look((300, 30 + k % 3), (300, 19)) for k in range(8)]


def test_the_judge_runs_the_latency_comparison_with_its_own_prior() -> None:
    state = None
    for look in LOOKS_DATA:
        verdict = judge(POLICY, look, state)
        state = verdict.state
    assert state is not None
    assert state["latency"]["mixture"] == LATENCY.mixture_json
    assert state["error-rate"]["mixture"] == ERRORS.mixture_json
    latency = next(item for item in verdict.metrics if item.metric == "latency")
    stored = RatioState.from_json(state["latency"]["test"])
    assert latency.log_e_value == pytest.approx(ratio_log_e(LATENCY, stored))
    assert latency.log_e_value != pytest.approx(ratio_log_e(ERRORS, stored))


def test_a_state_stored_under_another_mixture_keeps_its_data_but_not_its_maximum() -> None:
    """A Canary mid-rollout when the operator is upgraded: its latency state has no mixture recorded (the error-rate
    one was used). The requests seen still count; the old running maximum of log E does not carry over."""
    state = None
    healthy = [_look((300, 19 + k % 3), (300, 20)) for k in range(8)]  # log E stays far below the stored 4.0
    for look in healthy:
        state = judge(POLICY, look, state).state
    assert state is not None
    older = {**state, "latency": {k: v for k, v in state["latency"].items() if k != "mixture"}}
    older["latency"]["test"] = {**older["latency"]["test"], "maxLogE": 4.0}
    older["error-rate"] = {k: v for k, v in state["error-rate"].items() if k != "mixture"}
    older["error-rate"]["test"] = {**older["error-rate"]["test"], "maxLogE": 3.0}
    after = judge(POLICY, healthy[0], older).state
    latency, errors = after["latency"]["test"], after["error-rate"]["test"]
    assert latency["canaryRequests"] == state["latency"]["test"]["canaryRequests"] + 300  # data kept
    assert latency["maxLogE"] < 4.0  # the other mixture's maximum is dropped
    assert errors["maxLogE"] == 3.0  # an error-rate state without a mixture ran under this one: continued as is
