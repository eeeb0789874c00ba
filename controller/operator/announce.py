"""Tell people and systems what a tick decided: Kubernetes Events, ``event`` webhooks and alert notifications.

Events are recorded synchronously (they are part of the tick's record); webhooks and notifications are sent in the
background with bounded retries and timeouts, so a slow or dead receiver never stalls this or any other Canary.
Notifications are de-duplicated by a key per transition kept in ``status.notifications.sentKeys``.

A tick's side effects happen before kopf writes its status, so an operator killed in between runs the same tick
again from the same stored status. Both keys are therefore derived from that stored status (:func:`tick_origin`),
not from the clock: the repeated tick gives its Events the same names (the API answers 409 and nothing is
recorded twice) and its notifications the same key, which the generic webhook sends as ``id`` for receivers to
de-duplicate a redelivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from analysis.verdict import Verdict
from controller.hooks import EventInfo, HookPayload, run_hooks
from controller.kube.api import ALERT_PROVIDERS, EVENTS, SECRETS
from controller.kube.errors import ApiConflict, KubeError
from controller.kube.objects import build_event
from controller.notify.config import ProviderConfig, provider_config
from controller.notify.dedup import dedup_key, remember
from controller.notify.delivery import Notifier, broadcast
from controller.notify.message import Notification, WorkloadKind, action_commands
from controller.notify.registry import build_notifier
from controller.notify.severity import alerts_for, is_muted, is_notable, severity_for
from controller.operator.context import OperatorContext
from controller.operator.looks import decode_secret
from controller.rollout.decision import Event
from controller.rollout.spec import CanarySpec, HookType, WebhookSpec
from controller.rollout.status import CanaryStatus

log = logging.getLogger("coalmine.announce")
_background: set[asyncio.Task[None]] = set()


DELIVERY_WAIT_S = 3.0
"""How long a tick waits for its notifications before writing its status (then they finish in the background)."""


def _spawn(coroutine: Any) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def tick_origin(raw_status: Mapping[str, Any]) -> str:
    """A digest of the stored status a tick started from: the same for a tick repeated after a crash."""
    return hashlib.sha256(json.dumps(raw_status, sort_keys=True, default=str).encode()).hexdigest()[:16]


def event_name(canary: Mapping[str, Any], origin: str, event: Event, occurrence: int) -> str:
    """A deterministic Event name: the Canary's name and a digest of (uid, tick origin, reason, occurrence)."""
    meta = canary.get("metadata") or {}
    material = "\x1f".join((str(meta.get("uid", "")), origin, event.reason.value, str(occurrence)))
    return f"{meta.get('name')}.{hashlib.sha256(material.encode()).hexdigest()[:16]}"


def record_events(
    ctx: OperatorContext, canary: Mapping[str, Any], events: Sequence[Event], *, origin: str | None = None
) -> None:
    """Record the tick's Events on the Canary (from a worker thread); a failure is logged, never fatal.

    With ``origin`` (:func:`tick_origin`) each Event gets a deterministic name and "already exists" means it was
    recorded by an earlier run of the same tick; without it the API generates the names.
    """
    seen: dict[str, int] = {}
    for event in events:
        occurrence = seen[event.reason.value] = seen.get(event.reason.value, -1) + 1
        try:
            body = build_event(
                canary,
                reason=event.reason.value,
                note=event.message,
                action=event.reason.value,
                type_=event.type.value,
                now=datetime.now(UTC),
                instance=ctx.config.instance,
            )
            if origin is not None:
                body["metadata"] = {
                    "name": event_name(canary, origin, event, occurrence),
                    "namespace": body["metadata"]["namespace"],
                }
            ctx.api.create(EVENTS, str(body["metadata"]["namespace"]), body)
        except ApiConflict:
            log.debug("Event %s was already recorded by an earlier run of this tick", event.reason)
        except KubeError as error:
            log.warning("could not record Event %s: %s", event.reason, error)


def evidence_line(verdict: Mapping[str, Any] | None) -> str:
    """The judge's one-line evidence for messages, from ``status.evidence`` (``Verdict.to_dict()``)."""
    if not verdict:
        return ""
    for metric in verdict.get("metrics") or ():
        if metric.get("outcome") in ("rejected", "fail"):
            return str(metric.get("reason", ""))
    return str(verdict.get("reason", ""))


def _image(target: Mapping[str, Any] | None) -> str:
    containers = (((target or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or ()
    return ", ".join(str(c.get("image", "")) for c in containers if isinstance(c, Mapping))


def _notifiers(ctx: OperatorContext, namespace: str, spec: CanarySpec, severity: Any) -> list[Notifier]:
    configs: list[tuple[str, ProviderConfig]] = []
    for alert in alerts_for(spec.analysis.alerts, severity):
        ref = alert.provider_ref
        provider_namespace = ref.namespace or namespace
        try:
            provider = ctx.api.get(ALERT_PROVIDERS, provider_namespace, ref.name)
            if provider is None:
                log.warning("AlertProvider %s/%s not found (alert %s)", provider_namespace, ref.name, alert.name)
                continue
            provider_spec = provider.get("spec") or {}
            secret_name = (provider_spec.get("secretRef") or {}).get("name")
            secret = ctx.api.get(SECRETS, provider_namespace, secret_name) if secret_name else None
            configs.append((alert.name, provider_config(provider_spec, decode_secret(secret))))
        except (KubeError, ValueError) as error:  # ValueError: ProviderConfigError, or a Secret with bad base64
            log.warning("alert %s: %s", alert.name, error)
    if not spec.analysis.alerts and ctx.config.default_alert is not None:
        configs.append(("default", ctx.config.default_alert))
    return [
        build_notifier(config, pool=ctx.alert_clients, stats=ctx.alert_stats, label=label) for label, config in configs
    ]


def notifications_to_send(
    canary: Mapping[str, Any],
    status: CanaryStatus,
    events: Sequence[Event],
    sent: Sequence[str],
    *,
    origin: str | None = None,
    webhooks: Sequence[WebhookSpec] = (),
) -> tuple[list[tuple[Event, str]], tuple[str, ...]]:
    """Which Events are notable and not yet sent (by dedup key), and the keys to remember in status.

    ``origin`` (:func:`tick_origin`) stands in for the new ``lastTransitionTime``, which a tick repeated after a
    crash would stamp differently: with it, the repeated tick computes the same keys. ``webhooks``: the Canary's,
    whose ``muteAlert`` silences the Events their failures cause (:func:`~controller.notify.severity.is_muted`)."""
    meta = canary.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    remembered = tuple(sent)
    chosen: list[tuple[Event, str]] = []
    for event in events:
        if not is_notable(event.reason) or is_muted(event, webhooks):
            continue
        key = dedup_key(
            uid,
            status.last_applied_spec or "",
            event.reason.value,
            status.phase.value,
            origin if origin is not None else str((status.to_dict() or {}).get("lastTransitionTime") or ""),
        )
        if key in remembered:
            continue
        remembered = remember(remembered, key)
        chosen.append((event, key))
    return chosen, remembered


async def announce(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    status: CanaryStatus,
    target: Mapping[str, Any] | None,
    events: Sequence[Event],
    notable: Sequence[tuple[Event, str]],
    verdict: Verdict | None,
) -> None:
    """Send ``event`` webhooks for every Event (in the background) and notifications for the notable ones.

    Notifications are awaited for up to :data:`DELIVERY_WAIT_S` before the tick goes on to write its status (with
    the keys in ``sentKeys``): an operator killed before that write repeats the tick and sends again with the
    same key, so a message is never lost to a crash (a receiver may see it twice, with the same ``id``). A slow
    receiver delays its own Canary's tick by at most that long; its delivery then completes in the background.
    """
    meta = canary.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    event_hooks = spec.analysis.hooks_of(HookType.EVENT)
    loop = asyncio.get_running_loop()
    for event in events:
        if event_hooks:
            payload = HookPayload(
                name=name,
                namespace=namespace,
                phase=status.phase.value,
                checksum=status.last_applied_spec or "",
                event=EventInfo(event.message, event.type.value, int(loop.time() * 1000)),
            )
            _spawn(run_hooks(event_hooks, payload, client=ctx.http, secret=ctx.config.hook_secret))
    if not notable:
        return
    evidence = evidence_line(status.evidence) or (verdict.reason if verdict else "")
    deliveries: list[asyncio.Task[None]] = []
    for event, key in notable:
        severity = severity_for(event.reason, event.type)
        notifiers = await asyncio.to_thread(_notifiers, ctx, namespace, spec, severity)
        if not notifiers:
            continue
        message = Notification(
            name=name,
            namespace=namespace,
            phase=status.phase.value,
            reason=event.reason.value,
            message=event.message,
            severity=severity,
            weight=status.canary_weight,
            revision=status.last_applied_spec or "",
            image=_image(target),
            evidence=evidence,
            commands=action_commands(name, namespace, status.phase.value),
            key=key,
            kind=WorkloadKind.BLUE_GREEN if canary.get("kind") == WorkloadKind.BLUE_GREEN else WorkloadKind.CANARY,
        )
        deliveries.append(_spawn(broadcast(notifiers, message)))
    if deliveries:
        await asyncio.wait(deliveries, timeout=DELIVERY_WAIT_S)
