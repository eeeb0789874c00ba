"""After ``make demo`` the summary says how to keep exploring, with commands that exist as written."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from controller.backtest import parse_instant
from e2e.sandbox.scenario import KEEP_EXPLORING, Result, summary

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def test_the_summary_ends_with_how_to_keep_exploring() -> None:
    lines = summary(Result())
    assert lines[-len(KEEP_EXPLORING) :] == KEEP_EXPLORING
    assert any("sandbox --hold --kubeconfig" in line for line in lines)
    assert any("kubectl-coalmine get -w" in line for line in lines)


def test_every_hinted_command_takes_the_options_it_is_shown_with() -> None:
    commands = [shlex.split(line.split("#")[0]) for line in KEEP_EXPLORING if line.strip().startswith(".venv/bin/")]
    assert len(commands) == 4
    for command in commands:
        program, words = Path(command[0]).name, command[1:]
        verb = [word for word in words if not word.startswith("-")][:1]
        shown = subprocess.run(
            [str(BIN / program), *verb, "--help"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        for option in (word for word in words if word.startswith("--")):
            assert option in shown, (program, option)
    assert (ROOT / "examples" / "demo-canary.yaml").exists()
    assert parse_instant("-15m", 1_000_000.0) == 1_000_000.0 - 900
