"""Run a tick's webhooks so that they never outlast a person's abort or the rollout's progress deadline.

A webhook may take up to 15 minutes per attempt with up to 10 retries, and the tick that calls it waits. Two things
must not wait with it:

- **An abort.** ``kubectl coalmine abort`` is a request annotation the next tick reads; a tick stuck in a retrying
  gate would hold the traffic on the canary for as long as the retries last. So a tick with an abort pending runs
  no hooks at all (the engine handles the request first and rolls back), and while hooks run, the Canary is
  re-read from the watch cache every ``poll_s``: when an abort arrives, the hooks are cancelled and the tick ends
  without deciding, so the next tick — a moment later — rolls back.
- **The progress deadline.** The hooks of one tick get at most the time left before the rollout's deadline
  (``progressDeadlineSeconds``, at least two intervals, counted from the last progress), but always enough for
  one attempt of each (its ``timeout``, plus ``SLACK_S``): a gate must be able to answer once. Hooks still
  retrying then are stopped and count as failed with a message saying so, so the rollout's own rules (failed
  checks, the deadline) act as they would without them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from controller.kube.api import BLUEGREENS, CANARIES
from controller.kube.errors import KubeError
from controller.operator.context import OperatorContext
from controller.rollout.moves import effective_deadline
from controller.rollout.observations import HookOutcome
from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import REQUEST_ANNOTATION, decode_request
from controller.rollout.spec import CanarySpec, HookType
from controller.rollout.status import CanaryStatus

SLACK_S = 1.0
"""Added to the longest single attempt: connecting and reading the answer take a moment beyond the timeout."""

POLL_S = 0.5


class Aborted(Exception):
    """An abort request arrived while the hooks ran: the tick ends without a decision."""


def abort_pending(canary: Mapping[str, Any], status: CanaryStatus) -> bool:
    """True when the object carries an abort request the engine has not handled yet."""
    annotations = (canary.get("metadata") or {}).get("annotations") or {}
    request = decode_request(annotations.get(REQUEST_ANNOTATION))
    return request is not None and request.action is ManualAction.ABORT and request.id != status.last_request_id


def hook_budget(spec: CanarySpec, status: CanaryStatus, now: float, types: tuple[HookType, ...]) -> float:
    """Seconds the hooks of this tick may take: what is left of the progress deadline, but at least one attempt."""
    one_attempt = max((hook.timeout_s for t in types for hook in spec.analysis.hooks_of(t)), default=0.0) + SLACK_S
    since = status.progress_time if status.progress_time is not None else status.last_transition_time
    left = effective_deadline(spec) - (now - since) if since is not None else effective_deadline(spec)
    return max(one_attempt, left)


async def run_bounded(
    ctx: OperatorContext,
    canary: Mapping[str, Any],
    status: CanaryStatus,
    types: tuple[HookType, ...],
    budget_s: float,
    run: Callable[[HookType], Awaitable[HookOutcome]],
    *,
    poll_s: float = POLL_S,
) -> dict[HookType, HookOutcome]:
    """Run ``run(type)`` for each type concurrently, within ``budget_s``; raises :class:`Aborted` (see module doc)."""
    if not types:
        return {}
    if abort_pending(canary, status):
        return {}
    outcomes: dict[HookType, HookOutcome] = {}

    async def one(hook_type: HookType) -> None:
        outcomes[hook_type] = await run(hook_type)

    hooks: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(one(hook_type) for hook_type in types)))
    watcher: asyncio.Future[Any] = asyncio.ensure_future(_abort_arrives(ctx, canary, status, poll_s))
    try:
        done, _ = await asyncio.wait({hooks, watcher}, timeout=budget_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not hooks.done():
            hooks.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hooks
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if watcher in done and hooks not in done:
        raise Aborted()
    failure = hooks.exception() if hooks in done else None
    if failure is not None:
        raise failure  # a programming error in a hook runner: not swallowed
    late = f"still retrying after {budget_s:.0f}s (the time left before the progress deadline): stopped"
    return {hook_type: outcomes.get(hook_type, HookOutcome(passed=False, message=late)) for hook_type in types}


async def _abort_arrives(ctx: OperatorContext, canary: Mapping[str, Any], status: CanaryStatus, poll_s: float) -> None:
    meta = canary.get("metadata") or {}
    resource = BLUEGREENS if canary.get("kind") == "BlueGreen" else CANARIES
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    while True:
        await asyncio.sleep(poll_s)
        try:
            current = await ctx.blocking(ctx.api.get, resource, namespace, name)
        except KubeError:
            continue  # the API is flaky: keep the hooks running, look again
        if current is not None and abort_pending(current, status):
            return
