"""Printing a rollout's timeline, shared by ``coalmine simulate`` and ``coalmine judge`` so both read the same."""

from __future__ import annotations

from collections.abc import Callable

import typer

from controller.rollout.durations import format_duration
from controller.simulation import RunResult


def print_timeline(result: RunResult, clock: Callable[[float], str] | None = None) -> None:
    """One line per event: time since the release (and wall-clock time with ``clock``), phase, weight, message."""
    wall = "" if clock is None else f"{'at':<21}"
    typer.echo(f"{wall}{'time':>7}  {'phase':<17}{'weight':>6}  event")
    for entry in result.timeline:
        stamp = "" if clock is None else f"{clock(entry.seconds):<21}"
        typer.echo(f"{stamp}{format_duration(entry.seconds):>7}  {entry.phase:<17}{entry.weight:>5}%  {entry.message}")
    when = "—" if result.decision_seconds is None else format_duration(result.decision_seconds)
    typer.echo(f"\nOutcome: {result.result} after {when} (max canary weight {result.max_canary_weight}%)")
    typer.echo(f"Reason: {result.reason}")
