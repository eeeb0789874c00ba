"""``analysis.comparison.onInconclusive: pause``: on weak evidence, hold the weight and page a person instead of
rolling back.

Weak evidence is a rollback that no look has shown to be needed: no data for ``noDataLimit`` looks in a row, or
``maxDuration`` reached while the judge still holds for data or evidence. With ``pause`` the rollout keeps its
weight, records a Warning Event (``InconclusivePause``, which notifies at ``warn`` with the exact commands) and waits
for a person, like a user pause: the progress deadline, ``noDataLimit`` and ``maxDuration`` do not run meanwhile.
The person then decides:

- ``kubectl coalmine promote``: the evidence is good enough — make the next move now (the next step, or the
  promotion at the last one), as a passing look would;
- ``kubectl coalmine resume``: keep looking — the counters start again;
- ``kubectl coalmine abort``: roll back.

Argo Rollouts pauses on an inconclusive analysis the same way; Flagger always rolls back.
"""

from __future__ import annotations

from controller.rollout.decision import Reason
from controller.rollout.phases import Hold
from controller.rollout.spec import OnInconclusive
from controller.rollout.tick import Tick, rollback

WEAK_HOLDS = frozenset({Hold.NO_DATA, Hold.EVIDENCE})
"""Holds in which the judge waits for data or evidence: a limit reached then is weak evidence, not a regression."""


def pauses_on_inconclusive(tick: Tick) -> bool:
    comparison = tick.spec.analysis.comparison
    return comparison is not None and comparison.on_inconclusive is OnInconclusive.PAUSE


def roll_back_or_pause(tick: Tick, reason: Reason, message: str) -> None:
    """Roll back on weak evidence, or, with ``onInconclusive: pause``, hold and page a person (module doc)."""
    if not pauses_on_inconclusive(tick):
        rollback(tick, reason, message)
        return
    detail = message.removeprefix(f"Rolling back {tick.target}: ")
    paused = (
        f"Paused {tick.target} instead of rolling back (onInconclusive: pause): {detail}. "
        "Promote to move on, resume to keep looking, or abort to roll back"
    )
    tick.update(paused_inconclusive=True, no_data_checks=0)
    tick.hold(Hold.INCONCLUSIVE, paused, Reason.INCONCLUSIVE_PAUSE, warning=True)


def end_inconclusive_pause(tick: Tick) -> None:
    """The person decided: the counters and the deadline start again from now."""
    tick.update(paused_inconclusive=False, no_data_checks=0, progress_time=tick.now)
    if tick.status.hold is Hold.INCONCLUSIVE:
        tick.update(hold=None)
