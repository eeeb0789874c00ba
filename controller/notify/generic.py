"""The generic JSON webhook body: a documented, versioned schema for your own receivers (pure rendering).

Unlike chat formats this one is an API: fields are only ever added under the same ``apiVersion``. Requests are
signed with the provider's ``token`` (see :mod:`controller.hooks.signing`) so receivers can trust them.
"""

from __future__ import annotations

from typing import Any

from controller.notify.config import ProviderConfig
from controller.notify.message import Notification

API_VERSION = "coalmine.dev/v1alpha1"


def render_webhook(message: Notification, config: ProviderConfig) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Notification",
        "workload": {"kind": str(message.kind), "name": message.name, "namespace": message.namespace},
        "phase": str(message.phase),
        "weight": message.weight,
        "revision": message.revision,
        "image": message.image,
        "reason": message.reason,
        "message": message.message,
        "severity": str(message.severity),
        "evidence": message.evidence,
        "commands": list(message.commands),
        "id": message.key,  # one per transition: a receiver that has seen it may drop a redelivery
    }
