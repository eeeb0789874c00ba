"""kopf registrations for Canaries: a fixed-period tick, a target index, and deletion.

A ``@kopf.timer`` rather than a daemon: kopf applies the status patch after every call, so progress is persisted
tick by tick and a restarted operator resumes from status. The tick itself is
:func:`controller.operator.reconcile.reconcile`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from controller.operator.context import OperatorContext
from controller.operator.reconcile import TickResult, reconcile
from controller.operator.specs import forget_spec
from controller.rollout.kinds import CANARY

GROUP, VERSION, PLURAL = "coalmine.dev", "v1alpha1", "canaries"
KIND = "Canary"


def _target_key(namespace: str | None, spec: Mapping[str, Any]) -> tuple[str, str] | None:
    target = (spec.get("targetRef") or {}).get("name") if isinstance(spec, Mapping) else None
    return (str(namespace), str(target)) if target else None


def owner_conflict(body: Mapping[str, Any], index: Mapping[Any, Any]) -> str | None:
    """If an older Canary already manages this Canary's target, the message saying so (this one must not act)."""
    meta = body.get("metadata") or {}
    key = _target_key(meta.get("namespace"), body.get("spec") or {})
    if key is None or key not in index:
        return None
    mine = (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))
    owners = sorted(tuple(entry) for entry in index[key])
    if not owners or owners[0] == mine:
        return None
    return (
        f"spec.targetRef: Deployment {key[0]}/{key[1]} is already managed by Canary {owners[0][1]}; "
        "one target can have only one Canary"
    )


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


def _write(patch: kopf.Patch, result: TickResult, current: Mapping[str, Any] | None = None) -> None:
    """Put the tick's status into kopf's patch; pass ``current`` (the stored ``.status``) to replace maps exactly."""
    if result.status_patch is not None:
        changes = status_patch(current, result.status_patch) if current is not None else result.status_patch
        for key, value in changes.items():
            patch.status[key] = value


def label_filter(selector: Sequence[tuple[str, str | None]]) -> dict[str, Any] | None:
    """kopf's ``labels=`` filter for ``OperatorConfig.selector`` (None: no filter; a None value: label present)."""
    if not selector:
        return None
    return {key: kopf.PRESENT if value is None else value for key, value in selector}


def register(registry: kopf.OperatorRegistry, tick_seconds: float, labels: Mapping[str, Any] | None = None) -> None:
    """Register the Canary handlers into ``registry`` with the operator's tick period.

    ``labels`` (kopf's label filter, see :func:`label_filter`): only objects with these labels are indexed, ticked
    and finalised, so several operators can share a cluster by label (``coalmine run --selector``).
    """

    @kopf.index(GROUP, VERSION, PLURAL, id="canaries_by_target", labels=labels, registry=registry)  # type: ignore[arg-type]
    def canaries_by_target(namespace: str, spec: Mapping[str, Any], meta: Mapping[str, Any], **_: Any) -> Any:
        key = _target_key(namespace, spec)
        if key is None:
            return None
        return {key: (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))}

    timer = kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="canary_tick",
        interval=tick_seconds,
        sharp=True,
        backoff=tick_seconds,
        labels=labels,
        registry=registry,
    )

    @timer  # type: ignore[arg-type]
    async def canary_tick(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, canaries_by_target: Any, **_: Any
    ) -> None:
        ctx: OperatorContext = memo["ctx"]
        if not body_is_current(ctx, body):
            return
        started = time.monotonic()
        result = await reconcile(ctx, body, time.time(), conflict=owner_conflict(body, canaries_by_target))
        _write(patch, result, body.get("status") or {})
        note_write(ctx, body, patch)
        meta = body.get("metadata") or {}
        status = {**dict(body.get("status") or {}), **(result.status_patch or {})}
        workload = (body.get("spec") or {}).get("targetRef", {}).get("name")
        ctx.metrics.observe_status(KIND, meta["name"], meta["namespace"], status, workload=workload)
        ctx.metrics.observe_tick(time.monotonic() - started)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="canary_deleted", labels=labels, registry=registry)
    async def canary_deleted(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        """Run ticks with ``deleting`` set until the engine releases the Canary (``revertOnDeletion`` restores)."""
        ctx: OperatorContext = memo["ctx"]
        result = await reconcile(ctx, body, time.time())
        _write(patch, result, body.get("status") or {})
        if not result.released:
            raise kopf.TemporaryError("restoring the target before the Canary goes", delay=ctx.config.tick_seconds)
        meta = body.get("metadata") or {}
        ctx.pending_writes.pop(str(meta.get("uid", "")), None)
        forget_spec(ctx, CANARY, body)
        ctx.metrics.forget(KIND, meta["name"], meta["namespace"])
