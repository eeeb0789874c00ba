"""The notification record every provider renders: what a person needs to understand a transition and act on it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.rollout.phases import Phase
from controller.rollout.spec import Severity


class WorkloadKind(StrEnum):
    CANARY = "Canary"
    BLUE_GREEN = "BlueGreen"


_ACTIVE_PHASES = frozenset({Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION})


def action_commands(name: str, namespace: str, phase: str, *, inconclusive: bool = False) -> tuple[str, ...]:
    """The exact ``kubectl coalmine`` commands that make sense in ``phase`` (copy-pasteable from the chat).

    While a rollout can still go either way a person can open the gate or stop it; after a failure they can retry
    the same revision; otherwise only ``explain`` (why the controller did what it did) is useful.
    """
    target = f"{name} -n {namespace}"
    if inconclusive:  # paused on weak evidence (onInconclusive: pause): move on, keep looking, or roll back
        return tuple(f"kubectl coalmine {verb} {target}" for verb in ("promote", "resume", "abort"))
    if phase in _ACTIVE_PHASES:
        return (f"kubectl coalmine promote {target}", f"kubectl coalmine abort {target}")
    if phase == Phase.FAILED:
        return (f"kubectl coalmine retry {target}", f"kubectl coalmine explain {target}")
    return (f"kubectl coalmine explain {target}",)


@dataclass(frozen=True)
class Notification:
    """One transition of one Canary/BlueGreen, ready to render.

    ``reason``/``message`` come from the engine's Event; ``evidence`` is the judge's one-liner
    (``"canary 5xx 2.1× primary, p = 0.004"``), empty when there is none yet; ``image`` is what changed;
    ``revision`` the pod-template hash under test. ``commands`` are shown verbatim (see :func:`action_commands`).
    """

    name: str
    namespace: str
    phase: str
    reason: str
    message: str
    severity: Severity = Severity.INFO
    kind: WorkloadKind = WorkloadKind.CANARY
    weight: int = 0
    revision: str = ""
    image: str = ""
    evidence: str = ""
    commands: tuple[str, ...] = ()
    key: str = ""  # the transition's dedup key: the same on a redelivery after an operator crash

    @property
    def target(self) -> str:
        """``name.namespace``, the way Flagger's messages name a workload."""
        return f"{self.name}.{self.namespace}"

    @property
    def title(self) -> str:
        """A one-line headline with a severity mark, for chat headers and plain-text fallbacks."""
        return f"{SEVERITY_MARK[self.severity]} {self.kind} {self.target}: {self.reason}"

    def facts(self) -> tuple[tuple[str, str], ...]:
        """The labelled facts every provider shows, in this order; empty ones are left out."""
        pairs = (
            ("Phase", str(self.phase)),
            ("Weight", f"{self.weight}%"),
            ("Revision", self.revision),
            ("Image", self.image),
        )
        return tuple((label, value) for label, value in pairs if value)


SEVERITY_MARK = {Severity.INFO: "✅", Severity.WARN: "⚠️", Severity.ERROR: "🚨"}
"""Severity at a glance, in every provider's headline."""
