"""How many canary requests a rollout's schedule gives the judge before it would promote, at a given traffic.

Analytic and fast (no simulation): ``coalmine validate --rps`` warns with it, ``coalmine plan`` prints it beside the
simulated numbers. The schedule is the engine's own (:func:`controller.rollout.spec.canary_steps`): one look per
``interval``, a weight step after each passing look, a timed pause held at the weight before it, promotion after the
last step's look. A/B, mirrored and Flagger blue/green Canaries run ``iterations`` looks on their match, mirror or
load-test traffic; a BlueGreen runs its ``prePromotionAnalysis`` on green's preview traffic. The count assumes every
look passes (a failed threshold check holds a step and so adds requests) and a person who approves at once.

Why it matters: the comparison may neither reject nor promote before ``minRequests`` per arm, so a schedule that
ends short of it waits for the comparison — a look with only the comparison is "no data yet" and holds its step; with
threshold checks too, the promotion is held (``EvidenceHold``) — and until then only the threshold checks can roll
it back. The rollout the user reads in the steps is not the one that runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from controller.rollout.bluegreen_spec import BlueGreenSpec
from controller.rollout.durations import format_duration
from controller.rollout.spec import CanarySpec, Pause, SetWeight, canary_steps


@dataclass(frozen=True)
class Budget:
    """``canary_requests`` expected before promotion is due, after ``seconds`` of analysis; ``last_weight`` is the
    canary's share (percent of all traffic) at the end; ``manual`` when a person must promote (not counted)."""

    canary_requests: float
    seconds: float
    last_weight: float
    looks: int
    manual: bool = False


def canary_budget(spec: CanarySpec, rps: float, *, match_fraction: float = 0.1, load_test_rps: float = 0.0) -> Budget:
    """The :class:`Budget` of a Canary at ``rps`` total requests per second (``load_test_rps`` straight to it)."""
    analysis = spec.analysis
    interval = analysis.interval_s
    load = 100.0 * load_test_rps / rps if rps > 0 else 0.0
    steps = canary_steps(analysis)
    if not steps:  # A/B (match), mirrored or Flagger blue/green: `iterations` looks on a fixed share
        share = 100.0 * match_fraction if analysis.match else 0.0
        share += float(analysis.mirror_weight or 100) if analysis.mirror else 0.0
        share += load
        looks = analysis.iterations or 0
        return Budget(share / 100.0 * rps * interval * looks, interval * looks, share, looks)
    requests = seconds = 0.0
    weight, looks, manual = 0.0, 0, False
    for index, step in enumerate(steps):
        if isinstance(step, SetWeight):
            weight = float(step.weight) + load
            if index + 1 < len(steps) and isinstance(steps[index + 1], Pause):
                continue  # the pause after a weight starts with it
            held = interval
        elif step.duration_s is None:
            manual, held = True, interval
        else:
            held = max(interval, math.ceil(step.duration_s / interval) * interval)
        requests += weight / 100.0 * rps * held
        seconds += held
        looks += round(held / interval)
    return Budget(requests, seconds, weight, looks, manual)


def bluegreen_budget(
    spec: BlueGreenSpec, rps: float, *, match_fraction: float = 0.1, load_test_rps: float = 0.0
) -> Budget:
    """The :class:`Budget` of a BlueGreen's pre-promotion analysis: green's preview traffic for its looks."""
    interval = spec.canary.analysis.interval_s
    share = 100.0 * load_test_rps / rps if rps > 0 else 0.0
    if spec.preview.match:
        share += 100.0 * match_fraction
    if spec.preview.mirror:
        share += float(spec.preview.mirror_weight)
    run = spec.pre_promotion
    if run is None:
        looks = 1
    elif run.iterations is not None:
        looks = run.iterations
    else:
        looks = max(1, math.ceil((run.duration_s or 0.0) / interval))
    return Budget(share / 100.0 * rps * interval * looks, interval * looks, share, looks)


def budget_of(spec: Any, rps: float, *, match_fraction: float = 0.1, load_test_rps: float = 0.0) -> Budget:
    """:func:`bluegreen_budget` or :func:`canary_budget`, by the spec's type."""
    if isinstance(spec, BlueGreenSpec):
        return bluegreen_budget(spec, rps, match_fraction=match_fraction, load_test_rps=load_test_rps)
    return canary_budget(spec, rps, match_fraction=match_fraction, load_test_rps=load_test_rps)


def _smaller_step_weight(view: CanarySpec, rps: float, needed: int, match_fraction: float, load: float) -> str:
    """More, smaller steps up to the same maxWeight: the largest stepWeight whose schedule reaches ``needed``."""
    analysis = view.analysis
    for step in range((analysis.step_weight or 1) - 1, 0, -1):
        longer = replace(view, analysis=replace(analysis, step_weight=step))
        if canary_budget(longer, rps, match_fraction=match_fraction, load_test_rps=load).canary_requests >= needed:
            return f"more steps (stepWeight ≤ {step})"
    return "a higher maxWeight or more steps"


def min_requests_warning(spec: Any, rps: float, *, match_fraction: float = 0.1, load_test_rps: float = 0.0) -> str:
    """Why the comparison cannot reach ``minRequests`` before promotion at ``rps``, with the fixes and their
    numbers; "" when it can (or the spec has no comparison)."""
    view: CanarySpec = spec.canary if isinstance(spec, BlueGreenSpec) else spec
    comparison = view.analysis.comparison
    if comparison is None or (comparison.error_rate is None and comparison.latency is None):
        return ""
    needed = comparison.min_requests
    budget = budget_of(spec, rps, match_fraction=match_fraction, load_test_rps=load_test_rps)
    if budget.canary_requests >= needed:
        return ""
    got = budget.canary_requests
    head = (
        f"at {rps:g} requests/s the canary gets about {got:,.0f} requests in the {format_duration(budget.seconds)} "
        f"before promotion, fewer than minRequests {needed:,}: the comparison cannot reject or promote within "
        "the schedule, so the rollout waits for it (a step is held while the comparison is the only check, the "
        "promotion otherwise) and runs longer than its steps say, with only threshold checks able to roll it back"
    )
    if got <= 0 or budget.last_weight <= 0:
        return head + "; route traffic to the canary during the analysis (weights, mirror, match or a load test)"
    factor = needed / got
    fixes = [f"lower minRequests to {max(1, math.floor(got)):,}"]
    fixes.append(f"a longer interval (≥ {format_duration(math.ceil(view.analysis.interval_s * factor))})")
    per_look = budget.last_weight / 100.0 * rps * view.analysis.interval_s
    extra_looks = math.ceil((needed - got) / per_look) if per_look > 0 else 0
    if view.analysis.step_weight and not view.analysis.steps:
        fixes.append(_smaller_step_weight(view, rps, needed, match_fraction, load_test_rps))
    elif view.analysis.steps and extra_looks:
        hold = format_duration(extra_looks * view.analysis.interval_s)
        fixes.append(f"more time at the last weight (a `pause: {{duration: {hold}}}` at {budget.last_weight:g} %)")
    elif canary_steps(view.analysis) and extra_looks:
        fixes.append(f"more steps ({extra_looks} more look(s) at {budget.last_weight:g} % or above)")
    elif extra_looks:
        field = "prePromotionAnalysis.iterations" if isinstance(spec, BlueGreenSpec) else "iterations"
        fixes.append(f"more looks ({field} ≥ {budget.looks + extra_looks})")
    fixes.append(f"or more traffic (≥ {math.ceil(rps * factor):g} requests/s)")
    return f"{head}; fix: {', '.join(fixes)}"
