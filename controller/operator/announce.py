"""Tell people and systems what a tick decided: Kubernetes Events, ``event`` webhooks and alert notifications.

The sending helpers. *When* they run is :mod:`controller.operator.outbox`: a tick queues its Events in
``status.outbox`` together with its decision, and the next tick announces what it finds stored there, so nothing is
announced for a transition that was never persisted. Only Events that are not transitions (an invalid spec, a
failed action) are recorded at once with :func:`record_events`.

Every name and key is derived from the stored status a tick started from (:func:`tick_origin`), never from the
clock: an Event recorded again after a crash has the same name (the API answers 409 and nothing is recorded twice)
and a notification sent again has the same key, which the generic webhook sends as ``id`` for receivers to
de-duplicate a redelivery. Notifications are also remembered by key in ``status.notifications.sentKeys`` (written
with the outbox), so the same transition decided again from the same stored status is not queued twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

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
from controller.operator.credentials import check_credential_use, decode_secret
from controller.rollout.decision import Event, Reason
from controller.rollout.messages import MESSAGE_LIMIT, bounded, is_cut
from controller.rollout.outbox import OUTBOX_KEY, entry_id
from controller.rollout.spec import CanarySpec, HookType, WebhookSpec
from controller.rollout.status import CanaryStatus

log = logging.getLogger("coalmine.announce")
_background: set[asyncio.Task[None]] = set()


def spawn(coroutine: Any) -> asyncio.Task[None]:
    """Run ``coroutine`` in the background, keeping a reference so the task is not garbage-collected mid-flight."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def tick_origin(raw_status: Mapping[str, Any]) -> str:
    """A digest of the stored status a tick started from: the same for a tick repeated after a crash.

    The outbox is left out: it is the delivery queue, not the rollout's state, so a tick that only removed
    delivered entries (its own decision failed to act) leaves the next tick deciding from the same origin — the
    same Events get the same names and keys, exactly as for a tick repeated after a crash.
    """
    state = {key: value for key, value in raw_status.items() if key != OUTBOX_KEY}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def event_name(canary: Mapping[str, Any], origin: str, event: Event, occurrence: int) -> str:
    """A deterministic Event name: the Canary's name and a digest of (uid, tick origin, reason, occurrence)."""
    meta = canary.get("metadata") or {}
    return entry_event_name(canary, entry_id(str(meta.get("uid", "")), origin, event.reason, occurrence))


def entry_event_name(canary: Mapping[str, Any], entry: str) -> str:
    """The name of the Event recorded for outbox entry ``entry`` (an id): the Canary's name and the id."""
    return f"{(canary.get('metadata') or {}).get('name')}.{entry}"


def record_events(
    ctx: OperatorContext, canary: Mapping[str, Any], events: Sequence[Event], *, origin: str | None = None
) -> None:
    """Record Events on the Canary (blocking-style: from ``ctx.blocking``); a failure is logged, never fatal.

    With ``origin`` (:func:`tick_origin`) each Event gets a deterministic name and "already exists" means it was
    recorded by an earlier run of the same tick; without it the API generates the names.
    """
    seen: dict[str, int] = {}
    for event in events:
        occurrence = seen[event.reason.value] = seen.get(event.reason.value, -1) + 1
        record_event(ctx, canary, event, None if origin is None else event_name(canary, origin, event, occurrence))


def record_event(ctx: OperatorContext, canary: Mapping[str, Any], event: Event, name: str | None = None) -> bool:
    """Record one Event (blocking-style), named ``name`` if given. True if it is recorded now or was
    already (409: an earlier run recorded it); False if the API refused it (logged, never fatal)."""
    if is_cut(event.message):
        meta = canary.get("metadata") or {}
        log.warning(
            "%s/%s: Event %s cut to %d bytes; full text: %s",
            meta.get("namespace"),
            meta.get("name"),
            event.reason,
            MESSAGE_LIMIT,
            event.message,
        )
    try:
        body = build_event(
            canary,
            reason=event.reason.value,
            note=bounded(event.message),
            action=event.reason.value,
            type_=event.type.value,
            now=datetime.now(UTC),
            instance=ctx.config.instance,
        )
        if name is not None:
            body["metadata"] = {"name": name, "namespace": body["metadata"]["namespace"]}
        ctx.api.create(EVENTS, str(body["metadata"]["namespace"]), body)
    except ApiConflict:
        log.debug("Event %s (%s) was already recorded by an earlier run", name, event.reason)
    except KubeError as error:
        log.warning("could not record Event %s: %s", event.reason, error)
        return False
    return True


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
            check_credential_use(provider, "AlertProvider", provider_namespace, namespace)
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


async def deliver(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    status: CanaryStatus,
    target: Mapping[str, Any] | None,
    event: Event,
    key: str | None,
) -> None:
    """Send one Event's ``event`` webhooks and, with a ``key``, its notification; return when both are done.

    ``status`` is the stored status written together with the Event (phase, weight, revision and evidence in the
    messages); ``target`` the workload (its image). Each receiver is bounded by its timeout and retries, so this
    ends in bounded time; failures are logged and counted by the senders, never raised.
    """
    meta = canary.get("metadata") or {}
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    sends: list[Any] = []
    event_hooks = spec.analysis.hooks_of(HookType.EVENT)
    if event_hooks:
        payload = HookPayload(
            name=name,
            namespace=namespace,
            phase=status.phase.value,
            checksum=status.last_applied_spec or "",
            event=EventInfo(event.message, event.type.value, int(asyncio.get_running_loop().time() * 1000)),
        )
        sends.append(run_hooks(event_hooks, payload, client=ctx.http, secret=ctx.config.hook_secret))
    if key is not None:
        severity = severity_for(event.reason, event.type, status.phase.value)
        notifiers = await ctx.blocking(_notifiers, ctx, namespace, spec, severity)
        if notifiers:
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
                evidence=evidence_line(status.evidence),
                commands=action_commands(
                    name, namespace, status.phase.value, inconclusive=event.reason is Reason.INCONCLUSIVE_PAUSE
                ),
                key=key,
                kind=WorkloadKind.BLUE_GREEN if canary.get("kind") == WorkloadKind.BLUE_GREEN else WorkloadKind.CANARY,
            )
            sends.append(broadcast(notifiers, message))
    if sends:
        await asyncio.gather(*sends)
