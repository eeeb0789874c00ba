"""The judge: one look plus the stored sequential state in, a verdict with its evidence and the new state out.

Pure and deterministic, so the operator, ``coalmine simulate``, ``coalmine judge`` (backtesting) and the benchmark all
decide identically. Semantics (docs/judge.md has the long version):

- threshold metrics behave as in Flagger: a value outside [min, max] fails the check, a provider error fails it with
  the error, no value is NO_DATA (never a pass), a non-finite value (``+Inf``) is bad data and fails it;
- per-arm counts that cannot be real (non-finite, negative, above :data:`MAX_LOOK_COUNT`, more errors than
  requests) are bad data: a failed comparison, the sequential state untouched — never a crash, never evidence;
- the error-rate and latency comparisons are always-valid tests of canary vs primary (``analysis.sequential``); a
  rejection is REJECTED, which rolls back at once; before ``min_requests`` requests per arm they accumulate data but
  give no verdict, and the look is not promotable — a look in which nothing else gave a verdict is NO_DATA;
- compared custom metrics use mSPRT (always valid) or Mann-Whitney (fixed horizon, decided once);
- the overall outcome is the worst metric outcome in the order REJECTED > FAIL > NO_DATA > PASS.

The state is plain JSON (numbers, strings, lists, dicts): stored in the Canary's status, it lets a restarted operator
continue the same test. A test whose settings changed (tolerance, method) restarts from zero rather than mixing two
different tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from analysis.compare import judge_compared
from analysis.policy import JudgePolicy, RateComparison, ThresholdMetric
from analysis.samples import ArmCounts, Look
from analysis.sequential import (
    RatioDesign,
    RatioState,
    always_valid_p,
    detectable_ratio,
    ratio_estimate,
    ratio_look,
)
from analysis.verdict import MetricEvidence, Outcome, Verdict

__all__ = ["ERROR_RATE", "LATENCY", "STATE_VERSION", "judge"]

STATE_VERSION = 1
ERROR_RATE = "error-rate"
LATENCY = "latency"

_NO_VERDICT_YET = "no verdict yet: "
_PRIORITY = (Outcome.REJECTED, Outcome.FAIL, Outcome.NO_DATA, Outcome.PASS)


@dataclass(frozen=True)
class _Result:
    """One comparison's evidence, its new state, and what (if anything) holds promotion or bounds detection."""

    evidence: MetricEvidence
    state: Mapping[str, Any] | None
    hold: str = ""
    detectable: str = ""
    collecting: bool = False  # below its minimum (requests or points): it passes but has no verdict yet


MAX_LOOK_COUNT = 1e15
"""More requests than this in one look (a quadrillion) is not traffic but a broken exporter or query: bad data."""


def bad_counts(look: Look) -> str | None:
    """Why the look's per-arm counts cannot be real (non-finite, negative, absurdly large, more errors than
    requests), or None. Bad data is a failed check — never a crash, never a promotion."""
    for arm, counts in (("canary", look.canary), ("primary", look.primary)):
        for name, value in (("requests", counts.requests), ("errors", counts.errors), ("slow", counts.slow)):
            if name == "requests" and math.isnan(value):
                continue  # no value at all: the look has no data (below), not bad data
            if not math.isfinite(value) or value < 0 or value > MAX_LOOK_COUNT:
                return f"bad data from the metrics provider: {arm} {name} = {value:g}"
        # 5xx are a subset of the same counter's series; slow requests come from another metric (the histogram),
        # scraped apart, so only errors are held to the requests.
        for name, value in (("errors", counts.errors),):
            if value > counts.requests:
                return f"bad data from the metrics provider: {arm} {name} {value:g} > requests {counts.requests:g}"
    return None


def _threshold(metric: ThresholdMetric, look: Look) -> MetricEvidence:
    observed = look.thresholds.get(metric.name)
    if observed is not None and observed.error is not None:
        return MetricEvidence(metric.name, Outcome.FAIL, f"{metric.name}: query failed: {observed.error}")
    if observed is None or observed.value is None or math.isnan(observed.value):
        return MetricEvidence(metric.name, Outcome.NO_DATA, f"{metric.name}: no data")
    if not math.isfinite(observed.value):
        reason = f"{metric.name}: bad data from the metrics provider: {observed.value:g} is not a finite number"
        return MetricEvidence(metric.name, Outcome.FAIL, reason)
    value = observed.value
    if metric.minimum is not None and value < metric.minimum:
        reason = f"{metric.name} {value:.4g} < {metric.minimum:.4g}"
        return MetricEvidence(metric.name, Outcome.FAIL, reason, value=value)
    if metric.maximum is not None and value > metric.maximum:
        reason = f"{metric.name} {value:.4g} > {metric.maximum:.4g}"
        return MetricEvidence(metric.name, Outcome.FAIL, reason, value=value)
    return MetricEvidence(metric.name, Outcome.PASS, f"{metric.name} {value:.4g} within range", value=value)


def _rate_label(comparison: RateComparison) -> str:
    if comparison.slow_threshold_ms is None:
        return "5xx rate"
    return f"rate of requests slower than {comparison.slow_threshold_ms:g} ms"


def _design(comparison: RateComparison) -> RatioDesign:
    """The error-rate test's mixture, or the slow-request test's (weighted towards the ratios latency shifts make)."""
    if comparison.slow_threshold_ms is None:
        return RatioDesign(theta0=comparison.theta0)
    return RatioDesign.for_latency(comparison.theta0)


# States stored before the mixture was recorded were all run under the error-rate mixture.
_UNRECORDED_MIXTURE = RatioDesign().mixture_json


def _restore_ratio(stored: Mapping[str, Any] | None, comparison: RateComparison, design: RatioDesign) -> RatioState:
    """The stored test, unless its settings differ from the policy's (then a fresh test).

    A state run under another mixture (an upgrade changed the prior) keeps its data — the log-likelihood grid does not
    depend on the mixture — but not its running maximum of log E: that maximum belongs to the other mixture, and the
    larger of two e-processes' maxima is not controlled by Ville's inequality. The new mixture evaluated on all the
    data is an e-process from the first look, so its maximum from now on may only be below its supremum: still ≤ α.
    """
    if not stored or stored.get("theta0") != comparison.theta0:
        return RatioState()
    if stored.get("slowThresholdMs") != comparison.slow_threshold_ms:
        return RatioState()
    state = RatioState.from_json(stored["test"])
    if stored.get("mixture", _UNRECORDED_MIXTURE) != design.mixture_json:
        state = replace(state, max_log_e=0.0)
    return state


def _ratio_json(state: RatioState, comparison: RateComparison, design: RatioDesign) -> dict[str, Any]:
    return {
        "theta0": comparison.theta0,
        "slowThresholdMs": comparison.slow_threshold_ms,
        "mixture": design.mixture_json,
        "test": state.to_json(),
    }


def _times(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:.2f}×"


def _judge_rate(
    name: str,
    comparison: RateComparison,
    policy: JudgePolicy,
    look: Look,
    stored: Mapping[str, Any] | None,
    detail: bool,
) -> _Result:
    """Update one ratio test with the look's counts and say what it shows (see ``judge`` for ``detail``)."""
    kind = "errorRate" if comparison.slow_threshold_ms is None else "latency"
    label = _rate_label(comparison)
    alpha = policy.alpha_per_comparison
    design = _design(comparison)
    state = _restore_ratio(stored, comparison, design)

    def events(arm: ArmCounts) -> float:
        return arm.errors if comparison.slow_threshold_ms is None else arm.slow

    if look.counts_error is not None:
        evidence = MetricEvidence(name, Outcome.FAIL, f"{name}: comparison query failed: {look.counts_error}", kind)
        return _Result(evidence, _ratio_json(state, comparison, design), _hold_for(state, policy, name))
    bad = bad_counts(look)
    if bad is not None:  # the sequential state is left untouched: bad data never becomes evidence
        evidence = MetricEvidence(name, Outcome.FAIL, f"{name}: {bad}", kind)
        return _Result(evidence, _ratio_json(state, comparison, design), _hold_for(state, policy, name) or bad)
    if not look.canary.requests > 0:  # also catches NaN
        evidence = MetricEvidence(name, Outcome.NO_DATA, f"{name}: no canary requests in this look", kind)
        return _Result(evidence, _ratio_json(state, comparison, design), _hold_for(state, policy, name))

    bounds = detail or policy.require_evidence  # requireEvidence decides on the upper bound: always computed then
    updated = ratio_look(
        design,
        state,
        look.canary.requests,
        look.primary.requests,
        events(look.canary),
        events(look.primary),
        alpha,
        bounds=bounds,
    )
    state, lower, upper = updated.state, updated.lower, updated.upper
    p_value = always_valid_p(state.max_log_e)
    estimate = ratio_estimate(state)
    canary_rate = state.canary_events / state.canary_requests
    primary_rate = state.primary_events / state.primary_requests if state.primary_requests else 0.0
    requests = f"{state.canary_requests:,.0f} canary requests"
    if estimate is not None:
        effect = f"canary {label} {estimate:.1f}× primary"
    else:
        effect = f"canary {label} {canary_rate:.2%}, none in primary"
    tolerance = "" if comparison.theta0 == 1.0 else f", tolerance {comparison.theta0:.2f}×"

    hold = _hold_for(state, policy, name)
    collecting = bool(hold)
    if not hold and state.max_log_e >= math.log(1.0 / alpha):
        outcome = Outcome.REJECTED
        reason = f"{effect}, p = {p_value:.2g} < {alpha:.2g}, after {requests}{tolerance}"
    else:
        outcome = Outcome.PASS
        bound = f"upper bound {_times(upper)}{tolerance}, " if bounds else ""
        reason = f"{effect} ({canary_rate:.2%} vs {primary_rate:.2%}), p = {p_value:.2g}, {bound}{requests}"
        if hold:
            reason = f"{reason}; {hold}"
        elif policy.require_evidence and (upper is None or upper > comparison.theta0 * (1 + 1e-9)):
            hold = (
                f"{name}: no evidence yet that the canary {label} is within {comparison.theta0:.2f}× primary "
                f"(upper bound {_times(upper)})"
            )
    detectable = detectable_ratio(design, state, alpha) if detail else None
    if detectable is not None:
        detect_text = f"a {detectable:.1f}× increase in the {label}"
    elif detail:
        detect_text = f"no increase in the {label} yet (too few events)"
    else:
        detect_text = ""
    evidence = MetricEvidence(
        metric=name,
        outcome=outcome,
        reason=reason,
        kind=kind,
        estimate=estimate,
        p_value=p_value,
        lower=lower,
        upper=upper,
        log_e_value=updated.log_e,
        canary_requests=round(state.canary_requests),
        primary_requests=round(state.primary_requests),
    )
    return _Result(evidence, _ratio_json(state, comparison, design), hold, detect_text, collecting)


def _hold_for(state: RatioState, policy: JudgePolicy, name: str) -> str:
    """``minRequests`` applies per arm; the canary, with the smaller share of traffic, is nearly always the wait."""
    for arm, seen in (("canary", state.canary_requests), ("primary", state.primary_requests)):
        if seen < policy.min_requests:
            return f"{name}: waiting for {policy.min_requests:,} {arm} requests ({seen:,.0f} so far)"
    return ""


def _worst(outcomes: list[Outcome]) -> Outcome:
    for outcome in _PRIORITY:
        if outcome in outcomes:
            return outcome
    return Outcome.PASS


def _overall(evidence: list[MetricEvidence], results: list[_Result]) -> tuple[Outcome, str]:
    """The look's outcome and one-line reason.

    A ratio comparison below ``minRequests`` passes without a verdict: if nothing else in the look gave one, the
    look is NO_DATA (it must not advance a step on no evidence); if other checks passed, it is a pass whose reason
    says what is still collecting rather than claiming every check passed.
    """
    outcome = _worst([item.outcome for item in evidence])
    if not evidence:
        return outcome, "no checks configured"
    if outcome is not Outcome.PASS:
        return outcome, "; ".join(item.reason for item in evidence if item.outcome is outcome)
    collecting = [result for result in results if result.collecting]
    waiting = "; ".join(result.hold for result in collecting)
    rates_only = [result for result in collecting if result.evidence.kind in ("errorRate", "latency")]
    if rates_only and len(rates_only) == len(evidence):
        return Outcome.NO_DATA, f"{_NO_VERDICT_YET}{waiting}"
    if collecting:
        passed = len(evidence) - len(collecting)
        return outcome, f"{passed} of {len(evidence)} checks passed; still collecting: {waiting}"
    return outcome, f"all {len(evidence)} checks passed"


def judge(policy: JudgePolicy, look: Look, state: Mapping[str, Any] | None, *, detail: bool = True) -> Verdict:
    """Judge one look. ``state`` is the previous verdict's ``state`` (None or {} for a new rollout).

    ``detail=False`` skips what only people read, for callers that judge millions of looks and show few of them
    (``coalmine simulate --runs N``): the ratio tests' confidence bounds (``lower``/``upper`` None and no "upper
    bound" in the reason — unless ``require_evidence``, which decides on them) and ``detectable`` (""). Everything
    the rollout acts on — outcome, promotable, hold reason, p-values, estimates, log E and the state — is identical.
    """
    stored: Mapping[str, Any] = state if state and state.get("version") == STATE_VERSION else {}
    evidence = [_threshold(metric, look) for metric in policy.thresholds]
    results: list[_Result] = []
    new_state: dict[str, Any] = {"version": STATE_VERSION}
    for name, comparison in ((ERROR_RATE, policy.error_rate), (LATENCY, policy.latency)):
        if comparison is None:
            continue
        result = _judge_rate(name, comparison, policy, look, stored.get(name), detail)
        results.append(result)
        new_state[name] = result.state
    compared_state: dict[str, Any] = {}
    stored_compared: Mapping[str, Any] = stored.get("compared") or {}
    for metric in policy.compared:
        compared = judge_compared(metric, policy, look.compared.get(metric.name), stored_compared.get(metric.name))
        results.append(_Result(compared.evidence, compared.state, compared.hold, collecting=compared.collecting))
        compared_state[metric.name] = compared.state
    if compared_state:
        new_state["compared"] = compared_state
    evidence.extend(result.evidence for result in results)

    outcome, reason = _overall(evidence, results)
    # A look whose only verdict-less checks are comparisons still collecting saw requests: not an absence of data.
    collecting = outcome is Outcome.NO_DATA and reason.startswith(_NO_VERDICT_YET)
    holds = [result.hold for result in results if result.hold]
    detectable = [result.detectable for result in results if result.detectable]
    return Verdict(
        outcome=outcome,
        reason=reason,
        metrics=tuple(evidence),
        promotable=not holds,
        hold_reason="; ".join(holds),
        detectable=("could have detected " + " and ".join(detectable)) if detectable else "",
        state=new_state,
        collecting=collecting,
    )
