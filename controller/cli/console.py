"""What every Coalmine command line shares: ``--version``, and help that is whole when piped.

Typer draws help with rich, which assumes 80 columns when the output is not a terminal and then cuts long option
names and defaults short with "…" (``coalmine run --help | less`` showed ``--canary-tail-fracti…``). Piped help is
drawn wide instead, unless the user chose a width (``COLUMNS`` or ``TERMINAL_WIDTH``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import metadata
from typing import TextIO

import typer
import typer.rich_utils

PIPED_HELP_WIDTH = 160


def help_width(stream: TextIO, environ: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """The width to draw help at: None (rich decides: a terminal's own width, or the user's) or a wide fixed one."""
    if environ.get("COLUMNS") or environ.get("TERMINAL_WIDTH"):
        return None
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return PIPED_HELP_WIDTH


def whole_help_when_piped() -> None:
    """Draw help at :func:`help_width` (call before typer renders anything)."""
    width = help_width(sys.stdout)
    if width is not None:
        typer.rich_utils.MAX_WIDTH = width


def version() -> str:
    """The installed distribution's version (``unknown`` when run from a tree that was never installed)."""
    try:
        return metadata.version("coalmine")
    except metadata.PackageNotFoundError:
        return "unknown"


def version_callback(program: str) -> Callable[[bool], None]:
    """An eager ``--version`` callback printing ``PROGRAM VERSION`` and exiting 0."""

    def show(value: bool) -> None:
        if value:
            typer.echo(f"{program} {version()}")
            raise typer.Exit()

    return show
