"""The working state of one ``step`` call, and the transitions several rules share (start, rollback, promote).

``Tick`` is a small mutable accumulator local to one call: the status being rewritten, the actions and the Events.
It exists so each rule reads as "what happens", not as plumbing; nothing outlives the call.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from controller.rollout.decision import (
    Action,
    Decision,
    Event,
    EventType,
    PromotePrimary,
    Reason,
    ScaleCanary,
    SetWeights,
)
from controller.rollout.messages import bounded
from controller.rollout.moves import (
    GATE_CONFIRM_ROLLOUT,
    GATE_POST_ROLLOUT,
    PENDING,
    ab_mode,
    iterations_mode,
    mirror_weight,
)
from controller.rollout.observations import Observations
from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import CanarySpec, HookType
from controller.rollout.status import CanaryStatus


class Tick:
    """Spec, observations and time of this tick, plus what has been decided so far."""

    def __init__(self, spec: CanarySpec, status: CanaryStatus, obs: Observations, now: float) -> None:
        self.spec = spec
        self.obs = obs
        self.now = now
        self.status = status
        self.start = status  # the status plan() saw: what was gathered for this tick follows from it
        self.actions: list[Action] = []
        self.events: list[Event] = []

    @property
    def target(self) -> str:
        return self.spec.target_ref.name

    def act(self, *actions: Action) -> None:
        self.actions.extend(actions)

    def update(self, **changes: Any) -> None:
        if "message" in changes:
            # status.message and the conditions stay small (one copy of a failure, ≤ 1 KB); Events get the full text
            changes["message"] = bounded(changes["message"])
        self.status = _evolve(self.status, changes)

    def note(self, reason: Reason, message: str) -> None:
        self.events.append(Event(EventType.NORMAL, reason, message))

    def warn(self, reason: Reason, message: str, *, hook: HookType | None = None) -> None:
        self.events.append(Event(EventType.WARNING, reason, message, hook))

    def enter(self, phase: Phase, reason: Reason, message: str, *, warning: bool = False) -> None:
        """A phase transition: always an Event, always progress (it restarts the deadline clock)."""
        self.update(
            phase=phase,
            last_transition_time=self.now,
            progress_time=self.now,
            hold=None,
            message=message,
        )
        (self.warn if warning else self.note)(reason, message)

    def progress(self, message: str | None = None) -> None:
        """Something moved (a step, an iteration, a weight shift): the progress deadline starts over."""
        self.update(progress_time=self.now, hold=None, message=self.status.message if message is None else message)

    def hold(self, hold: Hold, message: str, reason: Reason | None = None, *, warning: bool = False) -> None:
        """The rollout waits. The Event (if any) is recorded only when the reason for waiting changes."""
        if reason is not None and self.status.hold != hold:
            (self.warn if warning else self.note)(reason, message)
        self.update(hold=hold, message=message)

    def set_weights(self, primary: int, canary: int) -> None:
        self.act(SetWeights(primary, canary, **route_options(self.spec, self.status)))
        self.update(canary_weight=canary)

    def decision(self) -> Decision:
        return Decision(tuple(self.actions), self.status, tuple(self.events))


_STATUS_FIELDS = frozenset(item.name for item in fields(CanaryStatus))


def _evolve(status: CanaryStatus, changes: dict[str, Any]) -> CanaryStatus:
    """``dataclasses.replace(status, **changes)``, about five times faster.

    A tick makes several changes and ``coalmine simulate`` runs millions of ticks; ``replace`` re-runs ``__init__``
    over all two dozen fields each time. CanaryStatus is a plain frozen dataclass (no ``__post_init__``, no cached
    properties), so copying its field values and overriding the changed ones builds the same object.
    """
    unknown = changes.keys() - _STATUS_FIELDS
    if unknown:
        raise TypeError(f"CanaryStatus has no field(s) {', '.join(sorted(unknown))}")
    evolved = object.__new__(CanaryStatus)
    evolved.__dict__.update(status.__dict__, **changes)
    return evolved


def route_options(spec: CanarySpec, status: CanaryStatus) -> dict[str, Any]:
    """The A/B match route and the mirror, as the status says they should be right now."""
    in_flight = status.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION, Phase.PROMOTING)
    match_active = in_flight and ab_mode(spec) and status.iterations >= 1
    mirroring = in_flight and status.mirrored
    return {"match_active": match_active, "mirror_weight": mirror_weight(spec) if mirroring else None}


def desired_routes(spec: CanarySpec, status: CanaryStatus) -> SetWeights | None:
    """The routes the router should hold for this status (None where Coalmine does not own routing yet/anymore)."""
    if status.phase in (Phase.INITIALIZING, Phase.TERMINATING, Phase.TERMINATED) or not status.last_promoted_spec:
        return None
    return SetWeights(status.primary_weight, status.canary_weight, **route_options(spec, status))


def reset_for_revision(tick: Tick, *, keep_approval: bool) -> None:
    """Forget everything about the previous revision's analysis (counters, steps, judge state, gates)."""
    approval = tick.status.gates.get(GATE_CONFIRM_ROLLOUT)
    gates = {GATE_CONFIRM_ROLLOUT: approval} if keep_approval and approval else {}
    tick.update(
        canary_weight=0,
        failed_checks=0,
        no_data_checks=0,
        iterations=0,
        step_index=0,
        mirrored=False,
        judge={},
        evidence={},
        gates=gates,
        promote_full=False,
        paused_inconclusive=False,
        rollout_start_time=tick.now,
        wait_start_time=None,
    )


def start_progressing(tick: Tick, reason: Reason, message: str) -> None:
    """Scale the canary up at weight 0 and start the analysis clock (the first look is one interval later)."""
    reset_for_revision(tick, keep_approval=True)
    tick.enter(Phase.PROGRESSING, reason, message)
    tick.update(last_analysis_time=tick.now, step_start_time=tick.now)
    tick.act(ScaleCanary(up=True))
    tick.set_weights(100, 0)


def rollback(tick: Tick, reason: Reason, message: str) -> None:
    """All traffic to the primary, canary scaled to zero, Failed — until a new revision or ``retry``."""
    tick.update(
        canary_weight=0,
        mirrored=False,
        paused_by_user=False,
        paused_inconclusive=False,
        promote_full=False,
        gates={**tick.status.gates, GATE_POST_ROLLOUT: PENDING},
    )
    tick.enter(Phase.FAILED, reason, message, warning=True)
    tick.act(SetWeights(100, 0), ScaleCanary(up=False))


def succeed(tick: Tick, message: str) -> None:
    """The promoted revision is what the primary runs: record it (template and configs, so a later revert is
    recognised), scale the canary down, and run post-rollout hooks once."""
    tick.act(ScaleCanary(up=False))
    tick.update(
        canary_weight=0,
        mirrored=False,
        last_promoted_spec=tick.status.last_applied_spec,
        promoted_configs=dict(tick.status.tracked_configs),
        gates={**tick.status.gates, GATE_POST_ROLLOUT: PENDING},
        paused_by_user=False,
        paused_inconclusive=False,
    )
    tick.enter(Phase.SUCCEEDED, Reason.SUCCEEDED, message)


def begin_promotion(tick: Tick, *, skipped: bool = False) -> None:
    """Copy the analysed revision to the primary; Promoting then waits for the primary to roll out."""
    if iterations_mode(tick.spec) and not ab_mode(tick.spec) and not skipped:
        # Blue/green: switch all traffic to the (analysed) canary while the primary is being updated.
        tick.note(Reason.PROMOTING, f"Routing all traffic to canary {tick.target}")
        tick.update(mirrored=False)
        tick.act(SetWeights(0, 100))
        tick.update(canary_weight=100)
    tick.act(PromotePrimary(tick.status.last_applied_spec))
    tick.update(step_start_time=None, promote_full=False)
    if skipped:
        tick.enter(
            Phase.PROMOTING,
            Reason.ANALYSIS_SKIPPED,
            f"Canary analysis skipped (skipAnalysis); copying {tick.target} template spec to {tick.target}-primary",
        )
    else:
        tick.enter(
            Phase.PROMOTING,
            Reason.PROMOTING,
            f"Copying {tick.target} template spec to {tick.target}-primary",
        )
