"""The factory keyed by ``AlertProvider.spec.type`` (Flagger's notifier factory, as a table)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from controller.hooks.retry import DEFAULT_RETRY, RetryPolicy
from controller.notify.cards import render_discord, render_gchat, render_msteams
from controller.notify.config import ProviderConfig, ProviderType
from controller.notify.delivery import ClientPool, DeliveryStats, HttpNotifier, Renderer
from controller.notify.generic import render_webhook
from controller.notify.slack import render_rocket, render_slack

RENDERERS: Mapping[ProviderType, Renderer] = MappingProxyType(
    {
        ProviderType.SLACK: render_slack,
        ProviderType.MSTEAMS: render_msteams,
        ProviderType.DISCORD: render_discord,
        ProviderType.GCHAT: render_gchat,
        ProviderType.ROCKET: render_rocket,
        ProviderType.WEBHOOK: render_webhook,
    }
)


def build_notifier(
    config: ProviderConfig,
    *,
    pool: ClientPool,
    stats: DeliveryStats,
    label: str = "",
    attempts: int = 3,
    timeout_s: float = 5.0,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> HttpNotifier:
    """A notifier for ``config``, using the pool's client for its proxy. Every ProviderType has a renderer."""
    return HttpNotifier(
        config,
        RENDERERS[config.type],
        client=pool.get(config.proxy),
        stats=stats,
        label=label,
        attempts=attempts,
        timeout_s=timeout_s,
        policy=policy,
    )
