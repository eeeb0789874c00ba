"""The ``meta.k8s.io/v1`` Table a real server answers to ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``.

``kubectl get`` asks for it and prints what the server chose, so the columns are the server's business:

- custom resources: ``Name`` and the CRD version's ``additionalPrinterColumns`` (``Age`` alone when it has none),
  each ``jsonPath`` evaluated on the object and typed as apiextensions' table convertor does (first result
  only; ``integer``/``number``/``boolean`` cells must have that JSON type, else empty; ``date`` cells become an
  age like ``5m``). kubectl hides ``priority > 0`` columns unless ``-o wide``;
- built-in kinds: a few of upstream's printers, reduced (Deployment ``Ready``/``Up-to-date``/``Available``,
  Namespace ``Status``, Service ``Type``/``Cluster-IP``/``Port(s)``, ConfigMap and Secret ``Data``; the rest
  ``Name``/``Age``).

Each row carries the object as ``PartialObjectMetadata`` (``includeObject=Metadata``, the default), whole
(``Object``) or not at all (``None``). In a watch, only the first event's Table has column definitions.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .resources import ResourceSpec

Column = Mapping[str, Any]
_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "", "priority": 0}
_STEP = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\*|-?\d+)\]|\['([^']+)'\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]"
)


def wants_table(accept: str) -> bool:
    """Whether the client asked for a Table (kubectl lists it first, with plain JSON as the fallback)."""
    return any("as=Table" in part.replace(" ", "") for part in accept.split(","))


def json_path(obj: Any, path: str) -> list[Any]:
    """The JSONPath subset printer columns use: ``.a.b``, ``[0]``, ``[*]``, ``['a.b']``, ``[?(@.k=="v")]``."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    values, position = [obj], 0
    while position < len(text):
        match = _STEP.match(text, position)
        if match is None:
            return []
        position = match.end()
        key, index, quoted, filter_key, filter_value = match.groups()
        key = key if key is not None else quoted
        found: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, Mapping) and key in value:
                found.append(value[key])
            elif index is not None and isinstance(value, list):
                found.extend(value if index == "*" else value[int(index) :][:1])
            elif filter_key is not None and isinstance(value, list):
                found.extend(i for i in value if isinstance(i, Mapping) and str(_dig(i, filter_key)) == filter_value)
        values = found
    return values


def _dig(item: Mapping[str, Any], dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def human_age(timestamp: str, now: datetime.datetime | None = None) -> str:
    """``duration.HumanDuration`` of the time since ``timestamp``: ``45s``, ``3m20s``, ``2h10m``, ``4d``."""
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes, hours = seconds // 60, seconds // 3600
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def _typed(kind: str, value: Any) -> Any:
    """apiextensions' ``cellForJSONValue``: a cell only when the JSON type fits the column type."""
    if value is None:
        return None
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        return human_age(value)
    if kind == "string":
        return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return None


def _cell(column: Column, obj: Mapping[str, Any]) -> Any:
    values = json_path(obj, str(column.get("jsonPath") or ""))
    return _typed(str(column.get("type") or "string"), values[0]) if values else None


def _definition(column: Column) -> dict[str, Any]:
    return {
        "name": column["name"],
        "type": column.get("type", "string"),
        "format": column.get("format", ""),
        "description": column.get("description", ""),
        "priority": int(column.get("priority", 0)),
    }


Cells = Callable[[Mapping[str, Any]], list[Any]]


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _ports(obj: Mapping[str, Any]) -> str:
    ports = [f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in _spec(obj).get("ports") or ()]
    return ",".join(ports) or "<none>"


# Built-in printers: (columns after Name, cells after the name). Age is appended to each.
_BUILTIN: dict[str, tuple[Sequence[Column], Cells]] = {
    "apps/Deployment": (
        [
            {"name": "Ready", "type": "string"},
            {"name": "Up-to-date", "type": "integer"},
            {"name": "Available", "type": "integer"},
        ],
        lambda o: [
            f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 1)}",
            _status(o).get("updatedReplicas", 0),
            _status(o).get("availableReplicas", 0),
        ],
    ),
    "/Namespace": ([{"name": "Status", "type": "string"}], lambda o: [_status(o).get("phase", "")]),
    "/Service": (
        [
            {"name": "Type", "type": "string"},
            {"name": "Cluster-IP", "type": "string"},
            {"name": "Port(s)", "type": "string"},
        ],
        lambda o: [_spec(o).get("type", ""), _spec(o).get("clusterIP", "<none>"), _ports(o)],
    ),
    "/ConfigMap": (
        [{"name": "Data", "type": "integer"}],
        lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})],
    ),
    "/Secret": (
        [{"name": "Type", "type": "string"}, {"name": "Data", "type": "integer"}],
        lambda o: [o.get("type", ""), len(o.get("data") or {})],
    ),
}


def columns(spec: ResourceSpec, printer_columns: Sequence[Column]) -> list[dict[str, Any]]:
    """The column definitions: Name, then the CRD's printer columns (or a built-in printer's, then Age)."""
    if not spec.builtin:
        return [_NAME] + [_definition(c) for c in (printer_columns or [_AGE])]
    extra, _ = _BUILTIN.get(f"{spec.group}/{spec.kind}", ((), lambda o: []))
    return [_NAME] + [_definition(c) for c in extra] + [_definition(_AGE)]


def cells(spec: ResourceSpec, printer_columns: Sequence[Column], obj: Mapping[str, Any]) -> list[Any]:
    name = (obj.get("metadata") or {}).get("name")
    if not spec.builtin:
        return [name] + [_cell(c, obj) for c in (printer_columns or [_AGE])]
    _, compute = _BUILTIN.get(f"{spec.group}/{spec.kind}", ((), lambda o: []))
    return [name, *compute(obj), _cell(_AGE, obj)]


def _embedded(obj: Mapping[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return dict(obj)
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(
    spec: ResourceSpec,
    printer_columns: Sequence[Column],
    objs: Sequence[Mapping[str, Any]],
    metadata: Mapping[str, Any],
    include: str = "Metadata",
    *,
    headers: bool = True,
) -> dict[str, Any]:
    """The Table of ``objs`` (``headers=False``: no column definitions, as in watch events after the first)."""
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": cells(spec, printer_columns, obj)}
        if (embedded := _embedded(obj, include)) is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(metadata),
        "columnDefinitions": columns(spec, printer_columns) if headers else [],
        "rows": rows,
    }


__all__ = ("cells", "columns", "human_age", "json_path", "table", "wants_table")
