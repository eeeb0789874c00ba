"""``coalmine validate --rps``: warn when a rollout cannot reach ``minRequests`` of canary traffic before it would
promote at the traffic the user states.

Pure and fast: the count comes from the schedule (:func:`controller.simulation.budget.min_requests_warning`), not a
simulation — ``coalmine plan`` simulates. Only a warning, because the manifest is valid; whether the numbers work
depends on the service's traffic, which only the user knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.rollout.kinds import BLUEGREEN, CANARY, Strategy
from controller.rollout.validation import InvalidSpecError
from controller.simulation.budget import min_requests_warning

_KINDS: dict[str, Strategy[Any]] = {CANARY.kind: CANARY, BLUEGREEN.kind: BLUEGREEN}
PATH = "spec.analysis.comparison.minRequests"


def rps_warnings(document: Any, rps: float) -> list[dict[str, str]]:
    """The warning (path, message) for a valid Canary or BlueGreen short of ``minRequests`` at ``rps``; else none."""
    if not isinstance(document, Mapping):
        return []
    kind = _KINDS.get(str(document.get("kind")))
    if kind is None:
        return []
    try:
        spec = kind.parse(document)
    except (InvalidSpecError, ValueError, TypeError, KeyError):
        return []  # the validator reports what is wrong with it; nothing to count here
    message = min_requests_warning(spec, rps)
    return [{"path": PATH, "message": message}] if message else []
