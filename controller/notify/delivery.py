"""Posting rendered notifications: bounded retries, timeouts, counting — and never raising into the rollout.

A chat outage must not stall or fail a rollout, so :meth:`HttpNotifier.post` swallows every delivery failure
after logging and counting it (:class:`DeliveryStats`, which the operator can export as metrics). Each attempt is
bounded by ``timeout_s`` as a whole; attempts and backoff are bounded, so a post ends in bounded time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

from controller.hooks.retry import DEFAULT_RETRY, RetryPolicy, is_retryable_status
from controller.hooks.signing import signature_headers
from controller.notify.cards import discord_address
from controller.notify.config import ProviderConfig, ProviderType
from controller.notify.message import Notification

logger = logging.getLogger("coalmine.notify")

Renderer = Callable[[Notification, ProviderConfig], dict[str, Any]]


class Notifier(Protocol):
    """Anything that can deliver a notification; ``post`` must not raise for delivery failures."""

    async def post(self, message: Notification) -> None: ...


class DeliveryStats:
    """Per provider type: messages delivered, messages given up on, and extra attempts (retries).

    One instance per operator (kept in kopf's ``memo``), shared by all notifiers; plain counters so any metrics
    library can export them.
    """

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {"sent": dict(self.sent), "failed": dict(self.failed), "retries": dict(self.retries)}


class ClientPool:
    """One ``httpx.AsyncClient`` per proxy (httpx binds a proxy to a client), created on first use."""

    def __init__(self, factory: Callable[[str | None], httpx.AsyncClient] | None = None) -> None:
        self._factory = factory or (lambda proxy: httpx.AsyncClient(proxy=proxy))
        self._clients: dict[str | None, httpx.AsyncClient] = {}

    def get(self, proxy: str | None) -> httpx.AsyncClient:
        if proxy not in self._clients:
            self._clients[proxy] = self._factory(proxy)
        return self._clients[proxy]

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class DeliveryError(Exception):
    """Internal: one attempt failed; ``retryable`` says whether asking again could help."""

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable


class HttpNotifier:
    """Renders a notification for one provider and POSTs it as JSON; success is any 2xx answer.

    ``label`` names the provider in logs (e.g. ``"test/slack-alerts"``) — never the address, which is a secret.
    """

    def __init__(
        self,
        config: ProviderConfig,
        render: Renderer,
        *,
        client: httpx.AsyncClient,
        stats: DeliveryStats,
        label: str = "",
        attempts: int = 3,
        timeout_s: float = 5.0,
        policy: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.config = config
        self._render = render
        self._client = client
        self._stats = stats
        self.label = label or str(config.type)
        self._attempts = max(1, attempts)
        self._timeout_s = timeout_s
        self._policy = policy

    def request(self, message: Notification) -> tuple[str, bytes, dict[str, str]]:
        """Pure: the URL, body and headers one attempt sends (signature headers are made per attempt)."""
        body = json.dumps(self._render(message, self.config), ensure_ascii=False, separators=(",", ":"))
        headers = {"Content-Type": "application/json"}
        if self.config.type == ProviderType.SLACK and self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        url = self.config.address
        if self.config.type == ProviderType.DISCORD:
            url = discord_address(url)
        return url, body.encode("utf-8"), headers

    async def _attempt(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        if self.config.type == ProviderType.WEBHOOK and self.config.token:
            headers = {**headers, **signature_headers(body, self.config.token.encode("utf-8"))}
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(
                    url, content=body, headers=headers, timeout=httpx.Timeout(self._timeout_s)
                )
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryError(f"timed out after {self._timeout_s:g}s", retryable=True) from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            raise DeliveryError(type(error).__name__, retryable=True) from None
        if not response.is_success:
            raise DeliveryError(f"answered {response.status_code}", retryable=is_retryable_status(response.status_code))
        if self.config.type == ProviderType.SLACK and self.config.token:
            # Slack's Web API answers 200 with {"ok": false, "error": ...} when it refuses a message.
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            if not isinstance(answer, dict) or answer.get("ok") is not True:
                why = answer.get("error", "no ok in answer") if isinstance(answer, dict) else "unexpected answer"
                raise DeliveryError(f"Slack API refused: {why}", retryable=False)

    async def post(self, message: Notification) -> None:
        """Deliver with bounded retries; log and count a final failure instead of raising it."""
        kind = str(self.config.type)
        try:
            url, body, headers = self.request(message)
        except Exception:
            self._stats.failed[kind] += 1
            logger.exception("cannot render %s notification for %s via %s", message.reason, message.target, self.label)
            return
        for attempt in range(self._attempts):
            try:
                await self._attempt(url, body, headers)
            except DeliveryError as error:
                last_attempt = attempt + 1 >= self._attempts
                if last_attempt or not error.retryable:
                    self._stats.failed[kind] += 1
                    logger.warning(
                        "notification %s for %s via %s failed after %d attempt(s): %s",
                        message.reason, message.target, self.label, attempt + 1, error,
                        extra={"namespace": message.namespace, "canary": message.name, "provider": self.label},
                    )  # fmt: skip
                    return
                self._stats.retries[kind] += 1
                await asyncio.sleep(self._policy.delay(attempt))
            else:
                self._stats.sent[kind] += 1
                return


async def broadcast(notifiers: Sequence[Notifier], message: Notification) -> None:
    """Post one message to several providers concurrently; a slow provider does not delay the others."""
    await asyncio.gather(*(notifier.post(message) for notifier in notifiers))
