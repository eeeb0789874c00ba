"""What the dashboard's pages draw, as JSON-ready dicts built from the plugin's own summaries.

Every number starts in :func:`controller.cli.kubectl.summary.summarize` (the record ``kubectl coalmine get``
prints), so the page and the terminal agree; this module only adds what a page needs and a table does not: a
health word per row, the steps with their state, each arm's rates from the judge's cumulative counts, which
buttons the plugin's precheck would let through, and the Deployments' images and revisions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from controller.cli.kubectl.actions import precheck
from controller.cli.kubectl.summary import (
    EventRecord,
    RolloutSummary,
    describe_step,
    evidence_rows,
    judge_lines,
    summarize,
)
from controller.rollout.phases import ManualAction

ACTIONS: dict[str, ManualAction] = {
    "promote": ManualAction.PROMOTE,
    "promote-full": ManualAction.PROMOTE_FULL,
    "abort": ManualAction.ABORT,
    "pause": ManualAction.PAUSE,
    "resume": ManualAction.RESUME,
    "retry": ManualAction.RETRY,
}
"""The buttons, by the name used in URLs, and the plugin verb each one is (``promote-full`` is ``promote --full``)."""

_HEALTH = {
    "Succeeded": "Healthy",
    "Initialized": "Healthy",
    "Failed": "Degraded",
}
_ARM_KINDS = ("errorRate", "latency")


def health(summary: RolloutSummary) -> str:
    """One word per row, as Argo's dashboard shows: Healthy, Degraded, Paused, Progressing or Unknown.

    Derived from the phase (the operator's own answer) plus two things a person scanning the list must see at
    once: a user's pause, and failed checks that are counting towards a rollback.
    """
    if summary.paused_by_user:
        return "Paused"
    if summary.phase in _HEALTH:
        return _HEALTH[summary.phase]
    if summary.phase == "Unknown":
        return "Unknown"
    return "Suspicious" if summary.failed_checks else "Progressing"


def row(summary: RolloutSummary, now: float) -> dict[str, Any]:
    """A list-page row: the ``get`` row plus health, hold and the message."""
    return {
        **summary.row(now),
        "health": health(summary),
        "hold": summary.hold or None,
        "pausedByUser": summary.paused_by_user,
        "stepText": summary.step_text,
        "message": summary.message,
    }


def steps(summary: RolloutSummary) -> list[dict[str, str]]:
    """The spec's steps with ``done``/``current``/``todo``, the same marks as ``get NAME``'s ✔ ▶ ·."""
    if not summary.steps:
        return []
    done = min(summary.step_index, len(summary.steps))
    return [
        {"text": describe_step(step), "state": "done" if index < done else "current" if index == done else "todo"}
        for index, step in enumerate(summary.steps, start=1)
    ]


def arms(judge: Mapping[str, Any], evidence: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Each arm's cumulative rate per ratio comparison, from the counts the judge keeps in ``status.judge`` — the
    same counts the verdict is made on. ``kind`` is ``errorRate`` (5xx share) or ``latency`` (share of requests
    slower than the threshold).

    The state is keyed by the comparison's metric name (the operator writes ``error-rate`` and ``latency``), so
    the kind comes from the last look's evidence for that metric, else from the state itself (a latency test
    records its ``slowThresholdMs``).
    """
    kinds = {str(m.get("metric")): str(m.get("kind")) for m in evidence_rows(evidence or {})}
    out: dict[str, dict[str, Any]] = {}
    for name, entry in judge.items():
        test = entry.get("test") if isinstance(entry, Mapping) else None
        if not isinstance(entry, Mapping) or not isinstance(test, Mapping) or "canaryRequests" not in test:
            continue
        kind = kinds.get(name) or ("latency" if "slowThresholdMs" in entry or name == "latency" else "errorRate")
        if kind not in _ARM_KINDS:
            continue
        canary_n, primary_n = _float(test.get("canaryRequests")), _float(test.get("primaryRequests"))
        canary_e, primary_e = _float(test.get("canaryEvents")), _float(test.get("primaryEvents"))
        max_log_e = _float(test.get("maxLogE"))
        out[str(name)] = {
            "kind": kind,
            "canaryRate": canary_e / canary_n if canary_n else None,
            "primaryRate": primary_e / primary_n if primary_n else None,
            "canaryRequests": canary_n,
            "primaryRequests": primary_n,
            "canaryEvents": canary_e,
            "primaryEvents": primary_e,
            "looks": int(_float(test.get("looks"))),
            "pValue": min(1.0, math.exp(-max_log_e)) if max_log_e > 0 else 1.0,
            "theta0": entry.get("theta0"),
            "slowThresholdMs": entry.get("slowThresholdMs"),
        }
    return out


def available_actions(obj: Mapping[str, Any]) -> dict[str, str | None]:
    """For each button, the plugin's precheck refusal (shown as the disabled button's reason) or None."""
    return {name: precheck(action, obj) for name, action in ACTIONS.items()}


def detail(
    obj: Mapping[str, Any],
    events: Sequence[EventRecord],
    now: float,
    workloads: Mapping[str, Mapping[str, Any]],
    timeline: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The detail page: ``get NAME -o json`` and ``explain``'s judge lines, plus steps, arms, buttons, workloads,
    revisions and the evidence timeline the dashboard has watched."""
    summary = summarize(obj)
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    evidence = summary.evidence
    return {
        **summary.detail(now, events),
        **row(summary, now),
        "steps": steps(summary),
        "lastLook": {
            "outcome": evidence.get("outcome"),
            "reason": evidence.get("reason"),
            "promotable": evidence.get("promotable"),
            "holdReason": evidence.get("holdReason"),
            "detectable": evidence.get("detectable"),
            "metrics": evidence_rows(evidence),
        },
        "judge": dict(judge_lines(summary.judge)),
        "arms": arms(summary.judge, summary.evidence),
        "actions": available_actions(obj),
        "workloads": dict(workloads),
        "revisions": {
            "lastApplied": status.get("lastAppliedSpec") or None,
            "lastPromoted": status.get("lastPromotedSpec") or None,
            "target": (workloads.get("target") or {}).get("templateHash"),
            "observedGeneration": status.get("observedGeneration"),
            "generation": (obj.get("metadata") or {}).get("generation"),
        },
        "lastRequestId": summary.last_request_id or None,
        "timeline": list(timeline),
    }


def sample(obj: Mapping[str, Any], at: float) -> dict[str, Any]:
    """One point of the evidence timeline: weight, phase and each comparison's numbers at ``at`` (epoch s).

    The Canary's status holds only the last look and the cumulative judge state, so the dashboard keeps these
    points itself, one per change it watches; ``revision`` lets the page draw only the current revision's run.
    """
    summary = summarize(obj)
    status = obj.get("status") if isinstance(obj.get("status"), Mapping) else {}
    assert isinstance(status, Mapping)
    metrics = {
        str(m.get("metric")): {
            key: m.get(key) for key in ("outcome", "pValue", "logEValue", "estimate", "lower", "upper", "value")
        }
        for m in evidence_rows(summary.evidence)
    }
    return {
        "t": at,
        "phase": summary.phase,
        "weight": summary.weight,
        "step": summary.step_index,
        "revision": str(status.get("lastAppliedSpec") or ""),
        "metrics": metrics,
        "arms": arms(summary.judge, summary.evidence),
    }


def _float(value: Any) -> float:
    try:
        return float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
