"""Rich renderings of what :mod:`controller.cli.kubectl.summary` reads: the table, the detail view, ``explain``.

Only presentation lives here; every number shown comes from the summary records, which are also what the JSON
and YAML outputs print, so the human and the machine views cannot drift apart.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from controller.cli.kubectl.summary import (
    EventRecord,
    RolloutSummary,
    describe_step,
    evidence_rows,
    judge_lines,
)

_PHASE_STYLES = {
    "Succeeded": "green",
    "Initialized": "green",
    "Failed": "bold red",
    "Progressing": "cyan",
    "Promoting": "cyan",
    "Finalising": "cyan",
    "Waiting": "yellow",
    "WaitingPromotion": "yellow",
}
_OUTCOME_STYLES = {"pass": "green", "fail": "red", "rejected": "bold red", "noData": "yellow"}


def phase_text(phase: str) -> Text:
    return Text(phase, style=_PHASE_STYLES.get(phase, ""))


def rollout_table(summaries: Sequence[RolloutSummary], now: float) -> Table:
    """The ``get`` table: one row per Canary/BlueGreen."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAMESPACE", "NAME", "KIND", "PHASE", "WEIGHT", "STEP", "FAILED", "NODATA", "AGE"):
        table.add_column(column, no_wrap=True)
    for s in summaries:
        table.add_row(
            s.namespace,
            s.name,
            s.kind,
            phase_text(s.phase),
            f"{s.weight}%",
            s.step_text,
            str(s.failed_checks),
            str(s.no_data_checks),
            s.age(now),
        )
    return table


def detail_view(
    summary: RolloutSummary,
    events: Sequence[EventRecord],
    now: float,
    workloads: Mapping[str, Mapping[str, Any]] | None = None,
) -> Group:
    """``get NAME``: the state, a progress bar over the steps, the arms' Deployments (images, replicas ready,
    revisions), checks, evidence, conditions and recent Events."""
    parts: list[RenderableType] = [_facts(summary, now), _steps(summary)]
    if workloads:
        parts += [Text("\nWorkloads", style="bold"), workloads_table(workloads)]
    metrics = evidence_rows(summary.evidence)
    if metrics:
        parts += [Text("\nEvidence (last look)", style="bold"), evidence_table(metrics)]
    if summary.conditions:
        parts += [Text("\nConditions", style="bold"), conditions_table(summary.conditions)]
    parts += [Text("\nEvents", style="bold"), events_table(events[-10:]) if events else Text("  <none>")]
    return Group(*parts)


def workloads_table(workloads: Mapping[str, Mapping[str, Any]]) -> Table:
    """One row per arm: its Deployment, replicas ready, images, pod-template hash and Deployment revision."""
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 2))
    for column in ("ARM", "DEPLOYMENT", "READY", "IMAGES", "TEMPLATE", "REVISION"):
        table.add_column(column, no_wrap=column != "IMAGES")
    for arm, found in workloads.items():
        if not found.get("found"):
            table.add_row(
                arm, str(found.get("name", "")), "-", Text(str(found.get("note", "")), style="yellow"), "", ""
            )
            continue
        images = ", ".join(str(item["image"]) for item in found.get("images") or ())
        ready = (
            f"{found.get('readyReplicas') or 0}/{found.get('replicas') if found.get('replicas') is not None else '?'}"
        )
        table.add_row(
            arm,
            str(found.get("name", "")),
            ready,
            images,
            str(found.get("templateHash") or "")[:10],
            str(found.get("revision") or "-"),
        )
    return table


def explain_view(summary: RolloutSummary, events: Sequence[EventRecord]) -> Group:
    """``explain NAME``: why the controller is where it is — decision, last look, judge state, the timeline."""
    parts: list[RenderableType] = [
        Text.assemble(("Decision: ", "bold"), phase_text(summary.phase), f" — {summary.message or 'no message'}"),
    ]
    if summary.hold:
        parts.append(Text(f"Holding: {summary.hold}" + (" (paused by a user)" if summary.paused_by_user else "")))
    if summary.conditions:
        parts += [Text("\nConditions", style="bold"), conditions_table(summary.conditions)]
    evidence = summary.evidence
    parts.append(Text("\nLast look", style="bold"))
    if evidence:
        outcome = str(evidence.get("outcome") or "?")
        parts.append(
            Text.assemble("  outcome ", (outcome, _OUTCOME_STYLES.get(outcome, "")), f": {evidence.get('reason', '')}")
        )
        if evidence.get("holdReason"):
            parts.append(Text(f"  not promotable yet: {evidence['holdReason']}"))
        if evidence.get("detectable"):
            parts.append(Text(f"  sensitivity: {evidence['detectable']}"))
        for metric in evidence_rows(evidence):
            style = _OUTCOME_STYLES.get(str(metric.get("outcome")), "")
            parts.append(
                Text.assemble(
                    "  • ",
                    (str(metric.get("metric")), "bold"),
                    " ",
                    (str(metric.get("outcome")), style),
                    f": {metric.get('reason', '')}",
                )
            )
    else:
        parts.append(Text("  no analysis has run for this revision yet"))
    lines = judge_lines(summary.judge)
    parts.append(Text("\nJudge state (cumulative over this revision's looks)", style="bold"))
    parts.extend(Text(f"  {name}: {text}") for name, text in lines)
    if not lines:
        parts.append(Text("  <empty>"))
    parts += [Text("\nTimeline", style="bold"), events_table(events) if events else Text("  <no events>")]
    return Group(*parts)


def evidence_table(metrics: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("METRIC", "KIND", "OUTCOME", "VALUE", "RATIO", "CI", "P", "REQUESTS", "REASON"):
        table.add_column(column, no_wrap=column != "REASON")
    for m in metrics:
        outcome = str(m.get("outcome", ""))
        lower, upper = m.get("lower"), m.get("upper")
        table.add_row(
            str(m.get("metric", "")),
            str(m.get("kind", "")),
            Text(outcome, style=_OUTCOME_STYLES.get(outcome, "")),
            _fmt(m.get("value")),
            _fmt(m.get("estimate")),
            f"[{_fmt(lower)}, {_fmt(upper)}]" if lower is not None or upper is not None else "-",
            _fmt(m.get("pValue")),
            _requests(m),
            str(m.get("reason", "")),
        )
    return table


def conditions_table(conditions: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("TYPE", "STATUS", "REASON", "MESSAGE"):
        table.add_column(column, no_wrap=column != "MESSAGE")
    for c in conditions:
        table.add_row(
            str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason", "")), str(c.get("message", ""))
        )
    return table


def events_table(events: Sequence[EventRecord]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("TIME", "TYPE", "REASON", "MESSAGE"):
        table.add_column(column, no_wrap=column != "MESSAGE")
    for e in events:
        stamp = "-" if e.time is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.time))
        count = f" (x{e.count})" if e.count > 1 else ""
        table.add_row(stamp, Text(e.type, style="yellow" if e.type == "Warning" else ""), e.reason, e.message + count)
    return table


def _facts(summary: RolloutSummary, now: float) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("Name", f"{summary.namespace}/{summary.name} ({summary.kind}, age {summary.age(now)})")
    phase = phase_text(summary.phase)
    paused = (
        " · Paused" if summary.paused_by_user else " · Paused (weak evidence)" if summary.paused_inconclusive else ""
    )
    table.add_row("Phase", Text.assemble(phase, (paused, "yellow")) if paused else phase)
    if summary.hold:
        table.add_row("Holding", summary.hold + (" (paused by a user)" if summary.paused_by_user else ""))
    table.add_row("Message", summary.message or "-")
    table.add_row("Weight", f"{summary.weight}% canary / {100 - summary.weight}% primary")
    # The engine rolls back when the failed checks reach the threshold: "of 3 allowed" overstated it by one.
    threshold = f" (rolls back at {summary.threshold})" if summary.threshold is not None else ""
    table.add_row("Checks", f"{summary.failed_checks} failed{threshold}, {summary.no_data_checks} without data")
    return table


def _steps(summary: RolloutSummary) -> RenderableType:
    if summary.steps is None:
        return Text(f"Steps    spec not readable ({summary.spec_error}); showing status only", style="yellow")
    if not summary.steps:
        return Text("Steps    none (iterations only: A/B or blue/green)")
    total, done = len(summary.steps), min(summary.step_index, len(summary.steps))
    bar = Text.assemble(("█" * 3 + " ") * done, ("░" * 3 + " ") * (total - done))
    marks = []
    for index, step in enumerate(summary.steps, start=1):
        mark = "✔" if index < done else ("▶" if index == done else "·")
        marks.append(f"{mark} {describe_step(step)}")
    return Group(
        Text.assemble(("Steps    ", "bold"), bar, f" {done}/{total}"),
        Text("         " + "  ".join(marks)),
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _requests(metric: Mapping[str, Any]) -> str:
    canary, primary = metric.get("canaryRequests"), metric.get("primaryRequests")
    if not canary and not primary:
        return "-"
    return f"{canary or 0:,}/{primary or 0:,}"
