"""``v1`` Events and ``events.k8s.io/v1`` Events are one resource, stored once, as in a cluster.

The API server keeps every Event in the core form and converts on the way in and out
(``pkg/apis/events/v1/conversion.go``): ``note`` ↔ ``message``, ``regarding`` ↔ ``involvedObject``,
``deprecatedSource`` ↔ ``source``, ``deprecatedFirstTimestamp``/``deprecatedLastTimestamp`` ↔
``firstTimestamp``/``lastTimestamp``, ``deprecatedCount`` ↔ ``count``, and ``reportingController`` ↔
``reportingComponent`` (the core Go field is ``ReportingController``, serialised as ``reportingComponent``).
``eventTime``, ``series``, ``action``, ``reason``, ``related``, ``type`` and ``reportingInstance`` have one name.
So an Event an operator records through one API is listed, watched, patched and deleted through the other.

Not emulated: the zero values Go serialises for unset struct fields (``regarding: {}``, ``eventTime: null``…): a
field absent on one side is absent on the other. Nor field selectors spelled in the events.k8s.io names.

An Event created through ``events.k8s.io/v1`` is validated as the API server does (``ValidateEventCreate``):
``eventTime``, ``reportingController``, ``reportingInstance``, ``action`` and ``reason`` required (at most 128
characters each), ``type`` Normal or Warning, and ``note`` at most 1 KB — so an operator whose Event notes can grow
(a failing query quoted in full) fails here as it would on a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# events.k8s.io/v1 name -> core v1 name, for the fields whose names differ.
RENAMED: Mapping[str, str] = {
    "note": "message",
    "regarding": "involvedObject",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_TO_EVENTS = {core: events for events, core in RENAMED.items()}
CORE_API_VERSION = "v1"
EVENTS_API_VERSION = "events.k8s.io/v1"


def _renamed(obj: Mapping[str, Any], names: Mapping[str, str], api_version: str) -> dict[str, Any]:
    result = {names.get(key, key): value for key, value in obj.items() if key not in names.values() or key in names}
    result["apiVersion"], result["kind"] = api_version, "Event"
    return result


def to_core(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An ``events.k8s.io/v1`` Event in the core form it is stored in (core-only names it carried are dropped,
    as the typed decoder drops unknown fields)."""
    return _renamed(obj, RENAMED, CORE_API_VERSION)


def to_events(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A stored (core) Event as ``events.k8s.io/v1`` serves it."""
    return _renamed(obj, _TO_EVENTS, EVENTS_API_VERSION)


NOTE_LIMIT = 1024
_NAME_LIMIT = 128


def create_problems(obj: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What the API server refuses in an ``events.k8s.io/v1`` Event being created: (path, message, reason)."""
    problems: list[tuple[str, str, str]] = []
    if not obj.get("eventTime"):
        problems.append(("eventTime", "Required value", "FieldValueRequired"))
    for key in ("reportingController", "reportingInstance", "action", "reason"):
        value = obj.get(key)
        if not value:
            problems.append((key, "Required value", "FieldValueRequired"))
        elif len(str(value)) > _NAME_LIMIT:
            problems.append((key, f"Too long: may not be more than {_NAME_LIMIT} bytes", "FieldValueTooLong"))
    if obj.get("type") not in ("Normal", "Warning"):
        problems.append(
            (
                "type",
                f'Unsupported value: {obj.get("type")!r}: supported values: "Normal", "Warning"',
                "FieldValueNotSupported",
            )
        )
    note = obj.get("note")
    if isinstance(note, str) and len(note.encode()) > NOTE_LIMIT:
        problems.append(("note", f"Too long: may not be more than {NOTE_LIMIT} bytes", "FieldValueTooLong"))
    return problems
