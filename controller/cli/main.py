"""The ``coalmine`` command. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli import judge, plan, run, sandbox, simulate, validate
from controller.cli.console import version_callback, whole_help_when_piped

whole_help_when_piped()

app = typer.Typer(
    name="coalmine",
    help="Coalmine: progressive delivery for Kubernetes with always-valid canary analysis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    _version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=version_callback("coalmine"), help="Print the version."),
    ] = False,
) -> None:
    """Coalmine: progressive delivery for Kubernetes with always-valid canary analysis."""


# Subcommand registrations (one line per module; keep sorted).
app.command("judge")(judge.judge_command)
app.command("plan")(plan.plan_command)
app.command("run")(run.run_command)
app.command("sandbox")(sandbox.sandbox_command)
app.command("simulate")(simulate.simulate_command)
app.command("validate")(validate.validate_command)
