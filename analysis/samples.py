"""Observations for one look, per arm, as the providers return them and the judge and simulator consume them.

A look covers its own, disjoint time window (one analysis tick), so counts are never counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ArmCounts:
    """Counts for one arm (canary or primary) over one look's window."""

    requests: float = 0.0
    errors: float = 0.0  # 5xx responses
    slow: float = 0.0  # responses slower than the latency policy's slowThresholdMs


@dataclass(frozen=True)
class ThresholdValue:
    """A threshold metric's value for the look: ``value`` None with ``error`` None means no data."""

    value: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class ArmValues:
    """A custom metric rendered once per arm: the look's value for canary and primary (None: no data)."""

    canary: float | None = None
    primary: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Look:
    """Everything the judge needs for one look."""

    start: float  # window start, epoch seconds
    end: float  # window end, epoch seconds
    canary: ArmCounts = field(default_factory=ArmCounts)
    primary: ArmCounts = field(default_factory=ArmCounts)
    counts_error: str | None = None  # the comparison queries failed (named in the message)
    thresholds: Mapping[str, ThresholdValue] = field(default_factory=dict)
    compared: Mapping[str, ArmValues] = field(default_factory=dict)
