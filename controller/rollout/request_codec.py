"""The wire format of a manual request: one JSON annotation on the Canary (or BlueGreen).

``kubectl coalmine promote|abort|…`` writes ``coalmine.dev/request`` with a merge patch of
``metadata.annotations`` only — never ``spec``, so a Canary kept in Git shows no drift (Argo CD and Flux ignore
annotations they do not own). The operator decodes it each tick into :class:`ManualRequest`, handles each ``id``
once and records it in ``status.lastRequestId``; that is how the sender learns it was seen.

Both halves import this module so they cannot disagree on the format. Decoding is deliberately forgiving: the
annotation is user-writable, and a hand-edited or garbled value must never break a reconcile — it is simply not a
request (``None``).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from controller.rollout.observations import ManualRequest
from controller.rollout.phases import ManualAction
from controller.rollout.status import format_time, parse_time

REQUEST_ANNOTATION = "coalmine.dev/request"
"""The annotation that carries the latest manual request (only the latest: a newer request replaces it)."""


def encode_request(action: ManualAction, by: str, now: float) -> tuple[str, str]:
    """A fresh request: its new unique id, and the annotation value (compact JSON) to write.

    ``by`` names the sender for Events and audits (the kubeconfig user when known, else empty); ``now`` is epoch
    seconds, written as RFC3339 UTC.
    """
    request_id = str(uuid.uuid4())
    body = {"id": request_id, "action": action.value, "at": format_time(now), "by": by}
    return request_id, json.dumps(body, separators=(",", ":"), sort_keys=True)


def decode_request(text: str | None) -> ManualRequest | None:
    """The request in an annotation value, or ``None`` when it is missing, not JSON, or not a valid request.

    A request needs a non-empty string ``id`` and a known ``action``; an unreadable ``at`` reads as 0 rather than
    discarding an otherwise clear request.
    """
    if not text:
        return None
    try:
        raw: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None
    request_id, action = raw.get("id"), raw.get("action")
    if not isinstance(request_id, str) or not request_id.strip() or not isinstance(action, str):
        return None
    try:
        manual_action = ManualAction(action)
    except ValueError:
        return None
    return ManualRequest(id=request_id.strip(), action=manual_action, at=_time_or_zero(raw.get("at")))


def request_sender(text: str | None) -> str:
    """The ``by`` field of an annotation value ("" when absent or unreadable), for Events that name the sender."""
    try:
        raw: Any = json.loads(text or "")
    except ValueError:
        return ""
    by = raw.get("by") if isinstance(raw, dict) else None
    return by if isinstance(by, str) else ""


def request_patch(value: str) -> dict[str, Any]:
    """The JSON merge patch that stores ``value`` as the request annotation and touches nothing else."""
    return {"metadata": {"annotations": {REQUEST_ANNOTATION: value}}}


def _time_or_zero(raw: Any) -> float:
    if not isinstance(raw, str):
        return 0.0
    try:
        return parse_time(raw)
    except ValueError:
        return 0.0
