"""What the judge says about one look: the outcome the rollout engine acts on, and the evidence people read.

These records are the contract between ``analysis`` (which produces them) and ``controller.rollout`` (which acts on
them), and they are what lands in the Canary's status, Events and notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """The outcome of one look, per metric and overall.

    ``NO_DATA`` is its own outcome — never a pass: the engine holds and counts it apart (``noDataChecks``).
    ``REJECTED`` means an always-valid comparison rejected "no regression": the engine rolls back at once.
    """

    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "noData"
    REJECTED = "rejected"


@dataclass(frozen=True)
class MetricEvidence:
    """One metric's result for one look, with the numbers behind it and a one-line human reason."""

    metric: str
    outcome: Outcome
    reason: str
    kind: str = "threshold"  # threshold | errorRate | latency | msprt | mann-whitney
    value: float | None = None  # a threshold metric's value in this look
    estimate: float | None = None  # θ̂: canary/primary ratio (or difference for msprt)
    p_value: float | None = None  # always-valid p-value, min(1, 1/max E)
    lower: float | None = None  # confidence-sequence bounds for θ (or the difference)
    upper: float | None = None
    log_e_value: float | None = None
    canary_requests: int = 0  # cumulative requests seen by the comparison
    primary_requests: int = 0


@dataclass(frozen=True)
class Verdict:
    """The judge's answer for a look.

    ``promotable`` is False while the comparisons lack ``minRequests`` or, with ``requireEvidence``, until the upper
    confidence bound of every ratio is within tolerance; the engine never promotes on a look that is not promotable.
    ``state`` is the judge's sequential state (cumulative counts, log e-values) to persist in the Canary's status so a
    restarted operator continues the same test. ``collecting`` marks a ``NO_DATA`` look that *had* data — the
    comparisons are still short of ``minRequests`` — so the engine does not count it toward ``noDataLimit``.
    """

    outcome: Outcome
    reason: str
    metrics: tuple[MetricEvidence, ...] = ()
    promotable: bool = True
    hold_reason: str = ""
    detectable: str = ""  # e.g. "could have detected a 1.8× error-rate increase"
    state: Mapping[str, Any] = field(default_factory=dict)
    collecting: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for status and Events (drops ``state``, which is stored on its own)."""
        return {
            "outcome": str(self.outcome),
            "reason": self.reason,
            "promotable": self.promotable,
            "holdReason": self.hold_reason,
            "detectable": self.detectable,
            "metrics": [
                {
                    key: value
                    for key, value in {
                        "metric": m.metric,
                        "kind": m.kind,
                        "outcome": str(m.outcome),
                        "reason": m.reason,
                        "value": m.value,
                        "estimate": m.estimate,
                        "pValue": m.p_value,
                        "lower": m.lower,
                        "upper": m.upper,
                        "logEValue": m.log_e_value,
                        "canaryRequests": m.canary_requests,
                        "primaryRequests": m.primary_requests,
                    }.items()
                    if value is not None
                }
                for m in self.metrics
            ],
        }
