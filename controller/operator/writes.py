"""How a tick's status reaches the API: an exact merge patch, and skipping ticks that would decide from a stale copy.

Every status write carries the ``resourceVersion`` it was decided from (``optimistic_patch``): a writer deciding from
an old copy gets 409 and the next tick decides again from the stored object (``remember_read``), unless only
metadata moved on (``same_decision_inputs``: kopf's finalizer, a label), when the write is retried at the new version.

Pure helpers (``status_patch``) and the small per-process bookkeeping of writes not yet seen back through the watch
(``remember_write``, ``current_view``), shared by every kind's handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

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


@dataclass(frozen=True)
class WrittenStatus:
    """The last status this process wrote to one object: the resourceVersion it was decided from, the one the
    write produced, and the stored status the API server answered with (compact JSON, parsed only when needed)."""

    decided_from: str
    version: str
    status_json: bytes


def remember_write(ctx: OperatorContext, body: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    """Keep what a status write of ``body`` left in the API server (``answer``: the object it returned)."""
    meta, written = body.get("metadata") or {}, answer.get("metadata") or {}
    ctx.written_status[str(meta.get("uid", ""))] = WrittenStatus(
        decided_from=str(meta.get("resourceVersion", "")),
        version=str(written.get("resourceVersion", "")),
        status_json=orjson.dumps(answer.get("status") or {}),
    )


def current_view(ctx: OperatorContext, body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The object a tick must decide from: kopf's copy, or that copy with the status this process wrote last (as a
    plain dict, whose top level is this tick's own).

    kopf's copy is refreshed by the watch stream. When the operator or the API server is busy, the next tick can
    start before the previous tick's status write has come back, and deciding from the status *before* that write
    would repeat a step or undo it. The write's own answer is the stored status, so while kopf's copy is older than
    it, that answer is used (with kopf's spec and metadata, which a status write does not change). Versions are
    compared as numbers when both are (as every Kubernetes API server's are); otherwise kopf's copy is older only
    while it still has the version the write was decided from.
    """
    snapshot = dict(body)  # a plain dict: every later lookup is a dict's, not one through kopf's view of the body
    meta = snapshot.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    written = ctx.written_status.get(uid)
    if written is None:
        return snapshot
    if not _older(str(meta.get("resourceVersion", "")), written):
        del ctx.written_status[uid]  # kopf has caught up: its copy is at least as new as the write
        return snapshot
    snapshot["metadata"] = {**meta, "resourceVersion": written.version}
    snapshot["status"] = orjson.loads(written.status_json)
    return snapshot


def forget_writes(ctx: OperatorContext, uid: str) -> None:
    """Drop what this process remembers writing to an object that is gone."""
    ctx.written_status.pop(uid, None)


def _older(version: str, written: WrittenStatus) -> bool:
    if version == written.decided_from:
        return True
    if version.isdigit() and written.version.isdigit():
        return int(version) < int(written.version)
    return False


def optimistic_patch(view: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The status merge patch, carrying the ``resourceVersion`` the tick decided from (optimistic concurrency).

    The API server applies it only while the object still has that version, and answers 409 otherwise: a writer
    deciding from an old copy (a second replica, a tick behind the watch) can then never replace a newer status.
    A copy without a version (a test's in-memory object) gives a plain patch.
    """
    version = str((view.get("metadata") or {}).get("resourceVersion") or "")
    patch: dict[str, Any] = {"status": dict(changes)}
    return {"metadata": {"resourceVersion": version}, **patch} if version else patch


def remember_read(ctx: OperatorContext, body: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """After a refused write (409): forget this process's own last write and decide the next tick from ``stored``
    (the object as the API server holds it) while kopf's copy is older, exactly as from a write's answer.

    Only when the spec is the same (same ``generation``): a newer spec's status must not be decided under kopf's
    older spec, so then the next tick waits for the watch instead (and is refused again until it catches up).
    """
    uid = str((body.get("metadata") or {}).get("uid", ""))
    forget_writes(ctx, uid)
    if (body.get("metadata") or {}).get("generation") == (stored.get("metadata") or {}).get("generation"):
        remember_write(ctx, body, stored)


def same_decision_inputs(view: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether a tick decided from ``view`` decided from what ``stored`` holds, though its resourceVersion moved on:
    same spec (``generation``), same status, neither being deleted nor only one. Then only metadata changed — kopf
    adding its finalizer or annotations, a label edit — and the decision is still right, so a 409 is retried with
    the stored version instead of throwing the tick away (and, for an invalid spec, reporting it twice)."""
    view_meta, stored_meta = view.get("metadata") or {}, stored.get("metadata") or {}
    return (
        view_meta.get("generation") == stored_meta.get("generation")
        and bool(view_meta.get("deletionTimestamp")) == bool(stored_meta.get("deletionTimestamp"))
        and (view.get("status") or {}) == (stored.get("status") or {})
    )
