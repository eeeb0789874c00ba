"""``coalmine simulate``: try a Canary's analysis settings on synthetic traffic before a real release does."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from analysis.synthetic import ArmBehaviour, Incident, TrafficModel
from controller.cli.manifests import load_canary
from controller.rollout.durations import DurationError, format_duration, parse_duration
from controller.simulation import RunResult, simulate, simulated_spec, summarize


def _incident(text: str) -> Incident:
    try:
        start, duration, rate = (float(part) for part in text.split(":"))
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} must be START_S:DURATION_S:ERROR_RATE, e.g. 300:120:0.2") from error
    if start < 0 or duration <= 0 or not 0 <= rate <= 1:
        raise typer.BadParameter(f"{text!r}: start ≥ 0, duration > 0 and 0 ≤ error rate ≤ 1")
    return Incident(start, duration, rate)


def _probability(value: float, flag: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise typer.BadParameter(f"{flag} must be a probability between 0 and 1 (got {value})")
    return value


def _print_timeline(result: RunResult) -> None:
    typer.echo(f"{'time':>7}  {'phase':<17}{'weight':>6}  event")
    for entry in result.timeline:
        typer.echo(f"{format_duration(entry.seconds):>7}  {entry.phase:<17}{entry.weight:>5}%  {entry.message}")
    when = "—" if result.decision_seconds is None else format_duration(result.decision_seconds)
    typer.echo(f"\nOutcome: {result.result} after {when} (max canary weight {result.max_canary_weight}%)")
    typer.echo(f"Reason: {result.reason}")


def simulate_command(
    file: Annotated[str, typer.Option("-f", "--file", help="Canary manifest (YAML; '-' for stdin).")],
    name: Annotated[str | None, typer.Option("--name", help="Which Canary, if the file holds several.")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Independent seeded rollouts to run.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the first run (run i uses seed+i).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-readable summary.")] = False,
    rps: Annotated[float, typer.Option(min=0.0, help="Total requests per second, split by the weights.")] = 10.0,
    baseline_error_rate: Annotated[float, typer.Option(help="Primary 5xx probability.")] = 0.005,
    canary_error_rate: Annotated[float | None, typer.Option(help="Canary 5xx probability (default: baseline).")] = None,
    baseline_latency_ms: Annotated[float, typer.Option(min=0.001, help="Primary median latency.")] = 100.0,
    canary_latency_ms: Annotated[float | None, typer.Option(help="Canary median latency (default: baseline).")] = None,
    latency_sigma: Annotated[float, typer.Option(min=0.01, help="σ of log latency (lognormal).")] = 0.6,
    canary_tail_fraction: Annotated[float, typer.Option(help="Fraction of canary requests with extra latency.")] = 0.0,
    canary_tail_ms: Annotated[float, typer.Option(min=0.0, help="Extra latency of that tail, ms.")] = 0.0,
    incident: Annotated[
        list[str] | None, typer.Option(help="Shared incident START_S:DURATION_S:ERROR_RATE (repeatable).")
    ] = None,
    max_duration: Annotated[str, typer.Option(help="Stop an undecided run after this long.")] = "1h",
) -> None:
    """Drive the real rollout engine and judge with a simulated clock and synthetic Poisson traffic.

    One run prints a timeline; --runs N reports how often the settings promote or roll back, and how fast.
    """
    _, spec = load_canary(file, name)
    try:
        max_duration_s = parse_duration(max_duration)
    except DurationError as error:
        raise typer.BadParameter(str(error), param_hint="--max-duration") from error
    baseline = ArmBehaviour(
        error_rate=_probability(baseline_error_rate, "--baseline-error-rate"),
        latency_median_ms=baseline_latency_ms,
        latency_sigma=latency_sigma,
    )
    canary = ArmBehaviour(
        error_rate=_probability(
            baseline_error_rate if canary_error_rate is None else canary_error_rate, "--canary-error-rate"
        ),
        latency_median_ms=baseline_latency_ms if canary_latency_ms is None else canary_latency_ms,
        latency_sigma=latency_sigma,
        tail_fraction=_probability(canary_tail_fraction, "--canary-tail-fraction"),
        tail_ms=canary_tail_ms,
    )
    traffic = TrafficModel(
        rps=rps, primary=baseline, canary=canary, incidents=tuple(_incident(text) for text in incident or ())
    )
    runnable, dropped = simulated_spec(spec)
    results = simulate(
        runnable, traffic, runs=runs, seed=seed, max_duration_s=max_duration_s, record_timeline=runs == 1
    )
    if as_json:
        summary = summarize(results)
        summary["notSimulated"] = list(dropped)
        typer.echo(json.dumps(summary, indent=2))
        return
    for metric in dropped:
        typer.echo(f"note: metric {metric!r} uses a MetricTemplate and is not simulated (left out of the analysis)")
    if runs == 1:
        _print_timeline(results[0])
        return
    summary = summarize(results)
    typer.echo(
        f"{summary['runs']} runs: {summary['promoted']} promoted, {summary['rolledBack']} rolled back "
        f"({100 * float(summary['rollbackFraction']):.1f} %), "  # type: ignore[arg-type]
        f"median decision {_seconds(summary['medianDecisionSeconds'])}, p90 {_seconds(summary['p90DecisionSeconds'])}"
    )


def _seconds(value: object) -> str:
    return "—" if not isinstance(value, float) else format_duration(value)
