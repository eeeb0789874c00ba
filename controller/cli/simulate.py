"""``coalmine simulate``: try a Canary's (or a BlueGreen's) analysis settings on synthetic traffic before a real
release does."""

from __future__ import annotations

import json
from collections import Counter
from typing import Annotated, Any

import typer

from analysis.synthetic import ArmBehaviour, Incident, TrafficModel
from controller.cli.manifests import load_rollout
from controller.cli.timeline import print_timeline
from controller.rollout.durations import DurationError, format_duration, parse_duration
from controller.rollout.kinds import BLUEGREEN
from controller.simulation import (
    ROLLED_BACK,
    DriveOptions,
    simulate,
    simulated_bluegreen,
    simulated_spec,
    summarize,
    timeline_json,
)


def _bad(flag: str, message: str) -> typer.BadParameter:
    """A usage error naming the flag: click prints it and exits with status 2."""
    return typer.BadParameter(message, param_hint=f"'{flag}'")


def _incident(text: str) -> Incident:
    try:
        start, duration, rate = (float(part) for part in text.split(":"))
    except ValueError as error:
        raise _bad("--incident", f"{text!r} must be START_S:DURATION_S:ERROR_RATE, e.g. 300:120:0.2") from error
    if start < 0 or duration <= 0 or not 0 <= rate <= 1:
        raise _bad("--incident", f"{text!r}: needs start ≥ 0, duration > 0 and 0 ≤ error rate ≤ 1")
    return Incident(start, duration, rate)


def _probability(value: float, flag: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise _bad(flag, f"must be a probability between 0 and 1 (got {value:g})")
    return value


def _positive(value: float, flag: str) -> float:
    if not value > 0:
        raise _bad(flag, f"must be positive (got {value:g})")
    return value


def _duration(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as error:
        raise _bad(flag, str(error)) from error


def _seconds(value: object) -> str:
    return "—" if not isinstance(value, float) else format_duration(value)


def simulate_command(
    file: Annotated[str, typer.Option("-f", "--file", help="Canary or BlueGreen manifest (YAML; '-' for stdin).")],
    name: Annotated[str | None, typer.Option("--name", help="Which rollout, if the file holds several.")] = None,
    runs: Annotated[int, typer.Option(min=1, help="Independent seeded rollouts to run.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the first run (run i uses seed+i).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine-readable summary.")] = False,
    rps: Annotated[float, typer.Option(help="Total requests per second, split by the weights.")] = 10.0,
    baseline_error_rate: Annotated[float, typer.Option(help="Primary 5xx probability.")] = 0.005,
    canary_error_rate: Annotated[float | None, typer.Option(help="Canary 5xx probability (default: baseline).")] = None,
    baseline_latency_ms: Annotated[float, typer.Option(help="Primary median latency, ms.")] = 100.0,
    canary_latency_ms: Annotated[
        float | None, typer.Option(help="Canary median latency, ms (default: baseline).")
    ] = None,
    latency_sigma: Annotated[float, typer.Option(help="σ of log latency (lognormal).")] = 0.6,
    canary_tail_fraction: Annotated[float, typer.Option(help="Fraction of canary requests with extra latency.")] = 0.0,
    canary_tail_ms: Annotated[float, typer.Option(help="Extra latency of that tail, ms.")] = 0.0,
    incident: Annotated[
        list[str] | None,
        typer.Option(help="Shared incident START_S:DURATION_S:ERROR_RATE hitting both arms (repeatable)."),
    ] = None,
    max_duration: Annotated[str, typer.Option(help="Stop an undecided run after this long.")] = "1h",
    manual_approval_delay: Annotated[
        str, typer.Option(help="How long after a manual pause starts the simulated person promotes it.")
    ] = "0s",
    match_fraction: Annotated[
        float, typer.Option(help="A/B: fraction of requests matching analysis.match (routed to the canary).")
    ] = 0.1,
    load_test_rps: Annotated[
        float, typer.Option(help="Requests per second a load tester sends straight to the canary while it runs.")
    ] = 0.0,
) -> None:
    """Drive the real rollout engine and judge with a simulated clock and synthetic Poisson traffic.

    One run prints a timeline; --runs N reports how often the settings promote or roll back, and how fast.
    Webhooks are taken as passing; MetricTemplate metrics are not simulated (reported and left out). A BlueGreen's
    green is the canary arm: it gets mirrored or matched traffic (or only --load-test-rps) until the switch.
    """
    _, kind, spec = load_rollout(file, name)
    options = DriveOptions(
        max_duration_s=_positive(_duration(max_duration, "--max-duration"), "--max-duration"),
        approval_delay_s=_duration(manual_approval_delay, "--manual-approval-delay"),
        record=runs == 1,
    )
    baseline = ArmBehaviour(
        error_rate=_probability(baseline_error_rate, "--baseline-error-rate"),
        latency_median_ms=_positive(baseline_latency_ms, "--baseline-latency-ms"),
        latency_sigma=_positive(latency_sigma, "--latency-sigma"),
    )
    canary_rate = baseline_error_rate if canary_error_rate is None else canary_error_rate
    canary_latency = baseline_latency_ms if canary_latency_ms is None else canary_latency_ms
    if canary_tail_ms < 0:
        raise _bad("--canary-tail-ms", f"must be ≥ 0 (got {canary_tail_ms:g})")
    canary = ArmBehaviour(
        error_rate=_probability(canary_rate, "--canary-error-rate"),
        latency_median_ms=_positive(canary_latency, "--canary-latency-ms"),
        latency_sigma=latency_sigma,
        tail_fraction=_probability(canary_tail_fraction, "--canary-tail-fraction"),
        tail_ms=canary_tail_ms,
    )
    traffic = TrafficModel(
        rps=_positive(rps, "--rps"),
        primary=baseline,
        canary=canary,
        incidents=tuple(_incident(text) for text in incident or ()),
    )
    fraction = _probability(match_fraction, "--match-fraction")
    if load_test_rps < 0:
        raise _bad("--load-test-rps", f"must be ≥ 0 (got {load_test_rps:g})")
    runnable, dropped = simulated_bluegreen(spec) if kind is BLUEGREEN else simulated_spec(spec)
    results = simulate(
        runnable,
        traffic,
        runs=runs,
        seed=seed,
        options=options,
        match_fraction=fraction,
        load_test_rps=load_test_rps,
        kind=kind,
    )
    summary: dict[str, Any] = summarize(results)
    if as_json:
        summary["notSimulated"] = list(dropped)
        if runs == 1:
            summary["timeline"] = timeline_json(results[0])
        typer.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    for metric in dropped:
        typer.echo(f"note: metric {metric!r} uses a MetricTemplate and is not simulated (left out of the analysis)")
    if runs == 1:
        print_timeline(results[0])
        return
    undecided = f", {summary['undecided']} undecided" if summary["undecided"] else ""
    typer.echo(
        f"{summary['runs']} runs: {summary['promoted']} promoted, {summary['rolledBack']} rolled back "
        f"({100 * summary['rollbackFraction']:.1f} %){undecided}; "
        f"decision after median {_seconds(summary['medianDecisionSeconds'])}, "
        f"p90 {_seconds(summary['p90DecisionSeconds'])}"
    )
    # Why the rollbacks happened (the Event reason: ComparisonRejected, RolledBack for failed checks, …), so a
    # threshold that trips on noise is told apart from a comparison that caught a regression.
    causes = Counter(r.reason.split(":", 1)[0] for r in results if r.result == ROLLED_BACK)
    for cause, count in causes.most_common():
        example = next(r for r in results if r.result == ROLLED_BACK and r.reason.startswith(cause))
        text = example.reason if len(example.reason) <= 110 else example.reason[:109] + "…"
        typer.echo(f"  {count:>5} × {text}  (e.g. seed {example.seed})")
