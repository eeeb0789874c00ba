"""The ``coalmine`` command. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="coalmine",
    help="Coalmine: progressive delivery for Kubernetes with always-valid canary analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Subcommand registrations (one line per module; keep sorted).
