"""Benchmark: Coalmine's judge against Flagger-, Argo- and Kayenta-style rules and a naive repeated z-test.

Simulates per-look Prometheus-style counters (not individual requests), vectorised over thousands of rollouts, and runs
every rule on the same simulated data. Our rules call ``analysis.sequential`` and ``analysis.classic`` — the very
formulas the judge uses — on numpy arrays. Prints Markdown tables and writes them to docs/benchmarks-judge.md.

    .venv/bin/python bench/judge.py            # full run (a few minutes on one core)
    .venv/bin/python bench/judge.py --quick    # smaller run, for a quick look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from analysis.classic import Direction, effect_is_bad, mann_whitney_p
from analysis.sequential import RatioDesign, mixture_log_e, rate_ratio_loglik

LOOK_S = 30.0
LOOKS = 60  # 30 minutes
ALPHA = 0.01
MIN_REQUESTS = 100
P0 = 0.005
MEDIAN_MS, SIGMA = 100.0, 0.6
BUCKETS_MS = np.array([5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000], dtype=float)
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-judge.md"

Array = NDArray[np.float64]
Fired = NDArray[np.bool_]


@dataclass(frozen=True)
class Traffic:
    """A traffic regime: rates per arm, or a progressive canary weight; optional nuisances."""

    name: str
    canary_rps: float = 10.0
    primary_rps: float = 10.0
    progressive: bool = False  # 20 rps total, canary weight 10 → 50 % in steps of 10 every 2 min
    diurnal: bool = False  # load swings ±80 % over the run, random phase
    incident: bool = False  # a shared 2-minute incident adds 5 % errors to both arms
    pod_sigma: float = 0.0  # persistent per-pod difference: the canary pod's rate × lognormal(0, σ) per run


REGIMES = (
    Traffic("1v1", 1, 1),
    Traffic("1v9", 1, 9),
    Traffic("10v10", 10, 10),
    Traffic("10v90", 10, 90),
    Traffic("100v100", 100, 100),
    Traffic("progressive", progressive=True),
    Traffic("incident", incident=True),
    Traffic("diurnal", diurnal=True),
    Traffic("per-pod σ0.2", pod_sigma=0.2),
)


@dataclass(frozen=True)
class Counts:
    """Per-look counters, shape (looks, runs): requests and events per arm."""

    n_c: Array
    n_p: Array
    e_c: Array
    e_p: Array


def request_counts(traffic: Traffic, runs: int, rng: np.random.Generator) -> tuple[Array, Array]:
    t = (np.arange(LOOKS) + 0.5)[:, None] * LOOK_S
    if traffic.progressive:
        weight = np.minimum(0.1 * (1 + t // 120.0), 0.5)
        rate_c, rate_p = 20.0 * weight, 20.0 * (1 - weight)
    else:
        rate_c, rate_p = np.full_like(t, traffic.canary_rps), np.full_like(t, traffic.primary_rps)
    load = np.ones((LOOKS, runs))
    if traffic.diurnal:
        phase = rng.uniform(0, 2 * math.pi, runs)
        load = 1.0 + 0.8 * np.sin(2 * math.pi * t / (LOOKS * LOOK_S) + phase)
    n_c = rng.poisson(rate_c * load * LOOK_S).astype(float)
    n_p = rng.poisson(rate_p * load * LOOK_S).astype(float)
    return n_c, n_p


def error_counts(traffic: Traffic, theta: float, runs: int, rng: np.random.Generator) -> Counts:
    n_c, n_p = request_counts(traffic, runs, rng)
    p_c = np.full((LOOKS, runs), P0 * theta)
    p_p = np.full((LOOKS, runs), P0)
    if traffic.pod_sigma:
        p_c = p_c * np.exp(rng.normal(0, traffic.pod_sigma, runs))
    if traffic.incident:
        start = rng.integers(0, LOOKS - 4, runs)
        look = np.arange(LOOKS)[:, None]
        during = (look >= start) & (look < start + 4)
        p_c, p_p = p_c + 0.05 * during, p_p + 0.05 * during
    e_c = rng.binomial(n_c.astype(np.int64), np.minimum(p_c, 1.0)).astype(float)
    e_p = rng.binomial(n_p.astype(np.int64), np.minimum(p_p, 1.0)).astype(float)
    return Counts(n_c, n_p, e_c, e_p)


# ------------------------------------------------------------------------------------------------------ the rules


def enough(c: Counts, min_requests: float) -> Fired:
    """The judge's minRequests gate: both arms have seen that many requests."""
    seen: Fired = (np.cumsum(c.n_c, axis=0) >= min_requests) & (np.cumsum(c.n_p, axis=0) >= min_requests)
    return seen


def e_process(design: RatioDesign, min_requests: float = MIN_REQUESTS) -> Callable[[Counts], Fired]:
    """The judge's test, vectorised: cumulative L at θ0 and its alternatives, running max of log E ≥ log(1/α)."""
    thetas = design.test_thetas
    log_weights = design.log_weights

    def rule(c: Counts) -> Fired:
        per_look = rate_ratio_loglik(thetas, c.n_c[..., None], c.n_p[..., None], c.e_c[..., None], c.e_p[..., None])
        loglik = np.cumsum(per_look, axis=0)
        log_e = np.maximum.accumulate(mixture_log_e(loglik[..., 1:], loglik[..., 0], log_weights), axis=0)
        fired: Fired = (log_e >= math.log(1 / ALPHA)) & enough(c, min_requests)
        return fired

    return rule


def reference_grid(theta0: float = 1.0) -> Callable[[Counts], Fired]:
    """statistics.md's design: θ0·{1.25, 1.5, 2, 3, 5, 10}, equal weights (exact factors, off our grid)."""
    thetas = theta0 * np.array([1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0])
    log_weights = np.log(np.full(6, 1 / 6))

    def rule(c: Counts) -> Fired:
        per_look = rate_ratio_loglik(thetas, c.n_c[..., None], c.n_p[..., None], c.e_c[..., None], c.e_p[..., None])
        loglik = np.cumsum(per_look, axis=0)
        log_e = np.maximum.accumulate(mixture_log_e(loglik[..., 1:], loglik[..., 0], log_weights), axis=0)
        fired: Fired = (log_e >= math.log(1 / ALPHA)) & enough(c, MIN_REQUESTS)
        return fired

    return rule


def _rate(events: Array, requests: Array) -> Array:
    return np.divide(events, requests, out=np.zeros_like(events), where=requests > 0)


def flagger(threshold: int, max_rate: float = 0.01) -> Callable[[Counts], Fired]:
    """Canary success rate < 99 % in a look is a failed check; roll back at ``threshold`` failed checks."""

    def rule(c: Counts) -> Fired:
        failed = (c.n_c > 0) & (_rate(c.e_c, c.n_c) > max_rate)
        fired: Fired = np.cumsum(failed, axis=0) >= threshold
        return fired

    return rule


def argo_ratio(c: Counts) -> Fired:
    """Canary error rate > 2× the baseline's in a look, failureLimit 0: the first failure rolls back."""
    fired: Fired = (c.e_c > 0) & (_rate(c.e_c, c.n_c) > 2 * _rate(c.e_p, c.n_p))
    return fired


def naive_z(c: Counts) -> Fired:
    """Two-proportion z-test on cumulative counts at every look, one-sided α = 0.05 (the "peeking" mistake)."""
    n_c, n_p = np.cumsum(c.n_c, axis=0), np.cumsum(c.n_p, axis=0)
    e_c, e_p = np.cumsum(c.e_c, axis=0), np.cumsum(c.e_p, axis=0)
    pooled = _rate(e_c + e_p, n_c + n_p)
    se = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(n_c, 1) + 1 / np.maximum(n_p, 1)))
    z = np.divide(_rate(e_c, n_c) - _rate(e_p, n_p), se, out=np.zeros_like(se), where=se > 0)
    fired: Fired = z >= float(norm.ppf(0.95))
    return fired


def kayenta(canary: Array, primary: Array) -> Fired:
    """Mann-Whitney on the per-look values of both arms, once, at the end (60 points per arm), α = 0.01."""
    fired = np.zeros(canary.shape, dtype=bool)
    p_value = mann_whitney_p(canary.T, primary.T, Direction.INCREASE)
    bad = effect_is_bad(canary.mean(axis=0), primary.mean(axis=0), Direction.INCREASE)
    fired[-1] = (p_value < ALPHA) & bad
    return fired


def kayenta_errors(c: Counts) -> Fired:
    return kayenta(_rate(c.e_c, c.n_c), _rate(c.e_p, c.n_p))


ERROR_RULES: dict[str, Callable[[Counts], Fired]] = {
    "**Coalmine e-process** (θ0 = 1)": e_process(RatioDesign()),
    "Coalmine, maxRelativeIncrease 0.25": e_process(RatioDesign(theta0=1.25)),
    "reference grid e-process (statistics.md)": reference_grid(),
    # Not a design: told the answer. At 2× it is the fastest any test of these counts can be at α (Wald–Wolfowitz),
    # which shows how much room is left; elsewhere it is simply a valid, badly aimed test.
    "bound: SPRT aimed at exactly 2× (knows the answer)": e_process(RatioDesign(offsets=(8,), weights=(1.0,))),
    "Flagger: success rate < 99 %, threshold 1": flagger(1),
    "Flagger: success rate < 99 %, threshold 5": flagger(5),
    "Argo: canary > 2× baseline, failureLimit 0": argo_ratio,
    "Kayenta: Mann-Whitney at 30 min": kayenta_errors,
    "naive repeated z-test, α = 0.05": naive_z,
}


# ------------------------------------------------------------------------------------------------------ latency


def bucket_probabilities(shift: float, tail: float, tail_ms: float = 500.0) -> Array:
    """P(latency in each bucket, +Inf last) for a lognormal × shift with a ``tail`` fraction delayed by tail_ms."""
    log_median = math.log(MEDIAN_MS * shift)

    def cdf(x: Array) -> Array:
        result: Array = norm.cdf((np.log(np.maximum(x, 1e-12)) - log_median) / SIGMA) * (x > 0)
        return result

    cumulative = (1 - tail) * cdf(BUCKETS_MS) + tail * cdf(BUCKETS_MS - tail_ms)
    return np.diff(np.concatenate(([0.0], cumulative, [1.0])))


def mean_and_sd(shift: float, tail: float, tail_ms: float = 500.0) -> tuple[float, float]:
    mean = MEDIAN_MS * shift * math.exp(SIGMA**2 / 2)
    variance = mean**2 * (math.exp(SIGMA**2) - 1)
    total_mean = mean + tail * tail_ms
    total_variance = variance + tail * (1 - tail) * tail_ms**2
    return total_mean, math.sqrt(total_variance)


def histogram_p99(buckets: NDArray[np.int64]) -> Array:
    """Prometheus' histogram_quantile(0.99, …): linear interpolation inside the bucket holding the rank."""
    cumulative = np.cumsum(buckets, axis=-1).astype(float)
    total = cumulative[..., -1]
    rank = 0.99 * total
    index = np.argmax(cumulative >= rank[..., None], axis=-1)
    finite = np.minimum(index, BUCKETS_MS.size - 1)
    upper = BUCKETS_MS[finite]
    lower = np.where(finite > 0, BUCKETS_MS[np.maximum(finite - 1, 0)], 0.0)
    below = np.where(index > 0, np.take_along_axis(cumulative, np.maximum(index - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(buckets, index[..., None], -1)[..., 0].astype(float)
    fraction = np.divide(rank - below, inside, out=np.ones_like(rank), where=inside > 0)
    value = np.where(index >= BUCKETS_MS.size, BUCKETS_MS[-1], lower + (upper - lower) * fraction)
    return np.where(total > 0, value, np.nan)


@dataclass(frozen=True)
class LatencyData:
    n_c: Array
    n_p: Array
    buckets_c: NDArray[np.int64]
    buckets_p: NDArray[np.int64]
    mean_c: Array
    mean_p: Array

    def slow(self, threshold_ms: float) -> Counts:
        first = int(np.searchsorted(BUCKETS_MS, threshold_ms, side="right"))
        slow_c = self.buckets_c[..., first:].sum(axis=-1).astype(float)
        slow_p = self.buckets_p[..., first:].sum(axis=-1).astype(float)
        return Counts(self.n_c, self.n_p, slow_c, slow_p)


def latency_data(shift: float, tail: float, runs: int, rng: np.random.Generator) -> LatencyData:
    n_c, n_p = request_counts(Traffic("10v10"), runs, rng)
    buckets_c = rng.multinomial(n_c.astype(np.int64), bucket_probabilities(shift, tail))
    buckets_p = rng.multinomial(n_p.astype(np.int64), bucket_probabilities(1.0, 0.0))
    (mc, sc), (mp, sp) = mean_and_sd(shift, tail), mean_and_sd(1.0, 0.0)
    mean_c = mc + sc * rng.standard_normal(n_c.shape) / np.sqrt(np.maximum(n_c, 1))
    mean_p = mp + sp * rng.standard_normal(n_p.shape) / np.sqrt(np.maximum(n_p, 1))
    return LatencyData(n_c, n_p, buckets_c, buckets_p, mean_c, mean_p)


LATENCY_RULES: dict[str, Callable[[LatencyData], Fired]] = {
    "**Coalmine slow-request test**, T = 250 ms": lambda d: e_process(RatioDesign.for_latency())(d.slow(250)),
    "**Coalmine slow-request test**, T = 500 ms": lambda d: e_process(RatioDesign.for_latency())(d.slow(500)),
    "slow-request test with the error-rate prior (before issue 20), T = 250 ms": lambda d: e_process(RatioDesign())(
        d.slow(250)
    ),
    "slow-request test with the error-rate prior (before issue 20), T = 500 ms": lambda d: e_process(RatioDesign())(
        d.slow(500)
    ),
    "Flagger: p99 > 500 ms, threshold 1": lambda d: np.nan_to_num(histogram_p99(d.buckets_c)) > 500,
    "Flagger: p99 > 500 ms, threshold 5": lambda d: np.cumsum(np.nan_to_num(histogram_p99(d.buckets_c)) > 500, 0) >= 5,
    "Kayenta: Mann-Whitney on mean latency at 30 min": lambda d: kayenta(d.mean_c, d.mean_p),
    "naive repeated z-test on slow requests (T = 250 ms)": lambda d: naive_z(d.slow(250)),
}


# ------------------------------------------------------------------------------------------------------ reporting


@dataclass(frozen=True)
class Outcome:
    detected: float  # fraction of runs rolled back
    median_min: float
    p90_min: float
    median_requests: float


def summarise(fired: Fired, n_c: Array) -> Outcome:
    hit = fired.any(axis=0)
    first = fired.argmax(axis=0)
    if not hit.any():
        return Outcome(0.0, math.nan, math.nan, math.nan)
    minutes = (first[hit] + 1) * LOOK_S / 60.0
    requests = np.cumsum(n_c, axis=0)[first[hit], np.flatnonzero(hit)]
    return Outcome(float(hit.mean()), *map(float, np.percentile(minutes, [50, 90])), float(np.median(requests)))


def cell(outcome: Outcome, false_alarm: bool) -> str:
    if false_alarm:
        return f"{outcome.detected:.1%}"
    if outcome.detected == 0:
        return "0 %"
    return (
        f"{outcome.detected:.0%} · {outcome.median_min:g} / {outcome.p90_min:g} min · "
        f"{outcome.median_requests:,.0f} req"
    )


def table(title: str, columns: list[str], rows: dict[str, list[str]]) -> str:
    lines = [f"### {title}", "", "| rule | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    return "\n".join(lines) + "\n"


def run(quick: bool, seed: int) -> tuple[str, dict[str, Outcome]]:
    aa_runs, power_runs = (1000, 300) if quick else (20000, 4000)
    rng = np.random.default_rng(seed)
    key: dict[str, Outcome] = {}
    sections = []
    for theta, label in (
        (1.0, "A/A (no regression): false rollbacks"),
        (1.5, "1.5×"),
        (2.0, "2×"),
        (4.0, "4×"),
        (10.0, "10×"),
    ):
        runs = aa_runs if theta == 1.0 else power_runs
        rows: dict[str, list[str]] = {name: [] for name in ERROR_RULES}
        for traffic in REGIMES:
            counts = error_counts(traffic, theta, runs, rng)
            for name, rule in ERROR_RULES.items():
                outcome = summarise(rule(counts), counts.n_c)
                rows[name].append(cell(outcome, theta == 1.0))
                key[f"errors {theta:g} {traffic.name} {name}"] = outcome
        title = label if theta == 1.0 else f"Error rate {label} (p1 = {P0 * theta:.2%} vs p0 = 0.5 %)"
        if theta != 1.0:
            title += ": detected · median / p90 time to detect · median canary requests to detect"
        sections.append(table(title, [traffic.name for traffic in REGIMES], rows))
    scenarios = (("A/A", 1.0, 0.0), ("×1.1", 1.1, 0.0), ("×1.2", 1.2, 0.0), ("×1.5", 1.5, 0.0))
    scenarios += (("2 % +500 ms", 1.0, 0.02), ("5 % +500 ms", 1.0, 0.05))
    rows = {name: [] for name in LATENCY_RULES}
    for name_s, shift, tail in scenarios:
        data = latency_data(shift, tail, aa_runs if name_s == "A/A" else power_runs, rng)
        for name, rule in LATENCY_RULES.items():
            outcome = summarise(rule(data), data.n_c)
            rows[name].append(cell(outcome, name_s == "A/A"))
            key[f"latency {name_s} {name}"] = outcome
    sections.append(
        table(
            "Latency at 10 v 10 rps (lognormal median 100 ms, σ 0.6, Prometheus default buckets): A/A false "
            "rollbacks, then detected · median / p90 time · canary requests",
            [s[0] for s in scenarios],
            rows,
        )
    )
    header = (
        f"Runs: {aa_runs:,} per A/A cell, {power_runs:,} per regression cell; looks every 30 s for 30 min; α = 0.01, "
        f"minRequests = {MIN_REQUESTS}; seed {seed}.\n"
    )
    return header + "\n" + "\n".join(sections), key


def targets(key: dict[str, Outcome]) -> str:
    ours, margin = list(ERROR_RULES)[:2]
    lat250, lat500 = list(LATENCY_RULES)[:2]
    worst_aa = max(key[f"errors 1 {t.name} {ours}"].detected for t in REGIMES if t.pod_sigma == 0)
    pod = key[f"errors 1 per-pod σ0.2 {margin}"].detected
    checks = [
        ("false rollbacks ≤ 1 % in every regime (θ0 = 1)", f"worst {worst_aa:.2%}", worst_aa <= 0.01),
        ("per-pod σ 0.2 with maxRelativeIncrease 0.25 ≤ 1 %", f"{pod:.2%}", pod <= 0.01),
    ]
    bound = next(name for name in ERROR_RULES if name.startswith("bound:"))
    for regime, limit in (("10v10", 10.0), ("10v90", 5.0), ("100v100", 1.5)):
        o = key[f"errors 2 {regime} {ours}"]
        ok = o.detected >= 0.95 and o.median_min <= limit
        best = key[f"errors 2 {regime} {bound}"].median_min
        measured = f"{cell(o, False)} (bound: {best:g} min)"
        checks.append((f"2× at {regime}: ≥ 95 % detected, median ≤ {limit:g} min", measured, ok))
    o = key[f"errors 10 10v10 {ours}"]
    checks.append(("10× at 10v10 at the first look or two (median ≤ 1 min)", cell(o, False), o.median_min <= 1.0))
    o = key[f"latency ×1.1 {lat250}"]
    checks.append(("+10 % latency at 10 rps: median ≤ 6 min (T = 250 ms)", cell(o, False), o.median_min <= 6.0))
    o = key[f"latency 2 % +500 ms {lat500}"]
    checks.append(("2 % tail of +500 ms: median ≤ 2 min (T = 500 ms)", cell(o, False), o.median_min <= 2.0))
    lines = ["### Quality targets (issues 3 and 20)", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'✓' if ok else '✗'} |" for name, value, ok in checks]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a quick look, not for the docs)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {DOC.name}")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    body, key = run(args.quick, args.seed)
    elapsed = time.perf_counter() - started
    report = (
        "# Judge benchmark\n\n"
        "Generated by `bench/judge.py` (do not edit by hand). How to read it and what each rule is: docs/judge.md.\n\n"
        + targets(key)
        + "\n"
        + body
        + f"\n_{'quick' if args.quick else 'full'} run, {elapsed:.0f} s._\n"
    )
    print(report)
    if not args.no_write:
        DOC.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
