"""What the plugin shows about a Canary or BlueGreen, read out of the stored objects (plain dicts).

Pure functions over what the API server returned, so the table, the detail view, ``explain`` and their JSON
output all say the same thing and can be tested without a cluster. Reading is defensive on purpose: the plugin is
how people look at a rollout that is going wrong, so a spec the operator rejects or a status written by another
version must still display (raw where it cannot be parsed) instead of crashing the command.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.rollout.spec import Pause, SetWeight, Step, canary_steps, parse_canary_spec
from controller.rollout.status import parse_time


@dataclass(frozen=True)
class EventRecord:
    """One Event about the object, from either ``events.k8s.io/v1`` or core ``v1`` (kopf posts the latter)."""

    time: float | None
    type: str
    reason: str
    message: str
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": _rfc3339(self.time),
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
        }


@dataclass(frozen=True)
class RolloutSummary:
    """The fields people look at, with the spec's steps when the spec parses (``spec_error`` says why not)."""

    kind: str
    namespace: str
    name: str
    phase: str
    weight: int
    step_index: int
    steps: tuple[Step, ...] | None
    failed_checks: int
    no_data_checks: int
    created: float | None
    message: str = ""
    hold: str = ""
    paused_by_user: bool = False
    paused_inconclusive: bool = False
    last_request_id: str = ""
    spec_error: str = ""
    conditions: tuple[Mapping[str, Any], ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)
    judge: Mapping[str, Any] = field(default_factory=dict)
    threshold: int | None = None

    @property
    def step_text(self) -> str:
        """``2/5`` (steps entered / steps in the spec), ``-`` when the spec has no weight steps or is unreadable."""
        if not self.steps:
            return "-"
        return f"{min(self.step_index, len(self.steps))}/{len(self.steps)}"

    def age(self, now: float) -> str:
        return "-" if self.created is None else short_age(now - self.created)

    def row(self, now: float) -> dict[str, Any]:
        """The table row as data (``get -o json``)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "kind": self.kind,
            "phase": self.phase,
            "weight": self.weight,
            "step": self.step_index,
            "steps": None if self.steps is None else len(self.steps),
            "failedChecks": self.failed_checks,
            "noDataChecks": self.no_data_checks,
            "age": self.age(now),
            "created": _rfc3339(self.created),
        }

    def detail(self, now: float, events: Sequence[EventRecord]) -> dict[str, Any]:
        """Everything the detail view shows, as data (``get NAME -o json``)."""
        return {
            **self.row(now),
            "message": self.message,
            "hold": self.hold or None,
            "pausedByUser": self.paused_by_user,
            "pausedInconclusive": self.paused_inconclusive,
            "threshold": self.threshold,
            "stepList": None if self.steps is None else [describe_step(step) for step in self.steps],
            "specError": self.spec_error or None,
            "evidence": dict(self.evidence),
            "conditions": [dict(c) for c in self.conditions],
            "events": [event.to_dict() for event in events],
        }

    def explanation(self, events: Sequence[EventRecord]) -> dict[str, Any]:
        """What ``explain`` shows, as data (``explain NAME -o json``)."""
        return {
            "namespace": self.namespace,
            "name": self.name,
            "kind": self.kind,
            "phase": self.phase,
            "hold": self.hold or None,
            "pausedByUser": self.paused_by_user,
            "pausedInconclusive": self.paused_inconclusive,
            "message": self.message,
            "conditions": [dict(c) for c in self.conditions],
            "lastLook": dict(self.evidence),
            "judge": dict(judge_lines(self.judge)),
            "events": [event.to_dict() for event in events],
        }


def summarize(obj: Mapping[str, Any]) -> RolloutSummary:
    """Read a Canary/BlueGreen object; never raises on a malformed spec or status."""
    meta = _mapping(obj.get("metadata"))
    status = _mapping(obj.get("status"))
    steps: tuple[Step, ...] | None
    threshold: int | None = None
    spec_error = ""
    try:
        spec = parse_canary_spec(_mapping(obj.get("spec")))
        steps, threshold = canary_steps(spec.analysis), spec.analysis.threshold
    except Exception as exc:  # any malformed spec: show the rest rather than fail
        steps, spec_error = None, f"{type(exc).__name__}: {exc}"
    return RolloutSummary(
        kind=str(obj.get("kind") or "Canary"),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        phase=str(status.get("phase") or "Unknown"),
        weight=_int(status.get("canaryWeight")),
        step_index=_int(status.get("stepIndex")),
        steps=steps,
        failed_checks=_int(status.get("failedChecks")),
        no_data_checks=_int(status.get("noDataChecks")),
        created=_time(meta.get("creationTimestamp")),
        message=str(status.get("message") or ""),
        hold=str(status.get("hold") or ""),
        paused_by_user=bool(status.get("pausedByUser", False)),
        paused_inconclusive=bool(status.get("pausedInconclusive", False)),
        last_request_id=str(status.get("lastRequestId") or ""),
        spec_error=spec_error,
        conditions=tuple(c for c in status.get("conditions") or () if isinstance(c, Mapping)),
        evidence=_mapping(status.get("evidence")),
        judge=_mapping(status.get("judge")),
        threshold=threshold,
    )


def describe_step(step: Step) -> str:
    """``weight 20%``, ``pause 5m`` or ``pause until promoted`` — one step as people read it."""
    if isinstance(step, SetWeight):
        return f"weight {step.weight}%"
    assert isinstance(step, Pause)
    if step.duration_s is None:
        return "pause until promoted"
    return f"pause {_short_duration(step.duration_s)}"


def event_record(event: Mapping[str, Any]) -> EventRecord:
    """Normalise an ``events.k8s.io/v1`` or core ``v1`` Event (their field names differ)."""
    meta = _mapping(event.get("metadata"))
    series = _mapping(event.get("series"))
    stamp = (
        _time(series.get("lastObservedTime"))
        or _time(event.get("lastTimestamp"))
        or _time(event.get("deprecatedLastTimestamp"))
        or _time(event.get("eventTime"))
        or _time(event.get("firstTimestamp"))
        or _time(meta.get("creationTimestamp"))
    )
    count = _int(series.get("count")) or _int(event.get("count")) or _int(event.get("deprecatedCount")) or 1
    return EventRecord(
        time=stamp,
        type=str(event.get("type") or "Normal"),
        reason=str(event.get("reason") or ""),
        message=str(event.get("note") or event.get("message") or ""),
        count=count,
    )


def events_about(events: Sequence[Mapping[str, Any]], kind: str, name: str) -> list[EventRecord]:
    """The Events regarding ``kind/name``, oldest first (Events without a time sort first, as kubectl does)."""
    chosen = []
    for event in events:
        ref = _mapping(event.get("regarding")) or _mapping(event.get("involvedObject"))
        if ref.get("name") == name and ref.get("kind", kind) == kind:
            chosen.append(event_record(event))
    return sorted(chosen, key=lambda e: -math.inf if e.time is None else e.time)


def evidence_rows(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``status.evidence.metrics`` (written by ``Verdict.to_dict``), skipping anything that is not a record."""
    return [dict(m) for m in evidence.get("metrics") or () if isinstance(m, Mapping)]


def judge_lines(state: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The judge's running state (``status.judge``) as (comparison, one-line summary) pairs.

    Ratio tests (error rate, latency) store cumulative counts and the largest log e-value so far; the always-valid
    p-value ``min(1, 1/E)`` is what a rejection is judged on, so it is shown next to the counts. Comparisons with
    another state shape are listed by their scalar fields.
    """
    lines: list[tuple[str, str]] = []
    for name, value in state.items():
        if name == "version" or not isinstance(value, Mapping):
            continue
        if name == "compared":
            lines.extend(judge_lines(value))
            continue
        test = value.get("test")
        lines.append((str(name), _state_text(test if isinstance(test, Mapping) else value)))
    return lines


def _state_text(test: Mapping[str, Any]) -> str:
    if {"canaryRequests", "primaryRequests", "maxLogE"} <= test.keys():
        max_log_e = float(test["maxLogE"])
        p_value = min(1.0, math.exp(-max_log_e)) if max_log_e > 0 else 1.0
        return (
            f"{_int(test.get('looks'))} looks; canary {_num(test.get('canaryEvents'))}/"
            f"{_num(test['canaryRequests'])} events/requests, primary {_num(test.get('primaryEvents'))}/"
            f"{_num(test['primaryRequests'])}; always-valid p = {p_value:.3g}"
        )
    scalars = [f"{key}={_num(item)}" for key, item in test.items() if isinstance(item, int | float | str)]
    return ", ".join(scalars) or "(no state yet)"


def short_age(seconds: float) -> str:
    """kubectl's AGE style: ``45s``, ``12m``, ``5h``, ``3d``."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _short_duration(seconds: float) -> str:
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _rfc3339(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def now_epoch() -> float:
    """Wall-clock now in epoch seconds (UTC), for AGE columns."""
    return time.time()
