"""The ``coalmine`` command. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import typer

from controller.cli import judge, run, sandbox, simulate, validate

app = typer.Typer(
    name="coalmine",
    help="Coalmine: progressive delivery for Kubernetes with always-valid canary analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Coalmine: progressive delivery for Kubernetes with always-valid canary analysis."""


# Subcommand registrations (one line per module; keep sorted).
app.command("judge")(judge.judge_command)
app.command("run")(run.run_command)
app.command("sandbox")(sandbox.sandbox_command)
app.command("simulate")(simulate.simulate_command)
app.command("validate")(validate.validate_command)
