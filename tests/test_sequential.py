"""Statistical properties of the always-valid tests, at fixed seeds with enough runs to mean something.

The simulations are vectorised over runs with the same functions the judge uses (``rate_ratio_loglik``,
``mixture_log_e``, ``msprt_log_lambda``), so a change to the maths that breaks type-I control or power fails here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis.classic import Direction, hodges_lehmann, mann_whitney_compare
from analysis.sequential import (
    MSPRT_MIN_POINTS,
    MeanState,
    RatioDesign,
    RatioState,
    always_valid_p,
    detectable_ratio,
    mixture_log_e,
    msprt_halfwidth,
    msprt_log_lambda,
    msprt_summary,
    msprt_update,
    rate_ratio_loglik,
    ratio_bounds,
    ratio_estimate,
    ratio_log_e,
    ratio_update,
)

ALPHA = 0.01
LOOKS = 60  # 30 minutes of 30-second looks
P0 = 0.005


def first_rejection(
    theta: float, canary_rps: float, primary_rps: float, runs: int, seed: int, design: RatioDesign | None = None
) -> np.ndarray:
    """Index of the first look at which the e-process rejects, per run (LOOKS when it never does)."""
    design = design or RatioDesign()
    rng = np.random.default_rng(seed)
    n_c = rng.poisson(canary_rps * 30, (LOOKS, runs)).astype(float)
    n_p = rng.poisson(primary_rps * 30, (LOOKS, runs)).astype(float)
    e_c = rng.binomial(n_c.astype(np.int64), P0 * theta).astype(float)
    e_p = rng.binomial(n_p.astype(np.int64), P0).astype(float)
    thetas = design.test_thetas
    per_look = rate_ratio_loglik(thetas, n_c[..., None], n_p[..., None], e_c[..., None], e_p[..., None])
    loglik = np.cumsum(per_look, axis=0)
    log_e = mixture_log_e(loglik[..., 1:], loglik[..., 0], design.log_weights)
    rejected = log_e >= math.log(1 / ALPHA)
    return np.where(rejected.any(axis=0), rejected.argmax(axis=0), LOOKS)


@pytest.mark.parametrize(("canary_rps", "primary_rps"), [(1, 1), (10, 10), (10, 90), (100, 100)])
def test_no_regression_rolls_back_at_most_alpha_of_runs(canary_rps: float, primary_rps: float) -> None:
    first = first_rejection(1.0, canary_rps, primary_rps, runs=4000, seed=11)
    assert np.mean(first < LOOKS) <= ALPHA


def test_a_tolerated_increase_is_not_a_regression() -> None:
    # θ = 1.2 is inside maxRelativeIncrease 0.25: the composite null θ ≤ 1.25 must hold it to α too.
    first = first_rejection(1.2, 100, 100, runs=2000, seed=12, design=RatioDesign(theta0=1.25))
    assert np.mean(first < LOOKS) <= ALPHA


def test_doubled_error_rate_at_10_rps_is_caught_within_30_minutes() -> None:
    first = first_rejection(2.0, 10, 10, runs=2000, seed=13)
    assert np.mean(first < LOOKS) >= 0.95
    assert np.median((first + 1) * 0.5) <= 10.0  # minutes


def test_doubled_error_rate_with_more_traffic_is_caught_faster() -> None:
    assert np.median((first_rejection(2.0, 10, 90, runs=2000, seed=14) + 1) * 0.5) <= 5.5
    assert np.median((first_rejection(2.0, 100, 100, runs=2000, seed=15) + 1) * 0.5) <= 1.5


def test_tenfold_error_rate_is_caught_at_the_first_look_or_two() -> None:
    first = first_rejection(10.0, 10, 10, runs=2000, seed=16)
    assert np.mean(first <= 1) >= 0.95


def test_design_beats_the_reference_grid_on_doubled_errors() -> None:
    reference = RatioDesign(offsets=(3, 5, 8, 13, 19, 27), weights=(1, 1, 1, 1, 1, 1))  # ≈ {1.25, 1.5, 2, 3, 5, 10}
    ours = first_rejection(2.0, 10, 10, runs=3000, seed=17)
    theirs = first_rejection(2.0, 10, 10, runs=3000, seed=17, design=reference)
    assert np.mean(np.minimum(ours, LOOKS)) < np.mean(np.minimum(theirs, LOOKS))


def feed(design: RatioDesign, looks: list[tuple[float, float, float, float]]) -> RatioState:
    state = RatioState()
    for look in looks:
        state = ratio_update(design, state, *look)
    return state


def test_confidence_sequence_covers_the_true_ratio_at_every_look() -> None:
    rng = np.random.default_rng(21)
    design, alpha, theta, misses = RatioDesign(), 0.1, 2.0, 0
    runs = 150
    for _ in range(runs):
        state, missed = RatioState(), False
        for _ in range(30):
            n_c, n_p = rng.poisson(300), rng.poisson(300)
            state = ratio_update(design, state, n_c, n_p, rng.binomial(n_c, 0.01), rng.binomial(n_p, 0.005))
            lower, upper = ratio_bounds(design, state, alpha)
            missed = missed or (lower is not None and lower > theta) or (upper is not None and upper < theta)
        misses += missed
    assert misses / runs <= 2 * alpha  # each one-sided bound fails with probability ≤ α over the whole run


def test_bounds_tighten_around_the_estimate_and_allow_promotion_with_a_margin() -> None:
    design = RatioDesign(theta0=1.5)
    early = feed(design, [(300, 300, 2, 2)])
    late = feed(design, [(300, 300, 2, 2)] * 200)
    lower_early, upper_early = ratio_bounds(design, early, ALPHA)
    lower_late, upper_late = ratio_bounds(design, late, ALPHA)
    assert ratio_estimate(late) == pytest.approx(1.0)
    assert upper_early is None or upper_early > 1.5  # too little data to show non-inferiority
    assert lower_late is not None and upper_late is not None
    assert lower_late < 1.0 < upper_late <= 1.5  # enough data: the canary is within the 1.5× tolerance
    assert lower_early is None or lower_early <= lower_late


def test_looks_without_traffic_change_nothing() -> None:
    design = RatioDesign()
    state = feed(design, [(300, 300, 6, 1)])
    same = ratio_update(design, state, 0, 300, 0, 3)
    assert ratio_log_e(design, same) == pytest.approx(ratio_log_e(design, state))


def test_state_round_trips_through_json_and_continues_the_same_test() -> None:
    design = RatioDesign()
    looks = [(300.0, 310.0, float(k % 4), 1.0) for k in range(12)]
    straight = feed(design, looks)
    state = RatioState()
    for look in looks:
        state = RatioState.from_json(json.loads(json.dumps(state.to_json())))
        state = ratio_update(design, state, *look)
    assert state == straight
    assert always_valid_p(state.max_log_e) == always_valid_p(straight.max_log_e)


def test_a_state_stored_in_the_older_list_format_continues_exactly() -> None:
    """Statuses written before the grid was stored as base64 (``loglik`` as a list) resume the same test."""
    design = RatioDesign()
    looks = [(300.0, 310.0, float(k % 4), 1.0) for k in range(6)]
    state = feed(design, looks)
    stored = state.to_json()
    assert "loglik" not in stored and len(json.dumps(stored)) < 2000  # compact: 129 grid values as base64
    older = {key: value for key, value in stored.items() if key != "loglikF64"} | {"loglik": list(state.loglik)}
    resumed = RatioState.from_json(json.loads(json.dumps(older)))
    assert resumed == state
    assert ratio_update(design, resumed, 300, 300, 5, 1) == ratio_update(design, state, 300, 300, 5, 1)


def test_p_value_never_increases() -> None:
    design = RatioDesign()
    rng = np.random.default_rng(3)
    state, previous = RatioState(), 1.0
    for _ in range(40):
        state = ratio_update(design, state, 300, 300, rng.binomial(300, 0.008), rng.binomial(300, 0.005))
        p_value = always_valid_p(state.max_log_e)
        assert p_value <= previous
        previous = p_value


def test_detectable_ratio_shrinks_as_requests_accumulate() -> None:
    design = RatioDesign()
    few = detectable_ratio(design, feed(design, [(300, 300, 2, 1)] * 2), ALPHA)
    many = detectable_ratio(design, feed(design, [(300, 300, 2, 1)] * 60), ALPHA)
    assert few is not None and many is not None
    assert many < few
    assert 1.0 < many < 3.0
    assert detectable_ratio(design, feed(design, [(300, 300, 0, 0)]), ALPHA) is None


def msprt_first_rejection(shift: float, runs: int, seed: int, alpha: float) -> np.ndarray:
    """Vectorised mSPRT on per-look normal values (mean 100, sd 10), τ = 10 % of the mean, one-sided."""
    rng = np.random.default_rng(seed)
    canary = rng.normal(100 + shift, 10, (LOOKS, runs))
    primary = rng.normal(100, 10, (LOOKS, runs))
    n = np.arange(1, LOOKS + 1)[:, None]
    c_mean, p_mean = np.cumsum(canary, 0) / n, np.cumsum(primary, 0) / n
    c_var = (np.cumsum(canary**2, 0) - n * c_mean**2) / np.maximum(n - 1, 1)
    p_var = (np.cumsum(primary**2, 0) - n * p_mean**2) / np.maximum(n - 1, 1)
    variance = (c_var + p_var) / n
    delta = c_mean - p_mean
    burn = MSPRT_MIN_POINTS - 1  # as the judge: no rejection before five points per arm
    log_lambda = msprt_log_lambda(delta[burn:], variance[burn:], 100.0)
    rejected = (log_lambda >= math.log(1 / alpha)) & (delta[burn:] > 0)
    return np.where(rejected.any(axis=0), rejected.argmax(axis=0) + burn, LOOKS)


def test_msprt_controls_false_rollbacks_and_detects_a_shift() -> None:
    assert np.mean(msprt_first_rejection(0.0, runs=4000, seed=31, alpha=0.05) < LOOKS) <= 0.05
    assert np.mean(msprt_first_rejection(10.0, runs=1000, seed=32, alpha=0.05) < LOOKS) >= 0.9


def test_msprt_state_matches_the_formula_and_round_trips() -> None:
    rng = np.random.default_rng(33)
    values = rng.normal(50, 5, (20, 2))
    state = MeanState()
    for canary, primary in values:
        state = MeanState.from_json(json.loads(json.dumps(state.to_json())))
        state = msprt_update(state, float(canary), float(primary), tau_relative=0.1)
    summary = msprt_summary(state, 0.05)
    assert summary is not None
    variance = values[:, 0].var(ddof=1) / 20 + values[:, 1].var(ddof=1) / 20
    delta = values[:, 0].mean() - values[:, 1].mean()
    assert summary.delta == pytest.approx(delta)
    halfwidth = float(msprt_halfwidth(variance, state.tau2, 0.05))
    assert summary.upper - summary.delta == pytest.approx(halfwidth)
    assert state.tau2 == pytest.approx((0.1 * max(abs(values[0, 0]), abs(values[0, 1]))) ** 2)


def test_mann_whitney_detects_a_shift_and_respects_the_allowed_increase() -> None:
    rng = np.random.default_rng(41)
    primary = list(rng.lognormal(0, 0.3, 60))
    shifted = list(rng.lognormal(math.log(1.3), 0.3, 60))
    same = list(rng.lognormal(0, 0.3, 60))

    def compare(canary: list[float], allowed: float = 0.0) -> bool:
        return mann_whitney_compare(
            canary,
            primary,
            direction=Direction.INCREASE,
            alpha=0.01,
            min_points=50,
            max_relative_increase=allowed,
        ).regressed

    assert compare(shifted)
    assert not compare(same)
    assert not compare(shifted, allowed=0.5)  # significant but within the allowed increase
    undecided = mann_whitney_compare(shifted[:10], primary, direction=Direction.INCREASE, alpha=0.01, min_points=50)
    assert not undecided.decided and not undecided.regressed


def test_hodges_lehmann_interval_contains_the_true_shift() -> None:
    rng = np.random.default_rng(42)
    hits = 0
    for _ in range(200):
        canary, primary = rng.normal(3.0, 1.0, 50), rng.normal(0.0, 1.0, 50)
        _, lower, upper = hodges_lehmann(list(canary), list(primary), 0.05)
        hits += lower <= 3.0 <= upper
    assert hits / 200 >= 0.9
