"""``coalmine plan``: what a Canary's (or a BlueGreen's) settings can catch at your traffic, before a release tells you.

The numbers come from :mod:`controller.simulation.planning` (the real engine and judge on seeded synthetic traffic);
this module only reads the manifest, checks the flags and prints.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from controller.cli.manifests import load_rollout
from controller.rollout.durations import DurationError, format_duration, parse_duration
from controller.simulation.planning import Detection, Plan, PlanSettings, Rate, Trial, plan, plan_json


def _bad(flag: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=f"'{flag}'")


def _time(value: float | None) -> str:
    return "—" if value is None else format_duration(value)


def _rate(rate: Rate) -> str:
    low, high = rate.interval
    return f"{100 * rate.fraction:.1f} % (95 % interval {100 * low:.1f}–{100 * high:.1f} %)"


def _trial_line(trial: Trial) -> str:
    causes = ", ".join(f"{count} {cause}" for cause, count in trial.by_cause.items())
    return (
        f"    ×{trial.ratio:<5g} rolled back {_rate(trial.rolled_back)}"
        f"{f' [{causes}]' if causes else ''}; median {_time(trial.median_s)}, p90 {_time(trial.p90_s)}"
    )


def _detection(title: str, detection: Detection) -> list[str]:
    if detection.detectable is None:
        tried = detection.trials[-1].ratio if detection.trials else 0
        head = f"{title}: no ratio up to ×{tried:g} is rolled back in 90 % of the runs before promotion"
    else:
        found = detection.trials[-1]
        head = (
            f"{title}: ×{detection.detectable:g} is the smallest rolled back in ≥ 90 % of the runs "
            f"({_rate(found.rolled_back)}), in a median {_time(found.median_s)}, p90 {_time(found.p90_s)}"
        )
    return [head, *(_trial_line(trial) for trial in detection.trials)]


def _text(result: Plan) -> list[str]:
    s, budget = result.settings, result.budget
    lines = [
        f"At {s.rps:g} requests/s, {s.baseline_error_rate:.2%} baseline 5xx, {s.runs} seeded runs per point "
        f"(seed {s.seed}):",
        f"  schedule: about {budget.canary_requests:,.0f} canary requests in {format_duration(budget.seconds)} of "
        f"analysis before promotion (minRequests {result.min_requests if result.min_requests is not None else '—'})"
        + (" plus a manual promotion" if budget.manual else ""),
    ]
    healthy = result.healthy
    causes = ", ".join(f"{count} {cause}" for cause, count in healthy.by_cause.items()) or "none"
    lines.append(
        f"  healthy release: false rollbacks {_rate(healthy.rolled_back)} [{causes}]; "
        f"promoted {result.healthy_promoted} in a median {_time(result.healthy_median_s)}, "
        f"p90 {_time(result.healthy_p90_s)}"
        + (f"; {result.healthy_undecided} undecided" if result.healthy_undecided else "")
    )
    lines.extend("  " + line for line in _detection("error rate (canary/primary 5xx)", result.error_rate))
    if result.latency is not None:
        lines.extend("  " + line for line in _detection("latency (share of slow requests)", result.latency))
    for metric in result.not_simulated:
        lines.append(f"  note: metric {metric!r} uses a MetricTemplate and is not simulated (left out)")
    lines.extend(f"warning: {warning}" for warning in result.warnings)
    return lines


def plan_command(
    file: Annotated[str, typer.Option("-f", "--file", help="Canary or BlueGreen manifest (YAML; '-' for stdin).")],
    rps: Annotated[float, typer.Option(help="Total requests per second at the service.")],
    name: Annotated[str | None, typer.Option("--name", help="Which rollout, if the file holds several.")] = None,
    baseline_error_rate: Annotated[float, typer.Option(help="Primary 5xx probability.")] = 0.005,
    baseline_latency_ms: Annotated[float, typer.Option(help="Primary median latency, ms.")] = 100.0,
    runs: Annotated[int, typer.Option(min=10, help="Seeded rollouts per grid point (more: tighter intervals).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the first run (run i uses seed+i).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-readable plan.")] = False,
    match_fraction: Annotated[
        float, typer.Option(help="A/B: fraction of requests matching analysis.match (routed to the canary).")
    ] = 0.1,
    load_test_rps: Annotated[float, typer.Option(help="Requests per second a load tester sends to the canary.")] = 0.0,
    max_duration: Annotated[
        str, typer.Option(help="Count a run still undecided after this long as not caught.")
    ] = "1h",
) -> None:
    """For this config at this traffic: the smallest error-rate (and latency) regression rolled back in 90 % of
    runs before promotion, the time to decide, and the false-rollback rate of a healthy release — by simulating the
    real engine and judge (see docs/plan.md)."""
    _, _, spec = load_rollout(file, name)
    if not rps > 0:
        raise _bad("--rps", f"must be positive (got {rps:g})")
    if not 0.0 < baseline_error_rate < 1.0:
        raise _bad("--baseline-error-rate", f"must be between 0 and 1, exclusive (got {baseline_error_rate:g})")
    if not baseline_latency_ms > 0:
        raise _bad("--baseline-latency-ms", f"must be positive (got {baseline_latency_ms:g})")
    if not 0.0 <= match_fraction <= 1.0:
        raise _bad("--match-fraction", f"must be a probability between 0 and 1 (got {match_fraction:g})")
    if load_test_rps < 0:
        raise _bad("--load-test-rps", f"must be ≥ 0 (got {load_test_rps:g})")
    try:
        max_duration_s = parse_duration(max_duration)
    except DurationError as error:
        raise _bad("--max-duration", str(error)) from error
    settings = PlanSettings(
        rps=rps,
        baseline_error_rate=baseline_error_rate,
        baseline_latency_ms=baseline_latency_ms,
        runs=runs,
        seed=seed,
        match_fraction=match_fraction,
        load_test_rps=load_test_rps,
        max_duration_s=max_duration_s,
    )
    result = plan(spec, settings)
    if as_json:
        typer.echo(json.dumps(plan_json(result), indent=2, ensure_ascii=False))
        return
    for line in _text(result):
        typer.echo(line)
