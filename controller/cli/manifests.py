"""Reading a Canary (or a BlueGreen) from a manifest file for the offline commands (``simulate``, ``judge``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
import yaml

from controller.cli.manifest_yaml import load_all
from controller.rollout.kinds import BLUEGREEN, CANARY, Strategy
from controller.rollout.spec import CanarySpec
from controller.rollout.validation import InvalidSpecError, parse_valid_canary

_KINDS: dict[str, Strategy[Any]] = {CANARY.kind: CANARY, BLUEGREEN.kind: BLUEGREEN}


def load_canary(path: str, name: str | None = None) -> tuple[dict[str, Any], CanarySpec]:
    """Return the first (or the named) Canary in ``path`` (``-`` for stdin), validated; exit 1 with the problems.

    A file may hold several documents (a Deployment next to its Canary): other kinds are skipped.
    """
    document = _find(path, name, ("Canary",))
    try:
        return document, parse_valid_canary(document)
    except InvalidSpecError as error:
        _report(path, document, error)
        raise typer.Exit(1) from error


def load_rollout(path: str, name: str | None = None) -> tuple[dict[str, Any], Strategy[Any], Any]:
    """The first (or the named) Canary or BlueGreen in ``path``, validated: the document, its kind and its spec."""
    document = _find(path, name, tuple(_KINDS))
    kind = _KINDS[str(document["kind"])]
    try:
        return document, kind, kind.parse(document)
    except InvalidSpecError as error:
        _report(path, document, error)
        raise typer.Exit(1) from error


def _report(path: str, document: dict[str, Any], error: InvalidSpecError) -> None:
    label = f"{document.get('kind')}/{(document.get('metadata') or {}).get('name', '?')}"
    for problem in error.problems:
        typer.echo(f"{path}: {label}: {problem.path}: {problem.message}", err=True)


def _find(path: str, name: str | None, kinds: tuple[str, ...]) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as error:
        typer.echo(f"{path}: cannot read: {error.strerror}", err=True)
        raise typer.Exit(2) from error
    try:
        documents = [doc for doc in load_all(text) if isinstance(doc, dict)]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        typer.echo(f"{path}: invalid YAML{where}: {getattr(error, 'problem', error)}", err=True)
        raise typer.Exit(1) from error
    canaries = [doc for doc in documents if doc.get("kind") in kinds]
    if name is not None:
        canaries = [doc for doc in canaries if (doc.get("metadata") or {}).get("name") == name]
    if not canaries:
        what = " or ".join(kinds)
        wanted = f"{what} named {name!r}" if name else what
        typer.echo(f"{path}: no {wanted} in this file", err=True)
        raise typer.Exit(1)
    return canaries[0]
