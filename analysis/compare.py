"""Canary-vs-primary comparison of custom metrics (one value per arm per look): mSPRT or Mann-Whitney.

Split from ``analysis.judge`` so each module keeps one job: this one turns a compared metric's per-look values and
stored state into evidence. mSPRT is always valid and may decide at any look; Mann-Whitney collects ``min_points``
values per arm and decides exactly once (see ``analysis.classic`` for why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analysis.classic import Direction, mann_whitney_compare
from analysis.policy import ComparedMetric, CompareMethod, JudgePolicy
from analysis.samples import ArmValues
from analysis.sequential import MSPRT_MIN_POINTS, MeanState, always_valid_p, msprt_summary, msprt_update
from analysis.verdict import MetricEvidence, Outcome

# τ, the spread of the mSPRT's mixing distribution, relative to the metric's first value: the size of change the
# test is most sensitive to. At least 10 %, or the tolerance itself when that is larger.
MIN_TAU_RELATIVE = 0.1


@dataclass(frozen=True)
class ComparedResult:
    """A compared metric's evidence for this look, its new JSON state, and why it holds promotion (if it does)."""

    evidence: MetricEvidence
    state: Mapping[str, Any]
    hold: str = ""
    collecting: bool = False  # still below ``min_points`` (or, for Mann-Whitney, its horizon): no decision yet


def judge_compared(
    metric: ComparedMetric, policy: JudgePolicy, values: ArmValues | None, stored: Mapping[str, Any] | None
) -> ComparedResult:
    """Update and evaluate one compared metric; a stored state of another method is discarded (fresh test)."""
    if stored is not None and stored.get("method") != str(metric.method):
        stored = None
    kind = str(metric.method)
    if values is not None and values.error is not None:
        evidence = MetricEvidence(metric.name, Outcome.FAIL, f"{metric.name}: query failed: {values.error}", kind)
        return ComparedResult(evidence, _keep(metric, stored), _pending(metric, stored))
    usable = (
        values is not None
        and values.canary is not None
        and values.primary is not None
        and math.isfinite(values.canary)
        and math.isfinite(values.primary)
    )
    if not usable:
        evidence = MetricEvidence(metric.name, Outcome.NO_DATA, f"{metric.name}: no data for both arms", kind)
        return ComparedResult(evidence, _keep(metric, stored), _pending(metric, stored))
    assert values is not None and values.canary is not None and values.primary is not None
    if metric.method is CompareMethod.MSPRT:
        return _msprt(metric, policy, values.canary, values.primary, stored)
    return _mann_whitney(metric, policy, values.canary, values.primary, stored)


def _keep(metric: ComparedMetric, stored: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if stored is not None:
        return stored
    if metric.method is CompareMethod.MSPRT:
        return {"method": str(metric.method), "test": MeanState().to_json()}
    return {"method": str(metric.method), "canary": [], "primary": [], "decision": None}


def _pending(metric: ComparedMetric, stored: Mapping[str, Any] | None) -> str:
    """The hold reason while the metric has not yet reached its minimum number of points (or its decision)."""
    state = _keep(metric, stored)
    if metric.method is CompareMethod.MSPRT:
        points = int(state["test"]["nCanary"])
    else:
        if state.get("decision") is not None:
            return ""
        points = len(state["canary"])
    if points < metric.min_points:
        return f"{metric.name}: waiting for {metric.min_points} points per arm ({points} so far)"
    return ""


def _msprt(
    metric: ComparedMetric, policy: JudgePolicy, canary: float, primary: float, stored: Mapping[str, Any] | None
) -> ComparedResult:
    alpha = policy.alpha_per_comparison
    previous = MeanState.from_json(_keep(metric, stored)["test"])
    tau_relative = max(MIN_TAU_RELATIVE, metric.max_relative_increase, metric.max_relative_decrease)
    state = msprt_update(
        previous,
        canary,
        primary,
        tau_relative,
        metric.max_relative_increase,
        metric.max_relative_decrease,
        burn_in=max(metric.min_points, MSPRT_MIN_POINTS),
    )
    new_state = {"method": str(metric.method), "test": state.to_json()}
    summary = msprt_summary(state, alpha, metric.max_relative_increase, metric.max_relative_decrease)
    hold = _pending(metric, new_state)
    if summary is None:
        reason = f"{metric.name}: collecting values ({state.n_canary} so far)"
        evidence = MetricEvidence(metric.name, Outcome.PASS, reason, "msprt")
        return ComparedResult(evidence, new_state, hold or f"{metric.name}: collecting values", collecting=True)
    # Which one-sided tests count, and at what level: "either" spends α/2 on each side.
    sides: list[tuple[float, float]] = []
    if metric.direction in (Direction.INCREASE, Direction.EITHER):
        sides.append((state.max_log_lambda_increase, summary.log_lambda_increase))
    if metric.direction in (Direction.DECREASE, Direction.EITHER):
        sides.append((state.max_log_lambda_decrease, summary.log_lambda_decrease))
    level = alpha / len(sides)
    best_max = max(side[0] for side in sides)
    current = max(side[1] for side in sides)
    p_value = min(1.0, always_valid_p(best_max) * len(sides))
    means = f"canary {state.mean_canary:.4g} vs primary {state.mean_primary:.4g}"
    if not hold and best_max >= math.log(1.0 / level):
        outcome = Outcome.REJECTED
        reason = (
            f"{metric.name}: {means} (Δ = {summary.delta:+.4g}), p = {p_value:.2g} < {alpha:.2g}, "
            f"after {state.n_canary} points"
        )
    else:
        outcome = Outcome.PASS
        reason = (
            f"{metric.name}: {means}, Δ in [{summary.lower:.4g}, {summary.upper:.4g}], p = {p_value:.2g}, "
            f"{state.n_canary} points"
        )
        if not hold and policy.require_evidence:
            shown = (metric.direction is Direction.DECREASE or summary.upper <= summary.increase_margin) and (
                metric.direction is Direction.INCREASE or summary.lower >= -summary.decrease_margin
            )
            if not shown:
                hold = f"{metric.name}: no evidence yet that the canary is within tolerance"
    evidence = MetricEvidence(
        metric=metric.name,
        outcome=outcome,
        reason=reason,
        kind="msprt",
        value=state.mean_canary,
        estimate=summary.delta,
        p_value=p_value,
        lower=summary.lower,
        upper=summary.upper,
        log_e_value=current,
    )
    return ComparedResult(evidence, new_state, hold, collecting=bool(_pending(metric, new_state)))


def _mann_whitney(
    metric: ComparedMetric, policy: JudgePolicy, canary: float, primary: float, stored: Mapping[str, Any] | None
) -> ComparedResult:
    state = _keep(metric, stored)
    decision: Mapping[str, Any] | None = state.get("decision")
    canary_values = [float(value) for value in state["canary"]]
    primary_values = [float(value) for value in state["primary"]]
    if decision is None:
        canary_values.append(canary)
        primary_values.append(primary)
        result = mann_whitney_compare(
            canary_values,
            primary_values,
            direction=metric.direction,
            alpha=policy.alpha_per_comparison,
            min_points=metric.min_points,
            max_relative_increase=metric.max_relative_increase,
            max_relative_decrease=metric.max_relative_decrease,
        )
        if result.decided:
            decision = {
                "regressed": result.regressed,
                "pValue": result.p_value,
                "shift": result.shift,
                "shiftLower": result.shift_lower,
                "shiftUpper": result.shift_upper,
                "meanRatio": result.mean_ratio,
                "reason": result.reason,
            }
            # The horizon is reached: the values are no longer needed, only the decision.
            canary_values, primary_values = [], []
        else:
            new_state: dict[str, Any] = {
                "method": str(metric.method),
                "canary": canary_values,
                "primary": primary_values,
                "decision": None,
            }
            reason = f"{metric.name}: {result.reason}"
            evidence = MetricEvidence(metric.name, Outcome.PASS, reason, "mann-whitney")
            return ComparedResult(evidence, new_state, _pending(metric, new_state), collecting=True)
    new_state = {"method": str(metric.method), "canary": [], "primary": [], "decision": dict(decision)}
    outcome = Outcome.REJECTED if decision["regressed"] else Outcome.PASS
    evidence = MetricEvidence(
        metric=metric.name,
        outcome=outcome,
        reason=f"{metric.name}: {decision['reason']}",
        kind="mann-whitney",
        estimate=decision["shift"],
        p_value=decision["pValue"],
        lower=decision["shiftLower"],
        upper=decision["shiftUpper"],
    )
    return ComparedResult(evidence, new_state)
