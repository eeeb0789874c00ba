"""Reading a Canary from a manifest file for the offline commands (``simulate``, ``judge``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from controller.rollout.spec import CanarySpec
from controller.rollout.validation import InvalidSpecError, parse_valid_canary


def load_canary(path: str, name: str | None = None) -> tuple[dict[str, Any], CanarySpec]:
    """Return the first (or the named) Canary in ``path`` (``-`` for stdin), validated; exit 1 with the problems.

    A file may hold several documents (a Deployment next to its Canary): other kinds are skipped.
    """
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        typer.echo(f"{path}: cannot read: {error.strerror}", err=True)
        raise typer.Exit(2) from error
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        typer.echo(f"{path}: invalid YAML{where}: {getattr(error, 'problem', error)}", err=True)
        raise typer.Exit(1) from error
    canaries = [doc for doc in documents if doc.get("kind") == "Canary"]
    if name is not None:
        canaries = [doc for doc in canaries if (doc.get("metadata") or {}).get("name") == name]
    if not canaries:
        wanted = f"a Canary named {name!r}" if name else "a Canary"
        typer.echo(f"{path}: no {wanted} in this file", err=True)
        raise typer.Exit(1)
    document = canaries[0]
    try:
        return document, parse_valid_canary(document)
    except InvalidSpecError as error:
        label = f"Canary/{(document.get('metadata') or {}).get('name', '?')}"
        for problem in error.problems:
            typer.echo(f"{path}: {label}: {problem.path}: {problem.message}", err=True)
        raise typer.Exit(1) from error
