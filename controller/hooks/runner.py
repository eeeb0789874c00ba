"""Calling webhooks: the effectful side of the engine's ``Probes.hooks`` → ``Observations.hooks`` round trip.

Semantics follow Flagger's ``pkg/controller/webhook.go`` exactly where it matters to receivers:

* POST of the JSON payload with ``Content-Type: application/json``;
* success is an HTTP status ``≤ 202`` (Flagger: ``if r.StatusCode > 202 { return error }``), so ``204 No Content``
  and every 3xx count as *failure* — redirects are not followed;
* ``timeout`` bounds each attempt, ``retries`` adds attempts for transport errors, 429 and 5xx (see
  :mod:`controller.hooks.retry`).

Where Coalmine differs on purpose: the hooks of one type run concurrently (Flagger calls them one by one, so one
slow gate delays the others), each attempt is also bounded by an ``asyncio`` deadline (``httpx`` timeouts bound
each read, not the whole call, so a receiver dripping bytes could otherwise hold the tick), and requests can be
signed (:mod:`controller.hooks.signing`). Nothing here raises on a bad receiver: every failure becomes a result.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from controller.hooks.payload import HookPayload, payload_body
from controller.hooks.retry import DEFAULT_RETRY, RetryPolicy, is_retryable_status
from controller.hooks.signing import signature_headers
from controller.rollout.observations import HookOutcome
from controller.rollout.spec import HookType, WebhookSpec

logger = logging.getLogger("coalmine.hooks")

MAX_SUCCESS_STATUS = 202
"""Flagger's rule: a webhook passed when it answered with a status of at most 202."""

_DETAIL_BYTES = 512


@dataclass(frozen=True)
class HookResult:
    """How one webhook answered, after its retries.

    ``status`` is None when no HTTP answer arrived (refused, reset, timed out); ``detail`` is then the error, else
    the start of the response body (what a gate says when it stays closed). ``attempts`` counts the requests sent.
    """

    name: str
    succeeded: bool
    status: int | None
    detail: str
    attempts: int

    def describe(self) -> str:
        answer = f"answered {self.status}" if self.status is not None else "did not answer"
        detail = f": {self.detail}" if self.detail else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.name!r} {answer}{tries}{detail}"


async def _attempt(
    client: httpx.AsyncClient, hook: WebhookSpec, body: bytes, headers: dict[str, str]
) -> tuple[int | None, str]:
    """One POST, bounded as a whole by the hook's timeout: (status, detail) — status None on no answer."""
    try:
        async with asyncio.timeout(hook.timeout_s):
            async with client.stream(
                "POST",
                hook.url,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(hook.timeout_s),
                follow_redirects=False,
            ) as response:
                chunks = bytearray()
                async for chunk in response.aiter_bytes():
                    chunks.extend(chunk)
                    if len(chunks) >= _DETAIL_BYTES:
                        break
                text = bytes(chunks[:_DETAIL_BYTES]).decode("utf-8", errors="replace").strip()
                return response.status_code, " ".join(text.split())
    except (TimeoutError, httpx.TimeoutException):
        return None, f"timed out after {hook.timeout_s:g}s"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
        return None, f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def call_hook(
    hook: WebhookSpec,
    payload: HookPayload,
    *,
    client: httpx.AsyncClient,
    secret: bytes | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    clock: Callable[[], float] | None = None,
) -> HookResult:
    """Call one webhook with its retries; never raises for anything the receiver or the network does.

    Each attempt is signed afresh (a new timestamp), so a retry after a long backoff still verifies.
    """
    body = payload_body(hook, payload)
    status: int | None = None
    detail = ""
    attempts = 0
    for attempt in range(max(0, hook.retries) + 1):
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers.update(signature_headers(body, secret, now=None if clock is None else clock()))
        attempts += 1
        status, detail = await _attempt(client, hook, body, headers)
        if status is not None and (status <= MAX_SUCCESS_STATUS or not is_retryable_status(status)):
            break
        if attempt < hook.retries:
            await asyncio.sleep(policy.delay(attempt))
    succeeded = status is not None and status <= MAX_SUCCESS_STATUS
    result = HookResult(hook.name, succeeded, status, detail, attempts)
    if not succeeded:
        logger.info(
            "%s hook %s for %s/%s",
            hook.type,
            result.describe(),
            payload.namespace,
            payload.name,
            extra={"namespace": payload.namespace, "canary": payload.name, "hook": hook.name},
        )
    return result


def combine(hook_type: HookType, results: Sequence[HookResult]) -> HookOutcome:
    """Pure: the engine's view of one hook type's results.

    For every type but ``rollback``: passed when all succeeded; the message names each failed hook. For
    ``rollback``: passed (= *a rollback is requested*) when any succeeded; the message names who asked.
    """
    if hook_type == HookType.ROLLBACK:
        asking = [result for result in results if result.succeeded]
        return HookOutcome(
            passed=bool(asking),
            message="; ".join(f"rollback hook {result.describe()}" for result in asking),
        )
    failed = [result for result in results if not result.succeeded]
    return HookOutcome(
        passed=not failed,
        message="; ".join(f"{hook_type} hook {result.describe()}" for result in failed),
    )


async def run_hooks(
    hooks: Sequence[WebhookSpec],
    payload: HookPayload,
    *,
    client: httpx.AsyncClient,
    secret: bytes | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> HookOutcome:
    """Run all hooks of one type concurrently and combine their answers (see :func:`combine`).

    All hooks must share a type (``AnalysisSpec.hooks_of(type)``); mixing types is a programming error. With no
    hooks the result is ``passed`` — nothing gates — and the engine only honours a ``rollback`` outcome when the
    spec has rollback hooks, so an empty call never requests a rollback in effect.
    """
    types = {hook.type for hook in hooks}
    if len(types) > 1:
        raise ValueError(f"run_hooks takes hooks of one type, got {sorted(types)}")
    if not hooks:
        return HookOutcome(passed=True)
    results = await asyncio.gather(
        *(call_hook(hook, payload, client=client, secret=secret, policy=policy) for hook in hooks)
    )
    return combine(types.pop(), results)
