"""``kubectl coalmine status``: wait for a rollout to end, for CI pipelines (exit 0 Succeeded, 1 Failed, 2 timeout).

A pipeline typically applies a new image and then runs ``status`` at once — before the operator has noticed the
new revision, while the Canary still says ``Succeeded`` from the previous release. Answering 0 then would let a
bad release through, so a steady phase only counts when the target Deployment's pod template is the revision the
status is about (``status.lastAppliedSpec``); otherwise the rollout is *pending* and the wait goes on. When the
Deployment cannot be read (no RBAC for it), the phase is taken as it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from controller.cli.kubectl.access import Cluster, PluginError, find_rollout, target_revision
from controller.cli.kubectl.summary import summarize

Say = Callable[[str], None]


class WaitResult(IntEnum):
    """How ``status`` ended; the value is its exit code."""

    SUCCEEDED = 0
    FAILED = 1
    TIMED_OUT = 2


_GOOD = frozenset({"Succeeded", "Initialized"})
_BAD = frozenset({"Failed", "Terminated"})


@dataclass(frozen=True)
class WaitOutcome:
    result: WaitResult
    phase: str
    message: str


def rollout_pending(obj: Mapping[str, Any], revision: str | None) -> bool:
    """True when the target's current pod template is not the revision ``status`` describes (not picked up yet)."""
    applied = str((obj.get("status") or {}).get("lastAppliedSpec") or "")
    return revision is not None and bool(applied) and revision != applied


def describe_state(obj: Mapping[str, Any]) -> str:
    """``Progressing, weight 20%, step 2/5, 0 failed checks: <message>`` — one line per change."""
    summary = summarize(obj)
    parts = [summary.phase, f"weight {summary.weight}%"]
    if summary.steps:
        parts.append(f"step {summary.step_text}")
    if summary.failed_checks or summary.no_data_checks:
        parts.append(f"{summary.failed_checks} failed / {summary.no_data_checks} no-data checks")
    if summary.hold:
        parts.append(f"holding: {summary.hold}")
    text = ", ".join(parts)
    return f"{text}: {summary.message}" if summary.message else text


def wait_for_rollout(
    cluster: Cluster, namespace: str, name: str, *, timeout_s: float, say: Say, poll_s: float = 1.0
) -> WaitOutcome:
    """Poll until the rollout of the current revision ends or ``timeout_s`` passes, reporting each change."""
    deadline = time.monotonic() + timeout_s
    last_line, pending_said = "", False
    while True:
        try:
            obj = find_rollout(cluster, namespace, name)
        except PluginError as exc:
            if last_line and "no Canary or BlueGreen" in str(exc):
                return WaitOutcome(WaitResult.FAILED, "Deleted", f"{name} was deleted while waiting")
            raise
        line = describe_state(obj)
        if line != last_line:
            say(f"{time.strftime('%H:%M:%S')} {name}: {line}")
            last_line = line
        phase = str((obj.get("status") or {}).get("phase") or "")
        if phase in _GOOD or phase in _BAD:
            if not rollout_pending(obj, target_revision(cluster, obj)):
                message = str((obj.get("status") or {}).get("message") or "")
                result = WaitResult.SUCCEEDED if phase in _GOOD else WaitResult.FAILED
                return WaitOutcome(result, phase, message)
            if not pending_said:
                say(f"{name}: the target has a new revision the operator has not picked up yet; waiting")
                pending_said = True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return WaitOutcome(WaitResult.TIMED_OUT, phase or "Unknown", line)
        time.sleep(min(poll_s, remaining))
