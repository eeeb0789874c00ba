"""``make demo`` for now: two simulated releases of the README's example Canary, through the real engine and judge.

Until the local sandbox exists, this runs ``coalmine simulate`` on ``examples/demo-canary.yaml`` twice with the same
seed — a healthy release (promoted) and one whose canary fails 4× as often as its primary (rolled back by the
comparison, with its evidence) — and prints both timelines under headings. Run as ``python -m controller.cli.demo``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from controller.cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "demo-canary.yaml"
TRAFFIC = ("--rps", "100", "--baseline-error-rate", "0.005", "--seed", "1")

RELEASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("A healthy release: the canary fails as often as the primary (0.5 %)", ()),
    ("A bad release: the canary fails 4× as often (2 %)", ("--canary-error-rate", "0.02")),
)


def _heading(text: str) -> None:
    typer.echo(f"\n{'=' * len(text)}\n{text}\n{'=' * len(text)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Print both timelines (an optional argument names another Canary file); the exit status of ``simulate``."""
    example = Path(argv[0]) if argv else EXAMPLE
    shown = os.path.relpath(example) if example.resolve().is_relative_to(Path.cwd()) else str(example)
    typer.echo(f"Simulating two releases of {example.name} at 100 requests/s (the same seed, so the same traffic).")
    for title, extra in RELEASES:
        args = ["simulate", "-f", str(example), *TRAFFIC, *extra]
        _heading(title)
        typer.echo(f"$ coalmine {shlex.join(['simulate', '-f', shown, *args[3:]])}\n")
        try:
            app(args=args, prog_name="coalmine", standalone_mode=False)
        except typer.Exit as stop:
            if stop.exit_code:
                return stop.exit_code
    typer.echo(
        "\nTry your own settings: "
        "coalmine simulate -f examples/demo-canary.yaml --rps 100 --runs 500 --canary-error-rate 0.01"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
