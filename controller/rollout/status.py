"""The Canary's ``.status`` as a typed, frozen record, and its exact round trip to the stored dict.

All progress of a rollout lives here (the weights are also read back from the router each tick), so an operator that
restarts mid-rollout reads this back and continues exactly where it was: ``from_dict(to_dict(s)) == s``.
Times are epoch seconds (floats) in the record and RFC3339 strings in the dict; ``to_dict`` writes every key,
including nulls, so a JSON merge patch of the result also clears fields that went back to "unset".
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.rollout.phases import Hold, Phase


def format_time(epoch: float) -> str:
    """RFC3339 in UTC; whole seconds print without a fraction, others keep microseconds (exact round trip)."""
    seconds = int(epoch // 1)
    micros = round((epoch - seconds) * 1_000_000)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}Z" if micros == 0 else f"{stamp}.{micros:06d}Z"


@functools.lru_cache(maxsize=16384)
def parse_time(text: str) -> float:
    """Parse what :func:`format_time` writes (and any RFC3339 UTC time Kubernetes writes).

    Remembered: every tick parses its Canary's status times again, and most of them have not changed since the
    previous tick."""
    body = text.strip()
    if body.endswith(("Z", "z")):
        body = body[:-1]
    elif body.endswith("+00:00"):
        body = body[:-6]
    else:
        raise ValueError(f"{text!r} is not an RFC3339 time in UTC (expected a trailing 'Z')")
    whole, _, fraction = body.partition(".")
    seconds = _whole_seconds(whole)
    if not fraction:
        return float(seconds)
    micros = int((fraction + "000000")[:6])
    return seconds + micros / 1_000_000


_RFC3339_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _whole_seconds(text: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) as epoch seconds; strict like ``strptime``, but several times faster (every tick
    parses a handful of these per Canary)."""
    if not _RFC3339_SECONDS.fullmatch(text):
        raise ValueError(f"time data {text!r} does not match format '%Y-%m-%dT%H:%M:%S'")
    return calendar.timegm(datetime.fromisoformat(text).timetuple())


def _time_or_none(raw: Any) -> float | None:
    return None if raw in (None, "") else parse_time(str(raw))


def _time_out(value: float | None) -> str | None:
    return None if value is None else format_time(value)


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition (``status.conditions[]``)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""
    last_transition_time: str = ""
    observed_generation: int = 0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Condition:
        return cls(
            type=str(raw.get("type", "")),
            status=str(raw.get("status", "Unknown")),
            reason=str(raw.get("reason", "")),
            message=str(raw.get("message", "")),
            last_transition_time=str(raw.get("lastTransitionTime", "")),
            observed_generation=int(raw.get("observedGeneration", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
            "observedGeneration": self.observed_generation,
        }


@dataclass(frozen=True)
class CanaryStatus:
    """Everything the engine remembers between ticks. Defaults describe a Canary nobody has looked at yet.

    ``step_index`` counts the steps of ``canary_steps(spec.analysis)`` entered so far: 0 is "before the first step"
    (weight 0), ``k`` means step ``k-1`` (0-based) is the current one. ``gates`` holds per-revision approvals and
    one-shot markers (``confirm-rollout``, ``pre-rollout``, ``confirm-promotion``, ``pause/<k>``,
    ``confirm-traffic-increase/<k>``, ``post-rollout``); it is cleared when a new revision starts.
    ``tracked_configs`` are the config checksums of the revision last seen, ``promoted_configs`` those the primary
    runs (with ``last_promoted_spec``): only a return to both is a revert.
    ``applied_generation`` is the Canary generation whose spec the Services and router objects were last brought to
    (``observed_generation`` only says the engine saw it; a suspended Canary sees an edit but applies it on resume).
    ``rollout_start_time`` is when the revision's rollout began, moved forward by every wait for a person once it
    ends (``wait_start_time`` is when the current one began), so ``analysis.maxDuration`` counts automated time only.
    """

    phase: Phase = Phase.INITIALIZING
    canary_weight: int = 0
    failed_checks: int = 0
    no_data_checks: int = 0
    iterations: int = 0
    step_index: int = 0
    mirrored: bool = False
    last_applied_spec: str = ""
    last_promoted_spec: str = ""
    tracked_configs: Mapping[str, str] = field(default_factory=dict)
    promoted_configs: Mapping[str, str] = field(default_factory=dict)
    last_transition_time: float | None = None
    last_analysis_time: float | None = None
    step_start_time: float | None = None
    progress_time: float | None = None
    rollout_start_time: float | None = None
    wait_start_time: float | None = None
    observed_generation: int = 0
    applied_generation: int = 0
    conditions: tuple[Condition, ...] = ()
    judge: Mapping[str, Any] = field(default_factory=dict)
    evidence: Mapping[str, Any] = field(default_factory=dict)
    gates: Mapping[str, str] = field(default_factory=dict)
    paused_by_user: bool = False
    paused_inconclusive: bool = False
    promote_full: bool = False
    last_request_id: str = ""
    hold: Hold | None = None
    message: str = ""

    @property
    def primary_weight(self) -> int:
        return 100 - self.canary_weight

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> CanaryStatus:
        """Read ``.status`` as stored; missing keys take the defaults so an empty status parses.

        An unknown phase is an error rather than a guess: re-initialising would copy an unanalysed pod spec to the
        primary.
        """
        raw = raw or {}
        phase_raw = raw.get("phase") or Phase.INITIALIZING.value
        try:
            phase = Phase(phase_raw)
        except ValueError:
            allowed = ", ".join(p.value for p in Phase)
            raise ValueError(f"status.phase {phase_raw!r} is not a Canary phase; expected one of {allowed}") from None
        hold_raw = raw.get("hold")
        return cls(
            phase=phase,
            canary_weight=int(raw.get("canaryWeight") or 0),
            failed_checks=int(raw.get("failedChecks") or 0),
            no_data_checks=int(raw.get("noDataChecks") or 0),
            iterations=int(raw.get("iterations") or 0),
            step_index=int(raw.get("stepIndex") or 0),
            mirrored=bool(raw.get("mirrored", False)),
            last_applied_spec=str(raw.get("lastAppliedSpec") or ""),
            last_promoted_spec=str(raw.get("lastPromotedSpec") or ""),
            tracked_configs={str(k): str(v) for k, v in (raw.get("trackedConfigs") or {}).items()},
            promoted_configs={str(k): str(v) for k, v in (raw.get("promotedConfigs") or {}).items()},
            last_transition_time=_time_or_none(raw.get("lastTransitionTime")),
            last_analysis_time=_time_or_none(raw.get("lastAnalysisTime")),
            step_start_time=_time_or_none(raw.get("stepStartTime")),
            progress_time=_time_or_none(raw.get("progressTime")),
            rollout_start_time=_time_or_none(raw.get("rolloutStartTime")),
            wait_start_time=_time_or_none(raw.get("waitStartTime")),
            observed_generation=int(raw.get("observedGeneration") or 0),
            applied_generation=int(raw.get("appliedGeneration") or 0),
            conditions=tuple(Condition.from_dict(c) for c in raw.get("conditions") or ()),
            judge=dict(raw.get("judge") or {}),
            evidence=dict(raw.get("evidence") or {}),
            gates={str(k): str(v) for k, v in (raw.get("gates") or {}).items()},
            paused_by_user=bool(raw.get("pausedByUser", False)),
            paused_inconclusive=bool(raw.get("pausedInconclusive", False)),
            promote_full=bool(raw.get("promoteFull", False)),
            last_request_id=str(raw.get("lastRequestId") or ""),
            hold=None if not hold_raw else Hold(hold_raw),
            message=str(raw.get("message") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """The dict to store as ``.status`` (camelCase keys, RFC3339 times, every key present)."""
        return {
            "phase": self.phase.value,
            "canaryWeight": self.canary_weight,
            "failedChecks": self.failed_checks,
            "noDataChecks": self.no_data_checks,
            "iterations": self.iterations,
            "stepIndex": self.step_index,
            "mirrored": self.mirrored,
            "lastAppliedSpec": self.last_applied_spec,
            "lastPromotedSpec": self.last_promoted_spec,
            "trackedConfigs": dict(self.tracked_configs),
            "promotedConfigs": dict(self.promoted_configs),
            "lastTransitionTime": _time_out(self.last_transition_time),
            "lastAnalysisTime": _time_out(self.last_analysis_time),
            "stepStartTime": _time_out(self.step_start_time),
            "progressTime": _time_out(self.progress_time),
            "rolloutStartTime": _time_out(self.rollout_start_time),
            "waitStartTime": _time_out(self.wait_start_time),
            "observedGeneration": self.observed_generation,
            "appliedGeneration": self.applied_generation,
            "conditions": [c.to_dict() for c in self.conditions],
            "judge": dict(self.judge),
            "evidence": dict(self.evidence),
            "gates": dict(self.gates),
            "pausedByUser": self.paused_by_user,
            "pausedInconclusive": self.paused_inconclusive,
            "promoteFull": self.promote_full,
            "lastRequestId": self.last_request_id,
            "hold": None if self.hold is None else self.hold.value,
            "message": self.message,
        }


def is_paused(status: CanaryStatus) -> bool:
    """A person holds the rollout: a user pause, or a pause on weak evidence (``onInconclusive: pause``). No look
    runs and nothing moves until they act."""
    return status.paused_by_user or status.paused_inconclusive
