"""``dryRun=All``: a write computed exactly as a real one — then thrown away.

``kubectl diff`` and ``kubectl apply --dry-run=server`` send it (on create, update, patch and delete); a real
server validates, defaults and admits the write, answers what it would have stored, and stores nothing: no new
``resourceVersion``, no watch event, no garbage collection. Here the write runs against the real store inside
:func:`isolated` (every object, the version counter and the event sink restored afterwards), so a dry run can
never drift from the real write path it previews.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from kmock._internal import rendering

from .objects import ApiError
from .store import Store


def requested(request: rendering.Request, method: str) -> bool:
    """``?dryRun=All`` (or ``dryRun: [All]`` in a delete's options); any other value is refused like upstream."""
    raw = request._raw_request
    values = [value for key, value in raw.query.items() if key == "dryRun"] if raw is not None else []
    if method == "DELETE" and isinstance(request.data, Mapping):
        values += list(request.data.get("dryRun") or ())
    for value in values:
        if value != "All":
            raise ApiError(400, "BadRequest", f'Invalid dry run value: {value!r}; the only valid value is "All"')
    return bool(values)


@contextlib.contextmanager
def isolated(store: Store) -> Iterator[None]:
    """Run writes against ``store``, then put everything back: no objects, versions or events are kept."""
    objects, version, emit = dict(store.objects), store.resource_version, store._emit
    store._emit = lambda *args: None
    try:
        yield
    finally:
        store.objects.clear()
        store.objects.update(objects)
        store.resource_version, store._emit = version, emit


def answer(payload: rendering.Payload, current: Mapping[str, Any] | None) -> rendering.Payload:
    """What a dry run answers: the would-be object with the current object's (unchanged) ``resourceVersion``,
    or none at all for a create, which stored nothing."""
    if isinstance(payload, rendering.Response):
        return attrs.evolve(payload, payload=answer(payload.payload, current))
    if not isinstance(payload, Mapping) or payload.get("kind") == "Status":
        return payload
    result = copy.deepcopy(dict(payload))
    meta = result.setdefault("metadata", {})
    if current is None:
        meta.pop("resourceVersion", None)
    else:
        meta["resourceVersion"] = current["metadata"].get("resourceVersion")
    return result


__all__ = ("answer", "isolated", "requested")
