"""Manual requests for a BlueGreen (``kubectl coalmine promote|promote-full|abort|pause|resume|retry``).

Same wire format and once-only handling as a Canary's (:mod:`controller.rollout.requests`); only ``promote``,
``promote-full`` and ``abort`` mean something different: promote *switches* traffic (WaitingPromotion), and abort
is possible until blue starts taking green's spec, because until then blue is untouched and switching back is safe.
"""

from __future__ import annotations

from controller.rollout.decision import Reason
from controller.rollout.moves import APPROVED, PASSED
from controller.rollout.phases import ManualAction, Phase
from controller.rollout.requests import Handlers, _approve_rollout, _pause, _resume, _retry
from controller.rollout.tick import Tick, rollback

MANUAL_SWITCH = "bluegreen/promote"
"""Gate set by ``kubectl coalmine promote`` in WaitingPromotion: switch now, whatever the timer or hooks say."""

_POST_GATE = "bluegreen/post-promotion"  # mirrors bluegreen.GATE_POST_PROMOTION (that module imports this one)


def _blue_untouched(tick: Tick) -> bool:
    return tick.status.phase is Phase.PROMOTING and tick.status.gates.get(_POST_GATE) != PASSED


def _promote(tick: Tick) -> str | None:
    status = tick.status
    if status.phase is Phase.WAITING:
        _approve_rollout(tick, Reason.ROLLOUT_APPROVED, f"Rollout of {tick.target} approved; scaling up green")
        return None
    if status.phase is Phase.WAITING_PROMOTION:
        tick.update(gates={**status.gates, MANUAL_SWITCH: APPROVED})
        tick.note(Reason.PROMOTION_APPROVED, f"Switch of {tick.target} to green approved")
        return None
    if status.phase is Phase.PROGRESSING:
        return "the pre-promotion analysis is still running; use promote-full to skip the rest of it"
    return "there is no rollout waiting for approval"


def _promote_full(tick: Tick) -> str | None:
    status = tick.status
    message = f"Full promotion of {tick.target} requested: remaining looks skipped after the next passing look"
    if status.phase is Phase.WAITING:
        _approve_rollout(tick, Reason.PROMOTE_FULL, message)
        tick.update(promote_full=True)
        return None
    if status.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION) or _blue_untouched(tick):
        tick.update(promote_full=True)
        tick.note(Reason.PROMOTE_FULL, message)
        return None
    return "only a rollout that is waiting, analysing or in post-promotion analysis can be promoted"


def _abort(tick: Tick) -> str | None:
    if tick.status.phase in (Phase.WAITING, Phase.PROGRESSING, Phase.WAITING_PROMOTION) or _blue_untouched(tick):
        rollback(tick, Reason.ABORTED, f"Rolling back {tick.target}: aborted by a manual request; all traffic on blue")
        return None
    if tick.status.phase in (Phase.PROMOTING, Phase.FINALISING):
        return "blue is already taking the promoted spec; the promotion cannot be aborted"
    return "there is no rollout in progress"


BLUEGREEN_HANDLERS: Handlers = {
    ManualAction.PROMOTE: _promote,
    ManualAction.PROMOTE_FULL: _promote_full,
    ManualAction.ABORT: _abort,
    ManualAction.PAUSE: _pause,
    ManualAction.RESUME: _resume,
    ManualAction.RETRY: _retry,
}
"""A BlueGreen's requests, applied by :func:`controller.rollout.requests.handle_request`."""
