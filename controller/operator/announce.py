"""Tell people and systems what a tick decided: Kubernetes Events, ``event`` webhooks and alert notifications.

Events are recorded synchronously (they are part of the tick's record); webhooks and notifications are sent in the
background with bounded retries and timeouts, so a slow or dead receiver never stalls this or any other Canary.
Notifications are de-duplicated by a key per transition kept in ``status.notifications.sentKeys``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from analysis.verdict import Verdict
from controller.hooks import EventInfo, HookPayload, run_hooks
from controller.kube.api import ALERT_PROVIDERS, EVENTS, SECRETS
from controller.kube.errors import KubeError
from controller.kube.objects import build_event
from controller.notify.config import ProviderConfig, ProviderConfigError, provider_config
from controller.notify.dedup import dedup_key, remember
from controller.notify.delivery import Notifier, broadcast
from controller.notify.message import Notification, action_commands
from controller.notify.registry import build_notifier
from controller.notify.severity import alerts_for, is_notable, severity_for
from controller.operator.context import OperatorContext
from controller.operator.looks import decode_secret
from controller.rollout.decision import Event
from controller.rollout.spec import CanarySpec, HookType
from controller.rollout.status import CanaryStatus

log = logging.getLogger("coalmine.announce")
_background: set[asyncio.Task[None]] = set()


def _spawn(coroutine: Any) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)
    task.add_done_callback(_background.discard)


def record_events(ctx: OperatorContext, canary: Mapping[str, Any], events: Sequence[Event]) -> None:
    """Record the tick's Events on the Canary (from a worker thread); a failure is logged, never fatal."""
    for event in events:
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
            ctx.api.create(EVENTS, str(body["metadata"]["namespace"]), body)
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
        except (KubeError, ProviderConfigError) as error:
            log.warning("alert %s: %s", alert.name, error)
    if not spec.analysis.alerts and ctx.config.default_alert is not None:
        configs.append(("default", ctx.config.default_alert))
    return [
        build_notifier(config, pool=ctx.alert_clients, stats=ctx.alert_stats, label=label) for label, config in configs
    ]


def notifications_to_send(
    canary: Mapping[str, Any], status: CanaryStatus, events: Sequence[Event], sent: Sequence[str]
) -> tuple[list[tuple[Event, str]], tuple[str, ...]]:
    """Which Events are notable and not yet sent (by dedup key), and the keys to remember in status."""
    meta = canary.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    remembered = tuple(sent)
    chosen: list[tuple[Event, str]] = []
    for event in events:
        if not is_notable(event.reason):
            continue
        key = dedup_key(
            uid,
            status.last_applied_spec or "",
            event.reason.value,
            status.phase.value,
            str((status.to_dict() or {}).get("lastTransitionTime") or ""),
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
    """Send ``event`` webhooks for every Event and notifications for the notable ones, in the background."""
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
    for event, _key in notable:
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
        )
        _spawn(broadcast(notifiers, message))
