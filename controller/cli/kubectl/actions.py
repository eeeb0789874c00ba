"""Manual requests from the plugin: check the phase, write the annotation, wait for the operator's answer.

The plugin never changes a rollout itself — the operator is the only writer of ``status`` and of the workloads,
so a request is handled exactly once, in order with everything else the operator decides, and survives an
operator restart. The plugin's part is:

1. refuse at once, before writing anything, what the operator would certainly ignore in the current phase
   (:func:`precheck` mirrors ``controller.rollout.requests``), so a person gets a clear answer immediately;
2. write ``coalmine.dev/request`` (:mod:`controller.rollout.request_codec`) with a fresh id;
3. wait until ``status.lastRequestId`` is that id, then report the new phase — or, when the operator ignored it
   (a Warning Event ``ManualRequestIgnored`` naming the id), why. Exit codes: 0 handled, 1 ignored, 2 no answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from controller.cli.kubectl.access import Cluster, find_rollout, list_events, write_request
from controller.cli.kubectl.summary import EventRecord, events_about
from controller.rollout.moves import awaiting_approval
from controller.rollout.phases import ANALYSING, Hold, ManualAction, Phase
from controller.rollout.request_codec import REQUEST_ANNOTATION, decode_request, encode_request
from controller.rollout.spec import parse_canary_spec
from controller.rollout.status import CanaryStatus

IGNORED_REASON = "ManualRequestIgnored"
"""The Event reason the operator uses when a request makes no sense in the phase it finds the rollout in."""

Say = Callable[[str], None]


class RequestResult(IntEnum):
    """How a request ended; the value is the command's exit code."""

    HANDLED = 0
    IGNORED = 1
    NO_ANSWER = 2


@dataclass(frozen=True)
class RequestOutcome:
    """What the operator did with a request: the result, the phase afterwards, and what it said."""

    result: RequestResult
    request_id: str
    phase: str
    message: str
    events: tuple[EventRecord, ...] = ()


def precheck(action: ManualAction, obj: Mapping[str, Any]) -> str | None:
    """Why ``action`` cannot apply to ``obj`` in its current phase, or None if the operator may act on it.

    Mirrors the operator's rules so the two never disagree on a clear case; when the status cannot be read
    (another version's phase, say) nothing is refused here and the operator has the last word.
    """
    name = str((obj.get("metadata") or {}).get("name"))
    try:
        status = CanaryStatus.from_dict(obj.get("status"))
    except ValueError:
        return None
    phase = status.phase
    if action is ManualAction.PROMOTE:
        return _why_not_promote(name, status, _waiting_for_approval(obj, status))
    if action is ManualAction.PROMOTE_FULL:
        if phase in (Phase.WAITING, *ANALYSING):
            return None
        return f"nothing to promote: {name} is {phase}"
    if action is ManualAction.ABORT:
        if phase in (Phase.WAITING, *ANALYSING):
            return None
        if phase in (Phase.PROMOTING, Phase.FINALISING):
            return f"{name} is {phase}: the promotion is already under way and cannot be aborted"
        return f"nothing to abort: {name} is {phase}"
    if action is ManualAction.PAUSE:
        if status.paused_by_user:
            return f"{name} is already paused; resume it with: kubectl coalmine resume {name}"
        if status.paused_inconclusive:
            return f"{name} is already paused on weak evidence; promote, resume or abort it"
        if phase in (*ANALYSING, Phase.PROMOTING):
            return None
        return f"nothing to pause: {name} is {phase}"
    if action is ManualAction.RESUME:
        paused = status.paused_by_user or status.paused_inconclusive
        return None if paused else f"{name} is not paused (it is {phase})"
    if phase is not Phase.FAILED:
        return f"nothing to retry: {name} is {phase} (only a Failed rollout can be retried)"
    return None


def _waiting_for_approval(obj: Mapping[str, Any], status: CanaryStatus) -> bool | None:
    """Whether the engine would take a ``promote`` now (its own rule, from phase, step and gates); None if unknown
    (not a Canary, or a spec this version cannot parse) — then only the phase is checked and the operator decides."""
    if obj.get("kind") != "Canary":
        return None
    try:
        spec = parse_canary_spec(obj.get("spec") or {})
    except (KeyError, TypeError, ValueError):
        return None
    return awaiting_approval(spec, status, time.time()) is not None


def _why_not_promote(name: str, status: CanaryStatus, waiting: bool | None) -> str | None:
    phase, hold = status.phase, status.hold
    if phase is Phase.WAITING or waiting:
        return None
    if phase is Phase.WAITING_PROMOTION and (waiting is None or hold in (Hold.MANUAL_PAUSE, Hold.CONFIRM_PROMOTION)):
        return None
    if phase is Phase.PROGRESSING and hold is Hold.CONFIRM_TRAFFIC_INCREASE:
        return None
    if phase in ANALYSING:
        held = f" ({hold})" if hold else ""
        return (
            f"nothing is waiting for approval: {name} is {phase}{held}; "
            f"use 'kubectl coalmine promote {name} --full' to skip the remaining steps"
        )
    return f"nothing to promote: {name} is {phase}"


def pending_request(obj: Mapping[str, Any]) -> str | None:
    """The id of a request on ``obj`` the operator has not handled yet (it would be replaced by a new one)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    request = decode_request(annotations.get(REQUEST_ANNOTATION))
    last = str((obj.get("status") or {}).get("lastRequestId") or "")
    return request.id if request is not None and request.id != last else None


def send_request(
    cluster: Cluster,
    obj: Mapping[str, Any],
    action: ManualAction,
    *,
    wait_s: float,
    say: Say,
    poll_s: float = 0.5,
    grace_s: float = 1.0,
) -> RequestOutcome:
    """Write the request and (when ``wait_s`` > 0) wait for the operator to record it; see the module docstring.

    ``grace_s``: after ``status.lastRequestId`` shows the id, how long to keep looking for the operator's
    ``ManualRequestIgnored`` Event, which may be stored a moment after the status.
    """
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    stale = pending_request(obj)
    if stale is not None:
        say(f"note: replacing request {stale}, which the operator has not handled yet")
    sent_at = time.time()
    request_id, value = encode_request(action, cluster.user, sent_at)
    write_request(cluster, obj, value)
    say(f"{action} request {request_id} sent to {obj.get('kind', 'Canary')} {namespace}/{name}")
    if wait_s <= 0:
        return RequestOutcome(
            RequestResult.HANDLED, request_id, _phase(obj), "not waiting for the operator (--no-wait)"
        )
    deadline = time.monotonic() + wait_s
    current = obj
    while str((current.get("status") or {}).get("lastRequestId") or "") != request_id:
        if time.monotonic() >= deadline:
            return RequestOutcome(
                RequestResult.NO_ANSWER,
                request_id,
                _phase(current),
                f"the operator has not handled request {request_id} within {wait_s:g}s — is Coalmine running? "
                "The request stays on the object and is handled when the operator next looks at it.",
            )
        time.sleep(poll_s)
        current = find_rollout(cluster, namespace, name)
    return _answer(cluster, current, request_id, sent_at, time.monotonic() + grace_s, poll_s)


def _answer(
    cluster: Cluster, obj: Mapping[str, Any], request_id: str, sent_at: float, grace_until: float, poll_s: float
) -> RequestOutcome:
    meta = obj.get("metadata") or {}
    kind, namespace, name = str(obj.get("kind") or "Canary"), str(meta.get("namespace")), str(meta.get("name"))
    while True:
        events = events_about(list_events(cluster, namespace, kind, name), kind, name)
        ignored = [e for e in events if e.reason == IGNORED_REASON and request_id in e.message]
        if ignored:
            return RequestOutcome(RequestResult.IGNORED, request_id, _phase(obj), ignored[-1].message)
        if time.monotonic() >= grace_until:
            break
        time.sleep(min(poll_s, max(0.0, grace_until - time.monotonic())))
    status_message = str((obj.get("status") or {}).get("message") or "")
    if request_id in status_message:  # an operator that reports the refusal in status only
        return RequestOutcome(RequestResult.IGNORED, request_id, _phase(obj), status_message)
    recent = tuple(e for e in events if e.time is None or e.time >= sent_at - 1.0)
    return RequestOutcome(RequestResult.HANDLED, request_id, _phase(obj), status_message, recent)


def _phase(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("phase") or "Unknown")
