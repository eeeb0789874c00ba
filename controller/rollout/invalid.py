"""The status of a Canary Coalmine refuses to act on (invalid spec, missing target kind, two Canaries on one target).

Pure. Nothing else in status changes — an invalid edit of a Canary mid-rollout freezes it where it was, traffic
untouched, until the spec is fixed; the conditions say why in kstatus' terms (``Ready=False``, ``Stalled=True``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.rollout.status import format_time

INVALID_SPEC = "InvalidSpec"


def invalid_status_patch(status: Mapping[str, Any] | None, message: str, generation: int, now: float) -> dict[str, Any]:
    """A status patch with Ready=False/Stalled=True (reason InvalidSpec) and the message naming the fields."""
    previous = {c.get("type"): c for c in (status or {}).get("conditions") or () if isinstance(c, Mapping)}
    stamp = format_time(float(int(now)))
    wanted = (("Ready", "False"), ("Stalled", "True"), ("Reconciling", "False"))
    conditions = [dict(c) for t, c in previous.items() if t not in {"Ready", "Stalled", "Reconciling"}]
    for type_, state in wanted:
        old = previous.get(type_) or {}
        since = old.get("lastTransitionTime") if old.get("status") == state and old.get("lastTransitionTime") else stamp
        conditions.append(
            {
                "type": type_,
                "status": state,
                "reason": INVALID_SPEC,
                "message": message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return {"conditions": conditions, "observedGeneration": generation, "message": message}


def is_reported(status: Mapping[str, Any] | None, message: str) -> bool:
    """True when status already reports exactly this problem (so the Warning Event is not repeated every tick)."""
    for condition in (status or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition.get("reason") == INVALID_SPEC and condition.get("message") == message
    return False
