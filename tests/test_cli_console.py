"""What a newcomer types first: ``--version``, help read through a pipe, and ``validate --json``."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from controller.cli.console import PIPED_HELP_WIDTH, help_width
from controller.cli.main import app as coalmine
from controller.cli.plugin import app as plugin

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_both_commands_print_their_version() -> None:
    runner = CliRunner()
    for app, name in ((coalmine, "coalmine"), (plugin, "kubectl-coalmine")):
        result = runner.invoke(app, ["--version"])
        assert result.exit_code == 0
        assert result.output.strip() == f"{name} 0.1.0"


def test_help_through_a_pipe_is_whole() -> None:
    """rich assumes 80 columns off a terminal and cut option names short ("--canary-tail-fracti…")."""
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "TERMINAL_WIDTH")}
    for command in (
        ["coalmine", "simulate", "--help"],
        ["coalmine", "run", "--help"],
        ["kubectl-coalmine", "get", "--help"],
    ):
        shown = subprocess.run(
            [str(BIN / command[0]), *command[1:]], capture_output=True, text=True, env=env, timeout=60, check=True
        ).stdout
        assert not re.search(r"…\s*│", shown), command  # a cell rich cut short ends in "…"
    simulate = subprocess.run(
        [str(BIN / "coalmine"), "simulate", "--help"], capture_output=True, text=True, env=env, timeout=60, check=True
    ).stdout
    assert "--canary-tail-fraction" in simulate
    assert "--manual-approval-delay" in simulate


def test_help_keeps_a_terminal_s_width_and_a_width_the_user_chose() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert help_width(Terminal(), {}) is None
    assert help_width(io.StringIO(), {"COLUMNS": "100"}) is None
    assert help_width(io.StringIO(), {"TERMINAL_WIDTH": "90"}) is None
    assert help_width(io.StringIO(), {}) == PIPED_HELP_WIDTH


def test_validate_json_points_at_output_json() -> None:
    result = CliRunner().invoke(coalmine, ["validate", "--json", str(EXAMPLES)])
    assert result.exit_code == 2
    assert "--output json" in result.output
    assert CliRunner().invoke(coalmine, ["validate", "--output", "json", str(EXAMPLES)]).output.lstrip().startswith("[")
