"""The kopf registrations every rollout kind shares: a target index, a fixed-period tick, and deletion.

A ``@kopf.timer`` rather than a daemon: kopf applies the status patch after every call, so progress is persisted
tick by tick and a restarted operator resumes from status. The tick itself is
:func:`controller.operator.reconcile.reconcile` with the kind's :class:`~controller.rollout.kinds.Strategy`; who may
act on a target is :func:`controller.rollout.ownership.owner_conflict`. Handlers only move data between kopf and
those functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import kopf

from controller.operator.context import OperatorContext
from controller.operator.reconcile import TickResult, reconcile
from controller.operator.specs import forget_spec
from controller.operator.writes import body_is_current, note_write, status_patch
from controller.rollout.kinds import Strategy
from controller.rollout.ownership import index_entry, target_key

GROUP, VERSION = "coalmine.dev", "v1alpha1"

Conflict = Callable[[Mapping[str, Any], Mapping[str, Any]], str | None]
"""(body, kopf's handler kwargs with the indexes) → why this object must not act, or None."""


def label_filter(selector: Sequence[tuple[str, str | None]]) -> dict[str, Any] | None:
    """kopf's ``labels=`` filter for ``OperatorConfig.selector`` (None: no filter; a None value: label present)."""
    if not selector:
        return None
    return {key: kopf.PRESENT if value is None else value for key, value in selector}


def write_status(patch: kopf.Patch, result: TickResult, current: Mapping[str, Any] | None = None) -> None:
    """Put the tick's status into kopf's patch; pass ``current`` (the stored ``.status``) to replace maps exactly."""
    if result.status_patch is not None:
        changes = status_patch(current, result.status_patch) if current is not None else result.status_patch
        for key, value in changes.items():
            patch.status[key] = value


def register_kind(
    registry: kopf.OperatorRegistry,
    *,
    plural: str,
    strategy: Strategy[Any],
    index_id: str,
    conflict: Conflict,
    tick_seconds: float,
    labels: Mapping[str, Any] | None = None,
) -> None:
    """Register the index, tick and deletion handlers of one kind (``labels``: ``coalmine run --selector``)."""
    kind = strategy.kind

    def by_target(namespace: str, spec: Mapping[str, Any], meta: Mapping[str, Any], **_: Any) -> Any:
        key = target_key(namespace, spec)
        return None if key is None else {key: index_entry(meta)}

    kopf.index(GROUP, VERSION, plural, id=index_id, labels=labels, registry=registry)(by_target)  # type: ignore[arg-type]

    async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        ctx: OperatorContext = memo["ctx"]
        if not body_is_current(ctx, body):
            return
        started = time.monotonic()
        result = await reconcile(ctx, body, time.time(), conflict=conflict(body, kwargs), strategy=strategy)
        write_status(patch, result, body.get("status") or {})
        note_write(ctx, body, patch)
        meta = body.get("metadata") or {}
        status = {**dict(body.get("status") or {}), **(result.status_patch or {})}
        workload = (body.get("spec") or {}).get("targetRef", {}).get("name")
        ctx.metrics.observe_status(kind, meta["name"], meta["namespace"], status, workload=workload)
        ctx.metrics.observe_tick(time.monotonic() - started)

    kopf.timer(
        GROUP,
        VERSION,
        plural,
        id=f"{kind.lower()}_tick",
        interval=tick_seconds,
        sharp=True,
        backoff=tick_seconds,
        labels=labels,
        registry=registry,
    )(tick)

    async def deleted(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        """Run ticks with ``deleting`` set until the engine releases the object (``revertOnDeletion`` restores)."""
        ctx: OperatorContext = memo["ctx"]
        result = await reconcile(ctx, body, time.time(), strategy=strategy)
        write_status(patch, result, body.get("status") or {})
        if not result.released:
            raise kopf.TemporaryError(f"restoring the target before the {kind} goes", delay=ctx.config.tick_seconds)
        meta = body.get("metadata") or {}
        ctx.pending_writes.pop(str(meta.get("uid", "")), None)
        forget_spec(ctx, strategy, body)
        ctx.metrics.forget(kind, meta["name"], meta["namespace"])

    kopf.on.delete(GROUP, VERSION, plural, id=f"{kind.lower()}_deleted", labels=labels, registry=registry)(deleted)
