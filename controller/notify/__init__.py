"""Notifications for people (AlertProvider): what changed, how severe, the evidence, and the commands to act.

Pure parts: :class:`Notification`, severity routing (:func:`should_send`, :func:`severity_for`), per-provider
rendering, :func:`dedup_key`. Effectful: :class:`HttpNotifier` (via :func:`build_notifier`). See
``docs/notifications.md``.
"""

from controller.notify.config import (
    DEFAULT_USERNAME,
    ProviderConfig,
    ProviderConfigError,
    ProviderType,
    provider_config,
)
from controller.notify.dedup import DEFAULT_REMEMBERED, dedup_key, remember
from controller.notify.delivery import ClientPool, DeliveryStats, HttpNotifier, Notifier, Renderer, broadcast
from controller.notify.message import Notification, WorkloadKind, action_commands
from controller.notify.registry import RENDERERS, build_notifier
from controller.notify.severity import (
    NOTIFY_REASONS,
    alerts_for,
    is_notable,
    severity_for,
    should_send,
)

__all__ = [
    "DEFAULT_REMEMBERED",
    "DEFAULT_USERNAME",
    "NOTIFY_REASONS",
    "RENDERERS",
    "ClientPool",
    "DeliveryStats",
    "HttpNotifier",
    "Notification",
    "Notifier",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderType",
    "Renderer",
    "WorkloadKind",
    "action_commands",
    "alerts_for",
    "broadcast",
    "build_notifier",
    "dedup_key",
    "is_notable",
    "provider_config",
    "remember",
    "severity_for",
    "should_send",
]
