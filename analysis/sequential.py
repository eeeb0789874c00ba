"""Always-valid sequential tests: the conditional-binomial e-process for a ratio of rates, and mSPRT for means.

Why e-processes: the rollout engine looks at the data every interval and acts on the first alarm. A classic test
repeated at each look rolls back far more healthy releases than its nominal level ("peeking"). An e-process E_t is a
non-negative supermartingale under "no regression", so by Ville's inequality P(∃t: E_t ≥ 1/α) ≤ α however often one
looks. See docs/judge.md for the plain-words version and statistics.md for the derivation and references.

**Ratio of rates.** Per look k, canary and primary serve n_C,k and n_P,k requests with e_C,k and e_P,k events
(5xx, or requests slower than a threshold). Given the look's total events, e_C,k is Binomial with
π_k(θ) = n_C,k·θ / (n_C,k·θ + n_P,k), θ = λ_C/λ_P. Conditioning on the total cancels anything both arms share
(load, incidents, changing weights). The per-look log-likelihood, up to a constant that cancels in every ratio, is
ℓ_k(θ) = e_C,k·log θ − (e_C,k + e_P,k)·log(n_C,k·θ + n_P,k); the log likelihood ratio of θ_a against θ_0 summed over
looks is L(θ_a) − L(θ_0) with L = Σ_k ℓ_k. Keeping L on one log-spaced grid of θ (the state) therefore gives, at once:

- the test of H0: θ ≤ θ0 against a weighted mixture of alternatives θ0·2^(o/8): log E = logsumexp(log w + L(θ0·2^(o/8))
  − L(θ0)), valid for the whole composite null because each factor is a supermartingale for any θ ≤ θ0;
- a confidence sequence, by running the same test (upwards and downwards) at every grid point.

The allocation π_k changes with every look's traffic split, so no closed form exists; a grid of running sums handles it
exactly with a state of a few hundred floats that round-trips through JSON.

**Means (mSPRT, Johari et al.).** For per-interval values of a continuous metric, the mixture SPRT with a N(0, τ²)
mixing distribution over the difference in means gives Λ_t = sqrt(V/(V+τ²))·exp(τ²Δ̂²/(2V(V+τ²))) with
V = s_C²/n_C + s_P²/n_P, and the confidence sequence Δ̂ ± sqrt(V(V+τ²)/τ²·ln((V+τ²)/(V·α²))).

Every formula is written for numpy arrays so the benchmark runs thousands of simulated rollouts through the very same
code the judge uses. The module needs numpy only: the operator imports it, and scipy would cost it ~26 MB of RSS
(``xlogy`` below replaces ``scipy.special.xlogy``, with the same results bit for bit).
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

GRID_STEPS_PER_OCTAVE = 8  # θ grid resolution: 2^(1/8) ≈ 9 % between points
GRID_SPAN = 64  # grid points either side of θ0: θ0/256 … θ0·256

# Alternatives θ0·2^(o/8) and their prior weights. A reference design uses θ0·{1.25, 1.5, 2, 3, 5, 10} with equal
# weights; this finer grid, weighted towards the moderate increases that take longest to detect, detects 2× sooner
# at the same false-rollback rate (measured in bench/judge.py, reported in docs/benchmarks-judge.md).
DEFAULT_OFFSETS: tuple[int, ...] = (3, 5, 6, 8, 10, 13, 19, 27)
DEFAULT_WEIGHTS: tuple[float, ...] = (0.08, 0.14, 0.16, 0.18, 0.14, 0.12, 0.1, 0.08)

# The slow-request (latency) test's alternatives: 1.19×, 1.30×, 1.41×, 1.54×, 1.68×, 2×, 2.38×, 3.08×, 5.19×, 10.4×.
# Why a prior of its own: a latency regression moves the *share* of requests above T = slowThresholdMs by much less
# than it moves latency's tail quantiles. For a lognormal (σ_log 0.6) with T at 2.5× the median, a +10 % shift makes
# the slow share 1.35× (+20 %: 1.8×, +50 %: 3.6×), so the ratios that take long to detect are 1.2–1.7×, where the
# error-rate prior has 0.38 of its weight and this one 0.73. Large ratios (a tail of +500 ms, a +50 % shift) are
# caught within a look or two whatever their weight, so moving weight off them costs little. Measured in
# bench/judge.py: a +10 % shift at 10 rps (T = 250 ms) is caught in a median 5.5 min instead of 6 (mean −14 %), a 2 %
# tail of +500 ms (T = 500 ms) still in 1.5 min. Any fixed weights keep the mixture an e-process: false rollbacks ≤ α.
LATENCY_OFFSETS: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 13, 19, 27)
LATENCY_WEIGHTS: tuple[float, ...] = (0.156, 0.182, 0.156, 0.13, 0.104, 0.091, 0.065, 0.052, 0.039, 0.025)

MSPRT_MIN_POINTS = 5  # points per arm before the mSPRT may reject (its plug-in variance needs them)

FloatArray = NDArray[np.float64]


def _log_positive(values: FloatArray) -> FloatArray:
    """The C library's log of each value, all of which must be > 0 (or +inf, or NaN).

    Why not ``np.log``: on CPUs with AVX-512 numpy's float64 log is its own vectorised routine, one ulp away from the
    C library's log on ~2 % of inputs near 1 (θ grids live there) and a few in 10⁵ elsewhere. scipy's ``xlogy`` calls
    the C library's log, as does ``math.log``; using it keeps every log-likelihood, stored state and benchmark number
    exactly what it was with scipy, on every CPU. It costs ~60 ns a value, so callers log only what they need.
    """
    flat = np.fromiter(map(math.log, values.ravel().tolist()), dtype=np.float64, count=values.size)
    return flat.reshape(values.shape)


def _exact_log(values: FloatArray) -> FloatArray:
    """log of any float64 array as scipy's ``xlogy`` takes it: −inf at ±0, NaN below 0 and at NaN."""
    try:
        return _log_positive(values)
    except ValueError:  # math.log refuses 0 and negatives; checking first would cost every call two array passes
        pass
    positive = values > 0
    result = np.where(values == 0, -np.inf, np.nan)
    result[positive] = _log_positive(values[positive])
    return result


def xlogy(x: ArrayLike, y: ArrayLike) -> FloatArray:
    """x·log(y), and exactly 0 where x == 0 unless y is NaN: ``scipy.special.xlogy`` for real float64, bit for bit.

    Why the guard: an event count of 0 contributes nothing to a log-likelihood, even where the rate it multiplies
    is 0 (0·log 0 would be NaN). Like scipy it warns about nothing (inf·log 1 is NaN and an overflow inf, silently).
    Each log costs ~60 ns (see ``_log_positive``), so it is taken once per element of ``y`` when ``y`` broadcasts
    against a larger ``x``, and only where x ≠ 0 (or y is NaN) when ``y`` has the result's shape, as for the per-look
    counts of a vectorised simulation, where most looks at low traffic have no events.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    shape = np.broadcast_shapes(xs.shape, ys.shape)
    with np.errstate(all="ignore"):
        if ys.shape == shape:
            xb = np.broadcast_to(xs, shape)
            needed = (xb != 0) | np.isnan(ys)
            result = np.zeros(shape)
            result[needed] = xb[needed] * _exact_log(ys[needed])
            return result
        product: FloatArray = xs * _exact_log(ys)
    zero = xs == 0
    if not zero.any():
        return product  # the common case (detectable_ratio): no guard to apply, skip its three array passes
    full: FloatArray = np.where(zero & ~np.isnan(ys), 0.0, product)
    return full


def rate_ratio_loglik(thetas: ArrayLike, n_c: ArrayLike, n_p: ArrayLike, e_c: ArrayLike, e_p: ArrayLike) -> FloatArray:
    """Conditional-binomial log-likelihood ℓ(θ) of one look, up to a constant independent of θ.

    Counts broadcast against ``thetas`` (e.g. counts of shape (runs, 1) with thetas of shape (G,) give (runs, G)).
    An arm without requests carries no information about θ; events reported without requests are ignored.
    """
    theta = np.asarray(thetas, dtype=np.float64)
    nc = np.asarray(n_c, dtype=np.float64)
    np_ = np.asarray(n_p, dtype=np.float64)
    ec = np.where(nc > 0, np.asarray(e_c, dtype=np.float64), 0.0)
    ep = np.where(np_ > 0, np.asarray(e_p, dtype=np.float64), 0.0)
    both = (nc > 0) & (np_ > 0)
    ec = np.where(both, ec, 0.0)
    ep = np.where(both, ep, 0.0)
    result: FloatArray = xlogy(ec, theta) - xlogy(ec + ep, nc * theta + np_)
    return result


def mixture_log_e(loglik_alternatives: ArrayLike, loglik_null: ArrayLike, log_weights: ArrayLike) -> FloatArray:
    """log Σ_j w_j·exp(L(θ_j) − L(θ_null)): the log e-value of a weighted mixture of point alternatives.

    ``loglik_alternatives`` has the alternatives on its last axis; ``loglik_null`` broadcasts against the rest.
    """
    alternatives = np.asarray(loglik_alternatives, dtype=np.float64)
    null = np.asarray(loglik_null, dtype=np.float64)[..., np.newaxis]
    terms = np.asarray(log_weights) + alternatives - null
    # log-sum-exp by hand: scipy's array-API version costs ~0.2 ms a call, too slow for `coalmine simulate`.
    # Array methods rather than np.max/np.sum: the same reductions without the dispatch wrappers (per-look cost).
    top = terms.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    result: FloatArray = np.log(np.exp(terms - top).sum(axis=-1)) + top[..., 0]
    return result


@dataclass(frozen=True)
class RatioDesign:
    """The test of H0: θ ≤ theta0 and the grid of its confidence sequence.

    ``offsets`` place the alternatives at θ0·2^(o/8) (on the grid, so the confidence sequence reuses the same sums);
    ``weights`` are normalised to sum to 1 so the mixture stays an e-process.
    """

    theta0: float = 1.0
    offsets: tuple[int, ...] = DEFAULT_OFFSETS
    weights: tuple[float, ...] = DEFAULT_WEIGHTS
    span: int = GRID_SPAN

    def __post_init__(self) -> None:
        if self.theta0 <= 0:
            raise ValueError(f"theta0 must be positive, got {self.theta0}")
        if len(self.offsets) != len(self.weights) or not self.offsets:
            raise ValueError("offsets and weights must be non-empty and of the same length")
        if min(self.offsets) < 1 or max(self.offsets) >= self.span or min(self.weights) <= 0:
            raise ValueError("offsets must lie in [1, span) and weights must be positive")

    @classmethod
    def for_latency(cls, theta0: float = 1.0) -> RatioDesign:
        """The slow-request test's design: the same grid, a prior weighted towards 1.2–1.7× (see LATENCY_OFFSETS)."""
        return cls(theta0=theta0, offsets=LATENCY_OFFSETS, weights=LATENCY_WEIGHTS)

    @property
    def mixture_json(self) -> dict[str, Any]:
        """The alternatives and weights, as stored next to a test's state (a state under another mixture is not
        continued as if nothing changed: see ``analysis.judge``)."""
        return {"offsets": list(self.offsets), "weights": list(self.weights)}

    @property
    def log_weights(self) -> FloatArray:
        return _design_arrays(self)[0]

    @property
    def factors(self) -> FloatArray:
        """The alternatives as multiples of the null (θ_j / θ0)."""
        return _design_arrays(self)[1]

    @property
    def thetas(self) -> FloatArray:
        """The grid θ0·2^(m/8) for m in [−span, span]; index ``span`` is θ0 itself."""
        return _design_arrays(self)[2]

    @property
    def test_thetas(self) -> FloatArray:
        """Only what the test at θ0 needs, [θ0, θ0·f_1, …]: the benchmark's vectorised state."""
        return _design_arrays(self)[3]

    @property
    def log_thetas(self) -> FloatArray:
        """log of ``thetas`` (the C library's, as ``xlogy`` takes it), so a look logs only its counts."""
        return _design_arrays(self)[4]


@functools.lru_cache(maxsize=128)
def _design_arrays(
    design: RatioDesign,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """The design's arrays, computed once per design (the judge rebuilds equal designs every look); read-only."""
    weights = np.asarray(design.weights, dtype=np.float64)
    log_weights = np.log(weights / weights.sum())
    factors = 2.0 ** (np.asarray(design.offsets, dtype=np.float64) / GRID_STEPS_PER_OCTAVE)
    steps = np.arange(-design.span, design.span + 1, dtype=np.float64)
    thetas = design.theta0 * 2.0 ** (steps / GRID_STEPS_PER_OCTAVE)
    test_thetas = design.theta0 * np.concatenate(([1.0], factors))
    arrays = (log_weights, factors, thetas, test_thetas, _log_positive(thetas))
    for array in arrays:
        array.flags.writeable = False
    return arrays


def grid_log_e(design: RatioDesign, loglik: ArrayLike, upwards: bool = True) -> FloatArray:
    """Log e-values of the test run at every grid point whose alternatives stay on the grid (others: −inf).

    ``upwards`` tests H0: θ ≤ θ_i against θ_i·f_j (rejection puts θ above θ_i); downwards tests H0: θ ≥ θ_i against
    θ_i/f_j (rejection puts θ below θ_i). ``loglik`` has the grid on its last axis.
    """
    values = np.asarray(loglik, dtype=np.float64)
    size = values.shape[-1]
    offsets = np.asarray(design.offsets)
    top = max(design.offsets)
    result = np.full(values.shape, -np.inf)
    if upwards:
        index = np.arange(0, size - top)
        alternatives = values[..., index[:, None] + offsets[None, :]]
    else:
        index = np.arange(top, size)
        alternatives = values[..., index[:, None] - offsets[None, :]]
    result[..., index] = mixture_log_e(alternatives, values[..., index], design.log_weights)
    return result


@functools.lru_cache(maxsize=128)
def _both_ways_index(design: RatioDesign) -> tuple[NDArray[np.intp], NDArray[np.intp], int]:
    """Gather indices for the upward and downward tests of every grid point in one array (see ``_grid_tests``).

    Rows ``[0, rows)`` are the upward tests of grid points 0…rows−1, rows ``[rows, 2·rows)`` the downward tests of
    points top…size−1: the same points and alternatives ``grid_log_e`` uses, stacked so one ``mixture_log_e`` call
    evaluates both directions (the judge's per-look cost is dominated by numpy call overhead, not arithmetic).
    """
    size = 2 * design.span + 1
    offsets = np.asarray(design.offsets, dtype=np.intp)
    top = max(design.offsets)
    rows = size - top
    up = np.arange(0, rows, dtype=np.intp)
    down = np.arange(top, size, dtype=np.intp)
    base = np.concatenate((up, down))
    alternatives = np.concatenate((up[:, None] + offsets[None, :], down[:, None] - offsets[None, :]))
    for array in (base, alternatives):
        array.flags.writeable = False
    return base, alternatives, rows


def _grid_tests(design: RatioDesign, loglik: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Upward log e-values of grid points 0…rows−1 and downward ones of points top…size−1, in one pass.

    Equal to the finite parts of ``grid_log_e(…, upwards=True)`` and ``grid_log_e(…, upwards=False)``.
    """
    base, alternatives, rows = _both_ways_index(design)
    log_e = mixture_log_e(loglik[alternatives], loglik[base], design.log_weights)
    return log_e[:rows], log_e[rows:]


@dataclass(frozen=True)
class RatioState:
    """Sufficient state of one ratio test: cumulative counts, L on the grid, and the running maximum of log E."""

    canary_requests: float = 0.0
    canary_events: float = 0.0
    primary_requests: float = 0.0
    primary_events: float = 0.0
    looks: int = 0
    max_log_e: float = 0.0  # log max_{s≤t} E_s at θ0 (E_0 = 1), for the always-valid p-value
    loglik: tuple[float, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "canaryRequests": self.canary_requests,
            "canaryEvents": self.canary_events,
            "primaryRequests": self.primary_requests,
            "primaryEvents": self.primary_events,
            "looks": self.looks,
            "maxLogE": self.max_log_e,
            # The grid as base64 of little-endian float64: exact, and a third of the JSON of 129 decimal numbers,
            # which every status write, watch event and kopf copy of the Canary would otherwise carry and parse.
            "loglikF64": base64.b64encode(np.asarray(self.loglik, dtype="<f8").tobytes()).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RatioState:
        return cls(
            canary_requests=float(data["canaryRequests"]),
            canary_events=float(data["canaryEvents"]),
            primary_requests=float(data["primaryRequests"]),
            primary_events=float(data["primaryEvents"]),
            looks=int(data["looks"]),
            max_log_e=float(data["maxLogE"]),
            loglik=_loglik_from_json(data),
        )


def _loglik_from_json(data: Mapping[str, Any]) -> tuple[float, ...]:
    """The stored grid: ``loglikF64`` (base64 float64), or ``loglik`` (a list, as states were stored before)."""
    packed = data.get("loglikF64")
    if packed is None:
        return tuple(map(float, data.get("loglik") or ()))
    values: list[float] = np.frombuffer(base64.b64decode(packed, validate=True), dtype="<f8").tolist()
    return tuple(values)


def _grid_loglik(design: RatioDesign, state: RatioState) -> FloatArray:
    if state.loglik:
        return np.asarray(state.loglik, dtype=np.float64)
    return np.zeros(2 * design.span + 1)


def ratio_log_e(design: RatioDesign, state: RatioState) -> float:
    """Current log E_t of H0: θ ≤ θ0."""
    return _log_e_at_null(design, _grid_loglik(design, state))


def _log_e_at_null(design: RatioDesign, loglik: FloatArray) -> float:
    center = design.span
    alternatives = loglik[center + np.asarray(design.offsets)]
    return float(mixture_log_e(alternatives, loglik[center], design.log_weights))


def _clean_counts(n_c: float, n_p: float, e_c: float, e_p: float) -> tuple[float, float, float, float]:
    def clean(value: float) -> float:
        number = float(value)
        return number if math.isfinite(number) and number > 0 else 0.0

    n_c, n_p = clean(n_c), clean(n_p)
    return n_c, n_p, min(clean(e_c), n_c), min(clean(e_p), n_p)


def _added(design: RatioDesign, state: RatioState, counts: tuple[float, float, float, float]) -> FloatArray:
    """L after this look: ``rate_ratio_loglik`` for one look's (clean, scalar) counts, without its array guards."""
    loglik = _grid_loglik(design, state)
    n_c, n_p, e_c, e_p = counts
    if n_c <= 0 or n_p <= 0:
        return loglik.copy()  # an arm without requests carries no information about θ
    # xlogy(e_c, θ) − xlogy(e_c + e_p, n_c·θ + n_p), with the same operations on the same values but θ's logs
    # cached: this runs at every look of every Canary and of ``coalmine simulate``. Both arms have requests, so
    # n_c·θ + n_p > 0; a zero count's term is xlogy's exact 0.
    total = e_c + e_p
    canary: FloatArray | float = e_c * design.log_thetas if e_c != 0 else 0.0
    both: FloatArray | float = total * _log_positive(n_c * design.thetas + n_p) if total != 0 else 0.0
    result: FloatArray = loglik + (canary - both)
    return result


def _next_state(
    state: RatioState, counts: tuple[float, float, float, float], loglik: FloatArray, log_e: float
) -> RatioState:
    n_c, n_p, e_c, e_p = counts
    return RatioState(
        canary_requests=state.canary_requests + n_c,
        canary_events=state.canary_events + e_c,
        primary_requests=state.primary_requests + n_p,
        primary_events=state.primary_events + e_p,
        looks=state.looks + 1,
        max_log_e=max(state.max_log_e, log_e),
        loglik=tuple(loglik.tolist()),
    )


def ratio_update(design: RatioDesign, state: RatioState, n_c: float, n_p: float, e_c: float, e_p: float) -> RatioState:
    """Add one look's counts (its own window, never cumulative) and return the new state.

    Counts are clipped to what makes sense (non-negative, events ≤ requests, NaN as 0) so one odd sample from a
    counter reset cannot poison a state that lives for the whole rollout.
    """
    counts = _clean_counts(n_c, n_p, e_c, e_p)
    loglik = _added(design, state, counts)
    return _next_state(state, counts, loglik, _log_e_at_null(design, loglik))


@dataclass(frozen=True)
class RatioLook:
    """One look's update of a ratio test and what it shows: the new state, log E_t now, and the bounds."""

    state: RatioState
    log_e: float
    lower: float | None
    upper: float | None


def ratio_look(
    design: RatioDesign,
    state: RatioState,
    n_c: float,
    n_p: float,
    e_c: float,
    e_p: float,
    alpha: float,
    *,
    bounds: bool = True,
) -> RatioLook:
    """``ratio_update``, then ``ratio_log_e`` and ``ratio_bounds`` of the new state — from one pass over the grid.

    The judge needs all three every look; computing them together evaluates the mixture once instead of three
    times (log E at θ0 is the grid's upward test at θ0), which is most of the judge's cost in ``coalmine simulate``.
    The results are identical to the three separate calls. ``bounds=False`` skips the grid (bounds None).
    """
    counts = _clean_counts(n_c, n_p, e_c, e_p)
    loglik = _added(design, state, counts)
    if not bounds:
        log_e = _log_e_at_null(design, loglik)
        return RatioLook(_next_state(state, counts, loglik, log_e), log_e, None, None)
    up, down = _grid_tests(design, loglik)
    log_e = float(up[design.span])
    lower, upper = _bounds(design, up, down, alpha)
    return RatioLook(_next_state(state, counts, loglik, log_e), log_e, lower, upper)


def always_valid_p(max_log_e: float) -> float:
    """p_t = min(1, 1/max_{s≤t} E_s): valid at any stopping time, and never increases."""
    return float(min(1.0, math.exp(-max_log_e)))


def ratio_estimate(state: RatioState) -> float | None:
    """θ̂: the canary's event rate over the primary's from cumulative counts (None while undefined)."""
    if state.canary_requests <= 0 or state.primary_requests <= 0 or state.primary_events <= 0:
        return None
    return (state.canary_events / state.canary_requests) / (state.primary_events / state.primary_requests)


def ratio_bounds(design: RatioDesign, state: RatioState, alpha: float) -> tuple[float | None, float | None]:
    """One-sided (1−α) confidence-sequence bounds for θ, each valid at all looks simultaneously.

    upper = the grid point just above the largest θ_i not rejected downwards: if θ ≥ upper, the test of θ ≥ θ_i at
    the grid point θ_i just below the true θ rejected, which happens with probability ≤ α. ``None`` means unbounded
    (no data, or beyond the grid). The lower bound is the mirror image.
    """
    up, down = _grid_tests(design, _grid_loglik(design, state))
    return _bounds(design, up, down, alpha)


def _bounds(design: RatioDesign, up: FloatArray, down: FloatArray, alpha: float) -> tuple[float | None, float | None]:
    """The bounds from ``_grid_tests``' log e-values (see ``ratio_bounds``)."""
    thetas = design.thetas
    top = max(design.offsets)
    threshold = math.log(1.0 / alpha)
    # ``up`` covers grid points 0…size−top−1 and ``down`` points top…size−1 (the points whose alternatives stay on
    # the grid); the points off either range are never tested, so never rejected: they count as kept.
    kept_down = np.flatnonzero(down < threshold)
    kept_up = np.flatnonzero(up < threshold)
    upper: float | None = None
    last_down = int(kept_down[-1]) + top if kept_down.size else top - 1
    if last_down + 1 < thetas.size - top:
        upper = float(thetas[last_down + 1])
    lower: float | None = None
    first_up = int(kept_up[0]) if kept_up.size else thetas.size - top
    if first_up > top:
        lower = float(thetas[first_up - 1])
    return lower, upper


@functools.lru_cache(maxsize=128)
def _candidates(design: RatioDesign) -> FloatArray:
    """The regressions ``detectable_ratio`` tries, θ0·2^(m/8) for m = 1…span (computed once per design)."""
    candidates: FloatArray = design.theta0 * 2.0 ** (np.arange(1, design.span + 1) / GRID_STEPS_PER_OCTAVE)
    candidates.flags.writeable = False
    return candidates


def detectable_ratio(design: RatioDesign, state: RatioState, alpha: float) -> float | None:
    """The smallest θ (on the grid) the test would reject at the counts seen so far, in a typical run.

    Plugs the expected counts under θ into the e-value — canary events θ·p̂·n_C and primary events p̂·n_P, with p̂ the
    pooled event rate — treating the run as one look. Expected counts stand in for the median run, so about half of
    the runs with that regression would have been caught by now. ``None`` when no events were seen, or nothing on
    the grid is detectable yet.
    """
    n_c, n_p = state.canary_requests, state.primary_requests
    events = state.canary_events + state.primary_events
    if n_c <= 0 or n_p <= 0 or events <= 0:
        return None
    rate = events / (n_c + n_p)
    candidates = _candidates(design)
    test = design.test_thetas
    # For each candidate θ, the log-likelihood at the test's thetas of the expected data under θ: what
    # ``rate_ratio_loglik`` computes, written out because both arms are known to have requests here.
    expected_canary = (candidates * rate * n_c)[:, None]
    loglik = xlogy(expected_canary, test) - xlogy(expected_canary + rate * n_p, n_c * test + n_p)
    log_e = mixture_log_e(loglik[:, 1:], loglik[:, 0], design.log_weights)
    hits = np.flatnonzero(log_e >= math.log(1.0 / alpha))
    return float(candidates[hits[0]]) if hits.size else None


# ---------------------------------------------------------------------------------------------------------- mSPRT


def msprt_log_lambda(delta: ArrayLike, variance: ArrayLike, tau2: ArrayLike) -> FloatArray:
    """log Λ of the mixture SPRT: ½·log(V/(V+τ²)) + τ²Δ̂²/(2V(V+τ²))."""
    d = np.asarray(delta, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    result: FloatArray = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2.0 * v * (v + t2))
    return result


def msprt_halfwidth(variance: ArrayLike, tau2: ArrayLike, alpha: float) -> FloatArray:
    """Half-width of the always-valid confidence sequence for the difference in means."""
    v = np.asarray(variance, dtype=np.float64)
    t2 = np.asarray(tau2, dtype=np.float64)
    result: FloatArray = np.sqrt(v * (v + t2) / t2 * np.log((v + t2) / (v * alpha * alpha)))
    return result


@dataclass(frozen=True)
class MeanState:
    """Running sums of per-look values for both arms, the mixing variance τ², and the running maxima of log Λ.

    Both one-sided maxima are kept (canary higher, canary lower), so one state serves every ``direction``.
    """

    n_canary: int = 0
    sum_canary: float = 0.0
    sumsq_canary: float = 0.0
    n_primary: int = 0
    sum_primary: float = 0.0
    sumsq_primary: float = 0.0
    tau2: float | None = None
    max_log_lambda_increase: float = 0.0
    max_log_lambda_decrease: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "nCanary": self.n_canary,
            "sumCanary": self.sum_canary,
            "sumsqCanary": self.sumsq_canary,
            "nPrimary": self.n_primary,
            "sumPrimary": self.sum_primary,
            "sumsqPrimary": self.sumsq_primary,
            "tau2": self.tau2,
            "maxLogLambdaIncrease": self.max_log_lambda_increase,
            "maxLogLambdaDecrease": self.max_log_lambda_decrease,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeanState:
        tau2 = data.get("tau2")
        return cls(
            n_canary=int(data["nCanary"]),
            sum_canary=float(data["sumCanary"]),
            sumsq_canary=float(data["sumsqCanary"]),
            n_primary=int(data["nPrimary"]),
            sum_primary=float(data["sumPrimary"]),
            sumsq_primary=float(data["sumsqPrimary"]),
            tau2=None if tau2 is None else float(tau2),
            max_log_lambda_increase=float(data["maxLogLambdaIncrease"]),
            max_log_lambda_decrease=float(data["maxLogLambdaDecrease"]),
        )

    @property
    def mean_canary(self) -> float:
        return self.sum_canary / self.n_canary if self.n_canary else math.nan

    @property
    def mean_primary(self) -> float:
        return self.sum_primary / self.n_primary if self.n_primary else math.nan


def _sample_variance(n: int, total: float, sumsq: float) -> float:
    return max((sumsq - total * total / n) / (n - 1), 0.0) if n > 1 else math.nan


@dataclass(frozen=True)
class MeanSummary:
    """What the mSPRT says now about Δ = μ_C − μ_P: estimate, confidence sequence, and one-sided log Λ per side.

    The margins are relative to the primary's mean (plug-in): an increase is a regression only beyond
    ``max_relative_increase``·|x̄_P|, a decrease only beyond ``max_relative_decrease``·|x̄_P|. Each signed log Λ is
    negative or zero while Δ̂ sits on the harmless side of its margin.
    """

    delta: float
    lower: float
    upper: float
    log_lambda_increase: float
    log_lambda_decrease: float
    increase_margin: float
    decrease_margin: float


def msprt_summary(
    state: MeanState, alpha: float, max_relative_increase: float = 0.0, max_relative_decrease: float = 0.0
) -> MeanSummary | None:
    """Evaluate the mSPRT now; None before two points per arm (no variance yet) or before τ is set.

    A zero variance (constant values) is floored at a millionth of τ² so identical series do not divide by zero.
    """
    if state.n_canary < 2 or state.n_primary < 2 or state.tau2 is None:
        return None
    variance = (
        _sample_variance(state.n_canary, state.sum_canary, state.sumsq_canary) / state.n_canary
        + _sample_variance(state.n_primary, state.sum_primary, state.sumsq_primary) / state.n_primary
    )
    tau2 = state.tau2
    variance = max(variance, tau2 * 1e-6)
    delta = state.mean_canary - state.mean_primary
    halfwidth = float(msprt_halfwidth(variance, tau2, alpha))
    up_margin = max_relative_increase * abs(state.mean_primary)
    down_margin = max_relative_decrease * abs(state.mean_primary)

    def signed(excess: float) -> float:
        value = float(msprt_log_lambda(excess, variance, tau2))
        return value if excess > 0 else min(value, 0.0)

    return MeanSummary(
        delta=delta,
        lower=delta - halfwidth,
        upper=delta + halfwidth,
        log_lambda_increase=signed(delta - up_margin),
        log_lambda_decrease=signed(-down_margin - delta),
        increase_margin=up_margin,
        decrease_margin=down_margin,
    )


def msprt_update(
    state: MeanState,
    canary: float,
    primary: float,
    tau_relative: float,
    max_relative_increase: float = 0.0,
    max_relative_decrease: float = 0.0,
    burn_in: int = MSPRT_MIN_POINTS,
) -> MeanState:
    """Add one look's values. τ is fixed at the first non-zero look as ``tau_relative`` × the larger |value|.

    Fixing τ early (and storing it) keeps the mixture the same for the whole run, which the validity proof needs.
    The running maxima start only after ``burn_in`` points per arm: Λ uses the sample variance in place of the true
    one, and with 2–3 points that estimate is so noisy that false rejections exceed α (measured: 7 % at α = 5 %
    from the second point; ≤ α from the fifth).
    """
    tau2 = state.tau2
    if tau2 is None:
        scale = max(abs(canary), abs(primary))
        tau2 = (tau_relative * scale) ** 2 if scale > 0 else None
    updated = replace(
        state,
        n_canary=state.n_canary + 1,
        sum_canary=state.sum_canary + canary,
        sumsq_canary=state.sumsq_canary + canary * canary,
        n_primary=state.n_primary + 1,
        sum_primary=state.sum_primary + primary,
        sumsq_primary=state.sumsq_primary + primary * primary,
        tau2=tau2,
    )
    summary = msprt_summary(updated, 0.05, max_relative_increase, max_relative_decrease)
    if summary is None or min(updated.n_canary, updated.n_primary) < max(burn_in, 2):
        return updated
    return replace(
        updated,
        max_log_lambda_increase=max(state.max_log_lambda_increase, summary.log_lambda_increase),
        max_log_lambda_decrease=max(state.max_log_lambda_decrease, summary.log_lambda_decrease),
    )
