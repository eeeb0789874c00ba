"""kopf registrations for BlueGreens: a fixed-period tick, a target index, and deletion — the Canary's handlers
(:mod:`controller.handlers.canary`) with the BlueGreen strategy, so both kinds are reconciled by the same shell.

One Deployment has one owner: a BlueGreen whose target is already managed by a Canary, or by an older BlueGreen,
touches nothing and says so in its status (the Canary wins because its objects would otherwise be fought over).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import kopf

from controller.handlers.canary import _target_key, _write, body_is_current, note_write, owner_conflict
from controller.operator.context import OperatorContext
from controller.operator.reconcile import reconcile
from controller.operator.specs import forget_spec
from controller.rollout.kinds import BLUEGREEN

GROUP, VERSION, PLURAL = "coalmine.dev", "v1alpha1", "bluegreens"
KIND = "BlueGreen"


def bluegreen_conflict(
    body: Mapping[str, Any], bluegreens: Mapping[Any, Any], canaries: Mapping[Any, Any]
) -> str | None:
    """Why this BlueGreen must not act: a Canary, or an older BlueGreen, already manages its target."""
    meta = body.get("metadata") or {}
    key = _target_key(meta.get("namespace"), body.get("spec") or {})
    if key is not None and key in canaries and list(canaries[key]):
        owner = sorted(tuple(entry) for entry in canaries[key])[0][1]
        return (
            f"spec.targetRef: Deployment {key[0]}/{key[1]} is already managed by Canary {owner}; "
            "one target can have only one Canary or BlueGreen"
        )
    conflict = owner_conflict(body, bluegreens)
    return (
        None
        if conflict is None
        else conflict.replace("by Canary", "by BlueGreen").replace("only one Canary", "only one Canary or BlueGreen")
    )


def register(registry: kopf.OperatorRegistry, tick_seconds: float, labels: Mapping[str, Any] | None = None) -> None:
    """Register the BlueGreen handlers into ``registry`` with the operator's tick period.

    ``labels`` (kopf's label filter, see :func:`controller.handlers.canary.label_filter`): only objects with these
    labels are indexed, ticked and finalised, so several operators can share a cluster by label
    (``coalmine run --selector``).
    """

    @kopf.index(GROUP, VERSION, PLURAL, id="bluegreens_by_target", labels=labels, registry=registry)  # type: ignore[arg-type]
    def bluegreens_by_target(namespace: str, spec: Mapping[str, Any], meta: Mapping[str, Any], **_: Any) -> Any:
        key = _target_key(namespace, spec)
        if key is None:
            return None
        return {key: (str(meta.get("creationTimestamp", "")), str(meta.get("name", "")))}

    timer = kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="bluegreen_tick",
        interval=tick_seconds,
        sharp=True,
        backoff=tick_seconds,
        labels=labels,
        registry=registry,
    )

    @timer  # type: ignore[arg-type]
    async def bluegreen_tick(
        body: kopf.Body,
        patch: kopf.Patch,
        memo: kopf.Memo,
        bluegreens_by_target: Any,
        canaries_by_target: Any,
        **_: Any,
    ) -> None:
        ctx: OperatorContext = memo["ctx"]
        if not body_is_current(ctx, body):
            return
        started = time.monotonic()
        conflict = bluegreen_conflict(body, bluegreens_by_target, canaries_by_target)
        result = await reconcile(ctx, body, time.time(), conflict=conflict, strategy=BLUEGREEN)
        _write(patch, result, body.get("status") or {})
        note_write(ctx, body, patch)
        meta = body.get("metadata") or {}
        status = {**dict(body.get("status") or {}), **(result.status_patch or {})}
        workload = (body.get("spec") or {}).get("targetRef", {}).get("name")
        ctx.metrics.observe_status(KIND, meta["name"], meta["namespace"], status, workload=workload)
        ctx.metrics.observe_tick(time.monotonic() - started)

    @kopf.on.delete(GROUP, VERSION, PLURAL, id="bluegreen_deleted", labels=labels, registry=registry)
    async def bluegreen_deleted(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
        """Run ticks with ``deleting`` set until the engine releases the BlueGreen (``revertOnDeletion`` restores)."""
        ctx: OperatorContext = memo["ctx"]
        result = await reconcile(ctx, body, time.time(), strategy=BLUEGREEN)
        _write(patch, result, body.get("status") or {})
        if not result.released:
            raise kopf.TemporaryError("restoring the target before the BlueGreen goes", delay=ctx.config.tick_seconds)
        meta = body.get("metadata") or {}
        ctx.pending_writes.pop(str(meta.get("uid", "")), None)
        forget_spec(ctx, BLUEGREEN, body)
        ctx.metrics.forget(KIND, meta["name"], meta["namespace"])
