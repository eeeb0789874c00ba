"""How a tick's status reaches the API: an exact merge patch, and skipping ticks that would decide from a stale copy.

Pure helpers (``status_patch``) and the small per-process bookkeeping of writes not yet seen back (``body_is_current``,
``note_write``), shared by every kind's handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.operator.context import OperatorContext

_SAME = object()


def _diff(old: Any, new: Any) -> Any:
    """The JSON merge patch turning ``old`` into ``new`` (``_SAME`` when equal); nested maps are replaced exactly."""
    if isinstance(new, Mapping):
        if not isinstance(old, Mapping):
            return dict(new)
        out: dict[str, Any] = {key: None for key in old.keys() - new.keys()}
        for key, value in new.items():
            change = _diff(old.get(key, _SAME), value)
            if change is not _SAME:
                out[key] = change
        return out if out else _SAME
    if old is _SAME and new is None:
        return _SAME
    return _SAME if old == new else new


def status_patch(current: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that makes ``.status`` carry ``new``'s top-level keys (others are left alone).

    A merge patch *merges* maps: sending ``judge: {}`` to reset the judge would keep every old key, and a new revision
    would inherit the previous one's judge state and gates. So each map is diffed against what is stored and keys
    that went away are sent as ``null``. Unchanged keys are left out, so a tick that changes nothing writes nothing.
    """
    current = current or {}
    patch: dict[str, Any] = {}
    for key, value in new.items():
        change = _diff(current.get(key, _SAME), value)
        if change is not _SAME:
            patch[key] = change
    return patch


STALE_TICKS_MAX = 3


def body_is_current(ctx: OperatorContext, body: Mapping[str, Any]) -> bool:
    """False while kopf's copy of the object does not yet show the status this process last wrote to it.

    A tick decides from ``body``'s status. kopf's copy is refreshed by the watch stream; when the operator or the
    API server is busy, the next tick can start before the previous tick's status write has come back, and would
    then decide from the status *before* that write (repeating a step, or undoing it). Every status write gives the
    object a new ``resourceVersion``, so "same resourceVersion as when we last wrote" means "our write not seen
    yet": that tick is skipped. After a few skips the tick runs anyway, in case the write itself was lost.
    """
    meta = body.get("metadata") or {}
    uid, version = str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))
    pending = ctx.pending_writes.get(uid)
    if pending is not None and pending[0] == version and pending[1] < STALE_TICKS_MAX:
        ctx.pending_writes[uid] = (version, pending[1] + 1)
        return False
    ctx.pending_writes.pop(uid, None)
    return True


def note_write(ctx: OperatorContext, body: Mapping[str, Any], patch: Mapping[str, Any]) -> None:
    """Remember that this tick wrote a status computed from ``body`` (see :func:`body_is_current`)."""
    if patch.get("status"):
        meta = body.get("metadata") or {}
        ctx.pending_writes[str(meta.get("uid", ""))] = (str(meta.get("resourceVersion", "")), 0)
