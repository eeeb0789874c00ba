"""The JSON body a webhook receives, exactly Flagger's ``CanaryWebhookPayload``.

Receivers written for Flagger (flagger-loadtester, approval gates, chat bridges) parse
``{name, namespace, phase, checksum, metadata}``; keeping the shape lets them work with Coalmine unchanged.
Building the body is pure; sending it is :mod:`controller.hooks.runner`'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from controller.rollout.spec import HookType, WebhookSpec


@dataclass(frozen=True)
class EventInfo:
    """The Kubernetes Event an ``event`` hook reports (Flagger's ``eventMessage``/``eventType``/``timestamp``).

    ``timestamp_ms`` is fixed when the Event is recorded, not when it is sent, so retries carry the same body.
    """

    message: str
    type: str  # "Normal" | "Warning"
    timestamp_ms: int


@dataclass(frozen=True)
class HookPayload:
    """What every hook of one tick is told: which Canary, its phase, and which revision (``checksum``).

    ``checksum`` identifies the revision under test (the target's pod-template hash), so a receiver can tell a
    retried call for the same revision from a call for a new one. ``event`` is set only for ``event`` hooks.
    """

    name: str
    namespace: str
    phase: str
    checksum: str = ""
    event: EventInfo | None = None


_SENT_AS_PROGRESSING = frozenset(
    {
        HookType.CONFIRM_ROLLOUT,
        HookType.PRE_ROLLOUT,
        HookType.ROLLOUT,
        HookType.CONFIRM_TRAFFIC_INCREASE,
        HookType.CONFIRM_PROMOTION,
    }
)


def hook_phase(hook_type: HookType, current_phase: str) -> str:
    """The ``phase`` Flagger puts in the payload: gates and checks always say ``Progressing`` (even while the
    Canary is ``Waiting``); ``post-rollout``, ``rollback`` and ``event`` hooks get the Canary's current phase, so a
    post-rollout receiver can tell ``Succeeded`` from ``Failed``.
    """
    return "Progressing" if hook_type in _SENT_AS_PROGRESSING else current_phase


def payload_dict(hook: WebhookSpec, payload: HookPayload) -> dict[str, Any]:
    """The payload as a dict for one hook: its own ``metadata`` merged in.

    For ``event`` hooks the event keys come first and the hook's metadata cannot override them (as in Flagger),
    so a receiver can always trust ``eventMessage`` and ``eventType``.
    """
    metadata: dict[str, str] = {}
    if hook.type == HookType.EVENT and payload.event is not None:
        metadata = {
            "eventMessage": payload.event.message,
            "eventType": payload.event.type,
            "timestamp": str(payload.event.timestamp_ms),
        }
    for key, value in hook.metadata.items():
        metadata.setdefault(key, value)
    return {
        "name": payload.name,
        "namespace": payload.namespace,
        "phase": payload.phase,
        "checksum": payload.checksum,
        "metadata": metadata,
    }


def payload_body(hook: WebhookSpec, payload: HookPayload) -> bytes:
    """The exact bytes POSTed (and signed): compact JSON, keys in a stable order."""
    return json.dumps(payload_dict(hook, payload), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
