"""Pure predicates shared by ``plan`` (what to gather) and ``step`` (what to do), so the two never disagree.

"Is a look due?", "is this the first look of the revision?", "does the canary get traffic?" and "what would a
passing look do next?" and "is it waiting for a person?" are each answered once, here, from spec and status alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import CanarySpec, HookType, Pause, SetWeight, canary_steps
from controller.rollout.status import CanaryStatus

APPROVED = "approved"
PASSED = "passed"
PENDING = "pending"
DONE = "done"
REFUSED = "refused"
"""Gate value: a confirm hook said no, so the gate now waits for a person (``promote``) or the hook to open."""

GATE_CONFIRM_ROLLOUT = "confirm-rollout"
GATE_PRE_ROLLOUT = "pre-rollout"
GATE_CONFIRM_PROMOTION = "confirm-promotion"
GATE_POST_ROLLOUT = "post-rollout"
GATE_RESTORE_ON_DELETE = "restore-on-delete"
"""Set (to ``REQUESTED``) on the tick ``RestoreOnDelete`` is first issued: readiness read on that tick predates
the scale-up (and a 0-replica target reads as 100 % ready), so only a later tick may release the finalizer."""
GATE_SUSPENDED = "suspended"
"""Set (to ``DONE``) once the "Suspended" Event was recorded, so a suspension announces itself only once."""
REQUESTED = "requested"


def pause_gate(step_index: int) -> str:
    """The gate key of the manual pause entered as step ``step_index`` (1-based count of entered steps)."""
    return f"pause/{step_index}"


def traffic_gate(step_index: int) -> str:
    """The gate key approving the weight increase into step ``step_index`` (0-based index of the next step)."""
    return f"confirm-traffic-increase/{step_index}"


def has_hooks(spec: CanarySpec, hook_type: HookType) -> bool:
    return bool(spec.analysis.hooks_of(hook_type))


def needs_verdict(spec: CanarySpec) -> bool:
    """The spec asks for metric checks or a comparison, so a look needs the judge's verdict."""
    return bool(spec.analysis.metrics) or spec.analysis.comparison is not None


def iterations_mode(spec: CanarySpec) -> bool:
    """A/B testing (``iterations`` + ``match``) or blue/green (``iterations`` alone): no weight steps."""
    return bool(spec.analysis.iterations)


def ab_mode(spec: CanarySpec) -> bool:
    return iterations_mode(spec) and bool(spec.analysis.match)


def mirror_weight(spec: CanarySpec) -> int:
    return spec.analysis.mirror_weight if spec.analysis.mirror_weight is not None else 100


def effective_deadline(spec: CanarySpec) -> float:
    """``progressDeadlineSeconds``, but never shorter than two analysis intervals: a slow interval alone must not
    trip it, since a look (and so any progress) can only happen once per interval."""
    return max(spec.progress_deadline_s, 2 * spec.analysis.interval_s)


CLOCK_SLACK_S = 0.001
"""How much earlier than a whole interval still counts as one. Times go through status as RFC3339 with microseconds
and ticks run on float slots exactly one period apart (:mod:`controller.operator.schedule`), so "an interval later"
can come out a rounding error short; a millisecond is far below anything an interval means."""


def elapsed(now: float, since: float, seconds: float) -> bool:
    """Whether ``seconds`` have passed from ``since`` to ``now`` (give or take :data:`CLOCK_SLACK_S`)."""
    return now - since >= seconds - CLOCK_SLACK_S


def look_due(spec: CanarySpec, status: CanaryStatus, now: float) -> bool:
    """One look per analysis interval: due when none ran yet or ``interval`` has passed since the last one."""
    last = status.last_analysis_time
    return last is None or elapsed(now, last, spec.analysis.interval_s)


def is_first_look(status: CanaryStatus) -> bool:
    """The revision's first look runs the pre-rollout hooks at weight 0 instead of metrics (no traffic yet)."""
    return status.gates.get(GATE_PRE_ROLLOUT) != PASSED


def gathering_paused(status: CanaryStatus) -> bool:
    """The last tick found the canary not ready: plan gathers nothing (no queries, no webhook calls) and step runs
    no look until a tick has seen it ready again — both read this, so they agree on whether data was gathered."""
    return status.hold is Hold.CANARY_NOT_READY


def canary_has_traffic(spec: CanarySpec, status: CanaryStatus) -> bool:
    """Metrics mean something only when the canary gets traffic: a weight, a mirror, or an iteration's routes."""
    if iterations_mode(spec):
        return status.iterations >= 1
    return status.canary_weight > 0 or status.mirrored


def metrics_due(spec: CanarySpec, status: CanaryStatus) -> bool:
    """Whether the look that is due needs the judge's verdict."""
    return needs_verdict(spec) and not is_first_look(status) and canary_has_traffic(spec, status)


class MoveKind(StrEnum):
    HOLD_MANUAL_PAUSE = "hold-manual-pause"
    HOLD_TIMED_PAUSE = "hold-timed-pause"
    MIRROR = "mirror"
    ITERATE = "iterate"
    SET_WEIGHT = "set-weight"
    ENTER_PAUSE = "enter-pause"
    PROMOTE = "promote"


@dataclass(frozen=True)
class Move:
    """What a passing look does next. ``weight`` is the target canary weight of a ``SET_WEIGHT``; ``remaining_s``
    the time left in a timed pause."""

    kind: MoveKind
    weight: int = 0
    remaining_s: float = 0.0

    def increases_from(self, current: int) -> bool:
        return self.kind is MoveKind.SET_WEIGHT and self.weight > current


def current_weight_step(spec: CanarySpec, status: CanaryStatus) -> int:
    """The weight the current step calls for: the last ``setWeight`` entered (0 before any)."""
    steps = canary_steps(spec.analysis)[: status.step_index]
    weights = [step.weight for step in steps if isinstance(step, SetWeight)]
    return weights[-1] if weights else 0


def next_move(spec: CanarySpec, status: CanaryStatus, now: float) -> Move:
    """What the next passing look does, from spec and status alone (used by plan to pick gates, by step to act)."""
    if status.promote_full:
        return Move(MoveKind.PROMOTE)
    if iterations_mode(spec):
        wanted = spec.analysis.iterations or 0
        return Move(MoveKind.ITERATE) if status.iterations < wanted else Move(MoveKind.PROMOTE)
    if spec.analysis.mirror and status.step_index == 0 and status.canary_weight == 0 and not status.mirrored:
        return Move(MoveKind.MIRROR)
    steps = canary_steps(spec.analysis)
    index = status.step_index
    if 0 < index <= len(steps):
        current = steps[index - 1]
        if isinstance(current, Pause):
            if current.duration_s is None and status.gates.get(pause_gate(index)) != APPROVED:
                return Move(MoveKind.HOLD_MANUAL_PAUSE)
            if current.duration_s is not None:
                started = status.step_start_time if status.step_start_time is not None else now
                remaining = current.duration_s - (now - started)
                if remaining > 0:
                    return Move(MoveKind.HOLD_TIMED_PAUSE, remaining_s=remaining)
    if index < len(steps):
        upcoming = steps[index]
        if isinstance(upcoming, SetWeight):
            return Move(MoveKind.SET_WEIGHT, weight=upcoming.weight)
        return Move(MoveKind.ENTER_PAUSE)
    return Move(MoveKind.PROMOTE)


def confirm_promotion_pending(spec: CanarySpec, status: CanaryStatus) -> bool:
    """Promotion still needs the confirm-promotion gate (a hook or a person) to open."""
    return (
        has_hooks(spec, HookType.CONFIRM_PROMOTION)
        and not status.promote_full
        and status.gates.get(GATE_CONFIRM_PROMOTION) != APPROVED
    )


def awaiting_approval(spec: CanarySpec, status: CanaryStatus, now: float) -> Hold | None:
    """The approval a ``promote`` request would give right now, derived from phase, step and gates (not from
    ``status.hold``, which the latest look rewrites): a manual pause not yet approved, a refused confirm-promotion
    in WaitingPromotion, a refused traffic increase, or confirm-rollout in Waiting."""
    phase = status.phase
    if phase is Phase.WAITING:
        if has_hooks(spec, HookType.CONFIRM_ROLLOUT) and status.gates.get(GATE_CONFIRM_ROLLOUT) != APPROVED:
            return Hold.CONFIRM_ROLLOUT
        return None
    if phase not in (Phase.PROGRESSING, Phase.WAITING_PROMOTION):
        return None
    move = next_move(spec, status, now)
    if move.kind is MoveKind.HOLD_MANUAL_PAUSE:
        return Hold.MANUAL_PAUSE
    if phase is Phase.WAITING_PROMOTION and move.kind is MoveKind.PROMOTE and confirm_promotion_pending(spec, status):
        return Hold.CONFIRM_PROMOTION
    if move.increases_from(status.canary_weight) and status.gates.get(traffic_gate(status.step_index)) == REFUSED:
        return Hold.CONFIRM_TRAFFIC_INCREASE
    return None


def human_wait(spec: CanarySpec, status: CanaryStatus, now: float) -> Hold | None:
    """What person the rollout waits for, if any: a user pause, or an approval (:func:`awaiting_approval`).

    The progress deadline does not run during such a wait, whatever the looks meanwhile say.
    """
    if status.paused_by_user:
        return Hold.USER_PAUSE
    if status.paused_inconclusive:
        return Hold.INCONCLUSIVE
    return awaiting_approval(spec, status, now)


def analysing_hooks(spec: CanarySpec, status: CanaryStatus, now: float) -> tuple[HookType, ...]:
    """The hooks a due look in Progressing/WaitingPromotion runs, in the order the operator should call them."""
    wanted: list[HookType] = []
    if has_hooks(spec, HookType.ROLLBACK):
        wanted.append(HookType.ROLLBACK)
    # The first look runs pre-rollout instead of rollout hooks; it then makes the first move, so it may need
    # that move's gate as well.
    first = is_first_look(status)
    if first and has_hooks(spec, HookType.PRE_ROLLOUT):
        wanted.append(HookType.PRE_ROLLOUT)
    if not first and has_hooks(spec, HookType.ROLLOUT):
        wanted.append(HookType.ROLLOUT)
    move = next_move(spec, status, now)
    if (
        move.increases_from(status.canary_weight)
        and has_hooks(spec, HookType.CONFIRM_TRAFFIC_INCREASE)
        and status.gates.get(traffic_gate(status.step_index)) != APPROVED
    ):
        wanted.append(HookType.CONFIRM_TRAFFIC_INCREASE)
    if move.kind is MoveKind.PROMOTE and confirm_promotion_pending(spec, status):
        wanted.append(HookType.CONFIRM_PROMOTION)
    return tuple(wanted)


def waiting_phase_hooks(spec: CanarySpec, status: CanaryStatus, now: float) -> tuple[HookType, ...]:
    """Waiting polls confirm-rollout once per interval until it opens (or a person approves)."""
    if (
        status.phase is Phase.WAITING
        and has_hooks(spec, HookType.CONFIRM_ROLLOUT)
        and status.gates.get(GATE_CONFIRM_ROLLOUT) != APPROVED
        and look_due(spec, status, now)
    ):
        return (HookType.CONFIRM_ROLLOUT,)
    return ()
