"""Manual requests (``kubectl coalmine promote|promote-full|abort|pause|resume|retry``).

A request is handled once: its id is stored in ``status.lastRequestId``, even when it makes no sense in the current
phase — then it is ignored with a Warning Event that says why, so the person who sent it finds out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from controller.rollout.decision import Reason
from controller.rollout.inconclusive import end_inconclusive_pause
from controller.rollout.looks import advance_on_approval, approve_pause
from controller.rollout.moves import (
    APPROVED,
    GATE_CONFIRM_PROMOTION,
    GATE_CONFIRM_ROLLOUT,
    awaiting_approval,
    traffic_gate,
)
from controller.rollout.phases import ANALYSING, Hold, ManualAction, Phase
from controller.rollout.tick import Tick, rollback, start_progressing

Handlers = Mapping[ManualAction, Callable[[Tick], str | None]]
"""What each request does for one kind: a handler acts and returns None, or returns why it does not apply."""


def handle_request(tick: Tick, handlers: Handlers | None = None) -> None:
    """Apply ``obs.request`` if it is new, with the kind's ``handlers`` (the Canary's by default)."""
    request = tick.obs.request
    if request is None or request.id == tick.status.last_request_id:
        return
    tick.update(last_request_id=request.id)
    why_not = (CANARY_HANDLERS if handlers is None else handlers)[request.action](tick)
    if why_not is not None:
        tick.warn(
            Reason.REQUEST_IGNORED,
            f"Ignored {request.action} request {request.id} in phase {tick.status.phase}: {why_not}",
        )


def _approve_rollout(tick: Tick, reason: Reason, message: str) -> None:
    tick.update(gates={**tick.status.gates, GATE_CONFIRM_ROLLOUT: APPROVED})
    start_progressing(tick, reason, message)


def _promote(tick: Tick) -> str | None:
    status = tick.status
    if status.phase is Phase.WAITING:
        _approve_rollout(tick, Reason.ROLLOUT_APPROVED, f"Rollout of {tick.target} approved; scaling up")
        return None
    # What waits for approval follows from phase, step and gates; status.hold only shows the latest look's result.
    if status.paused_inconclusive:
        end_inconclusive_pause(tick)
        tick.note(Reason.PROMOTION_APPROVED, f"{tick.target} approved on the evidence so far; moving on")
        advance_on_approval(tick)
        return None
    waiting_for = awaiting_approval(tick.spec, status, tick.now)
    if waiting_for is Hold.MANUAL_PAUSE:
        approve_pause(tick)
        return None
    if waiting_for is Hold.CONFIRM_PROMOTION:
        tick.update(gates={**status.gates, GATE_CONFIRM_PROMOTION: APPROVED})
        tick.enter(Phase.PROGRESSING, Reason.PROMOTION_APPROVED, f"Promotion of {tick.target} approved")
        return None
    if waiting_for is Hold.CONFIRM_TRAFFIC_INCREASE:
        tick.update(gates={**status.gates, traffic_gate(status.step_index): APPROVED}, hold=None)
        tick.note(Reason.PROMOTION_APPROVED, f"Traffic increase for {tick.target} approved")
        return None
    if status.phase in ANALYSING:
        return "nothing is waiting for approval; use promote-full to skip the remaining steps"
    return "there is no rollout waiting for approval"


def _promote_full(tick: Tick) -> str | None:
    status = tick.status
    message = (
        f"Full promotion of {tick.target} requested: remaining steps skipped, promoting after the next passing look"
    )
    if status.phase is Phase.WAITING:
        _approve_rollout(tick, Reason.PROMOTE_FULL, message)
        tick.update(promote_full=True)
        return None
    if status.phase is Phase.WAITING_PROMOTION:
        tick.enter(Phase.PROGRESSING, Reason.PROMOTE_FULL, message)
        tick.update(promote_full=True)
        return None
    if status.phase is Phase.PROGRESSING:
        if awaiting_approval(tick.spec, status, tick.now) is Hold.CONFIRM_TRAFFIC_INCREASE:
            tick.update(hold=None)
        tick.update(promote_full=True)
        tick.note(Reason.PROMOTE_FULL, message)
        return None
    return "only a rollout that is waiting or progressing can be promoted"


def _abort(tick: Tick) -> str | None:
    if tick.status.phase in (Phase.WAITING, *ANALYSING):
        rollback(tick, Reason.ABORTED, f"Rolling back {tick.target}: aborted by a manual request")
        return None
    if tick.status.phase in (Phase.PROMOTING, Phase.FINALISING):
        return "the promotion is already under way (the primary is being updated); it cannot be aborted"
    return "there is no rollout in progress"


def _pause(tick: Tick) -> str | None:
    if tick.status.paused_by_user:
        return "the rollout is already paused"
    if tick.status.paused_inconclusive:
        return "the rollout is already paused (on weak evidence): promote, resume or abort it"
    if tick.status.phase in (*ANALYSING, Phase.PROMOTING):
        message = f"Rollout of {tick.target} paused by a manual request; resume it to continue"
        tick.update(paused_by_user=True)
        tick.hold(Hold.USER_PAUSE, message, Reason.USER_PAUSED)
        return None
    return "only a rollout that is progressing or promoting can be paused"


def _resume(tick: Tick) -> str | None:
    if tick.status.paused_inconclusive and not tick.status.paused_by_user:
        end_inconclusive_pause(tick)
        tick.note(Reason.USER_RESUMED, f"Rollout of {tick.target} resumed: looking again")
        return None
    if not tick.status.paused_by_user:
        return "the rollout is not paused"
    tick.update(paused_by_user=False, progress_time=tick.now)
    if tick.status.hold is Hold.USER_PAUSE:
        tick.update(hold=None)
    tick.note(Reason.USER_RESUMED, f"Rollout of {tick.target} resumed")
    return None


def _retry(tick: Tick) -> str | None:
    if tick.status.phase is not Phase.FAILED:
        return "only a Failed rollout can be retried"
    if not tick.status.last_promoted_spec:
        tick.enter(Phase.INITIALIZING, Reason.RETRIED, f"Retrying the initialization of {tick.target}")
        return None
    _approve_rollout(tick, Reason.RETRIED, f"Retrying the rollout of {tick.target}; scaling up")
    return None


CANARY_HANDLERS: Handlers = {
    ManualAction.PROMOTE: _promote,
    ManualAction.PROMOTE_FULL: _promote_full,
    ManualAction.ABORT: _abort,
    ManualAction.PAUSE: _pause,
    ManualAction.RESUME: _resume,
    ManualAction.RETRY: _retry,
}
