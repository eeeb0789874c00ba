"""``coalmine validate PATH...``: check manifests before they reach a cluster (pre-commit hook, CI of a GitOps repo).

Reads files, directories (recursively ``*.yaml``, ``*.yml``, ``*.json``) and ``-`` for stdin, multi-document YAML
and ``kind: List``. Coalmine documents and Flagger ``flagger.app/v1beta1`` ones are validated; every other kind
(Deployments, Services…) is skipped and counted. Exit status: 0 all valid, 1 something invalid, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from controller.cli.confinement_check import confinement_problems
from controller.cli.manifest_yaml import load_all
from controller.cli.rps_check import rps_warnings
from controller.cli.scrape_interval import scrape_interval_warnings
from controller.cli.skipped import skip_reason
from controller.cli.yaml_words import describe_yaml_error
from controller.providers.confine import DEFAULT_NAMESPACE_LABELS
from controller.providers.render import CONFINED, Confinement
from controller.rollout.durations import DurationError, parse_duration
from controller.rollout.provider_rules import Provider, with_default_provider
from controller.rollout.validation import Problem, is_checked_document, validate_document

SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@dataclass(frozen=True)
class DocumentResult:
    """The verdict on one document, in the shape ``--output json`` prints."""

    file: str
    kind: str | None
    name: str | None
    valid: bool
    flagger: bool
    problems: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Tally:
    results: list[DocumentResult] = field(default_factory=list)
    skipped: int = 0
    skipped_kinds: Counter[str] = field(default_factory=Counter)  # kind → how many were skipped
    noted: list[dict[str, str | None]] = field(default_factory=list)  # skipped documents worth a line (why)


def _as_dicts(problems: tuple[Problem, ...]) -> list[dict[str, str]]:
    return [{"path": problem.path, "message": problem.message} for problem in problems]


def _files(paths: list[str]) -> list[str]:
    """Expand directories; a path that does not exist is a usage error (exit 2), not an invalid manifest."""
    found: list[str] = []
    for raw in paths:
        if raw == STDIN:
            found.append(STDIN)
            continue
        path = Path(raw)
        if path.is_dir():
            found.extend(
                str(child)
                for child in sorted(path.rglob("*"))
                if child.is_file()
                and child.suffix in SUFFIXES
                and not any(part.startswith(".") for part in child.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(raw)
        else:
            typer.echo(f"coalmine validate: {raw}: no such file or directory", err=True)
            raise typer.Exit(2)
    return found


def _documents(label: str, text: str) -> Iterator[Any]:
    """Yield parsed documents; a syntax error is raised as ValueError naming its line, after earlier documents."""
    if label.endswith(".json"):
        try:
            yield json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"line {error.lineno}: JSON syntax error: {error.msg}") from error
        return
    try:
        yield from load_all(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        raise ValueError(describe_yaml_error(problem, line, column)) from error


def _kind_of(document: Any) -> str:
    kind = document.get("kind") if isinstance(document, Mapping) else None
    return str(kind) if kind else "document without a kind"


def _skipped_summary(kinds: Counter[str]) -> str:
    """``: 2 Deployment, 1 Service`` — what was skipped, so "0 invalid" is not read as "everything was checked"."""
    if not kinds:
        return ""
    return ": " + ", ".join(
        f"{count} {kind}" for kind, count in sorted(kinds.items(), key=lambda item: (-item[1], item[0]))
    )


def _flatten(document: Any) -> Iterator[Any]:
    if isinstance(document, Mapping) and document.get("kind") == "List" and isinstance(document.get("items"), list):
        for item in document["items"]:
            yield from _flatten(item)
    elif document is not None:
        yield document


def _check_file(
    label: str,
    tally: Tally,
    scrape_s: float | None = None,
    default_provider: str = "istio",
    rps: float | None = None,
    confinement: Confinement = CONFINED,
) -> None:
    try:
        text = sys.stdin.read() if label == STDIN else Path(label).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        tally.results.append(DocumentResult(label, None, None, False, False, [{"path": "", "message": str(error)}]))
        return
    shown = "<stdin>" if label == STDIN else label
    items: list[Any] = []  # read first: a Canary's queries are checked with the templates in the same file
    unreadable: ValueError | None = None
    try:
        for document in _documents(label, text):
            items.extend(_flatten(document))
    except ValueError as error:  # reported after the documents before it
        unreadable = error
    try:
        confined = confinement_problems(items, confinement)
        for index, item in enumerate(items):
            if not is_checked_document(item):
                tally.skipped += 1
                tally.skipped_kinds[_kind_of(item)] += 1
                if (reason := skip_reason(item)) is not None:
                    name = (item.get("metadata") or {}).get("name") if isinstance(item, Mapping) else None
                    kind = item.get("kind") if isinstance(item, Mapping) else None
                    tally.noted.append({"file": shown, "kind": kind, "name": name, "skipped": reason})
                continue
            report = validate_document(with_default_provider(item, default_provider))
            leaks = confined.get(index, []) if report.valid else []  # checked once the rest is valid
            tally.results.append(
                DocumentResult(
                    shown,
                    report.kind,
                    report.name,
                    report.valid and not leaks,
                    report.flagger,
                    _as_dicts(report.problems) + leaks,
                    _as_dicts(report.warnings)
                    + (scrape_interval_warnings(item, scrape_s) if scrape_s is not None else [])
                    + (rps_warnings(item, rps) if rps is not None and report.valid else []),
                )
            )
    except ValueError as error:
        unreadable = unreadable or error
    if unreadable is not None:
        tally.results.append(
            DocumentResult(shown, None, None, False, False, [{"path": "", "message": str(unreadable)}])
        )


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _text_lines(result: DocumentResult) -> Iterator[str]:
    if result.kind is None:
        for problem in result.problems:
            yield f"{result.file}: {problem['message']}"
        return
    subject = f"{result.file}: {result.kind}/{result.name or '<unnamed>'}"
    for problem in result.problems:
        yield f"{subject}: {problem['path'] or '(document)'}: {problem['message']}"
    for warning in result.warnings:
        yield f"{subject}: {warning['path']}: warning: {warning['message']}"
    if result.valid:
        yield f"{subject}: OK (Flagger-compatible)" if result.flagger else f"{subject}: OK"


def validate_command(
    paths: Annotated[
        list[str],
        typer.Argument(metavar="PATH", help="Files, directories (searched for *.yaml, *.yml, *.json) or - for stdin."),
    ],
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text, or json for CI tools.")] = (
        OutputFormat.TEXT
    ),
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings (deprecations…) as errors.")] = False,
    scrape_interval: Annotated[
        str | None,
        typer.Option(
            "--scrape-interval",
            help="Your Prometheus' scrape interval (e.g. 30s): warn about analysis intervals shorter than it.",
        ),
    ] = None,
    default_provider: Annotated[
        Provider,
        typer.Option(
            "--default-provider",
            help="The router of Canaries/BlueGreens without spec.provider, as the operator's --default-provider "
            "(Flagger's -mesh-provider).",
        ),
    ] = Provider.ISTIO,
    rps: Annotated[
        float | None,
        typer.Option(
            "--rps",
            help="Total requests per second at the service: warn when the canary cannot reach minRequests before "
            "it would promote (docs/plan.md).",
        ),
    ] = None,
    trusted_template_namespaces: Annotated[
        str,
        typer.Option(
            help="Comma-separated namespaces the operator trusts (its own and its --trusted-template-namespaces): "
            'their MetricTemplates may read other namespaces with coalmine.dev/reads-other-namespaces: "true".',
        ),
    ] = "",
    namespace_labels: Annotated[
        str, typer.Option(help="Comma-separated extra namespace labels, as the operator's --namespace-labels.")
    ] = "",
    json_flag: Annotated[
        bool, typer.Option("--json", hidden=True, help="Not an option: --output json is (kubectl's spelling).")
    ] = False,
) -> None:
    """Validate Canary, MetricTemplate and AlertProvider manifests (Coalmine's and Flagger's)."""
    if json_flag:
        raise typer.BadParameter("there is no --json; for JSON write --output json (or -o json)", param_hint="'--json'")
    scrape_s: float | None = None
    if scrape_interval is not None:
        try:
            scrape_s = parse_duration(scrape_interval)
        except DurationError as error:
            raise typer.BadParameter(str(error), param_hint="'--scrape-interval'") from error
        if scrape_s <= 0:
            raise typer.BadParameter("must be positive", param_hint="'--scrape-interval'")
    if rps is not None and not rps > 0:
        raise typer.BadParameter("must be positive", param_hint="'--rps'")
    confinement = Confinement(
        tuple(dict.fromkeys((*DEFAULT_NAMESPACE_LABELS, *_comma_list(namespace_labels)))),
        frozenset(_comma_list(trusted_template_namespaces)),
    )
    tally = Tally()
    for label in _files(paths):
        _check_file(label, tally, scrape_s, default_provider.value, rps, confinement)
    failed = [result for result in tally.results if not result.valid or (strict and result.warnings)]
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([asdict(result) for result in tally.results] + tally.noted, indent=2))
    else:
        for result in tally.results:
            for line in _text_lines(result):
                typer.echo(line)
        for note in tally.noted:
            typer.echo(f"{note['file']}: {note['kind']}/{note['name']}: {note['skipped']}")
        typer.echo(
            f"{len(tally.results)} document(s) checked, {len(failed)} invalid, "
            f"{tally.skipped} other document(s) skipped{_skipped_summary(tally.skipped_kinds)}"
        )
    if failed:
        raise typer.Exit(1)
