"""``analysis.maxDuration``: an optional bound on a whole rollout, counting automated time only.

The progress deadline (Flagger's rule) ends a rollout that is *stuck* — a workload that does not become ready, or
no look and no move for the deadline. A healthy analysis that keeps looking never trips it, however long the judge
needs. Teams that want a bound on the whole rollout anyway set ``maxDuration`` (off by default, as in Flagger, which
has no such bound). It counts from the new revision, and time spent waiting for a person (a manual pause, a gate,
``kubectl coalmine pause``) is not counted: ``rollout_start_time`` is moved forward by each wait once it ends
(``wait_start_time`` is when the current one began), so a release approved after a night's pause is not rolled
back the moment it resumes.
"""

from __future__ import annotations

from controller.rollout.decision import Reason
from controller.rollout.durations import format_duration
from controller.rollout.inconclusive import WEAK_HOLDS, roll_back_or_pause
from controller.rollout.phases import ANALYSING, Hold
from controller.rollout.tick import Tick, rollback


def automated_elapsed(tick: Tick) -> float | None:
    """Seconds of automated rollout so far (None before a rollout started), not counting waits for a person."""
    status = tick.status
    if status.rollout_start_time is None:
        return None
    waiting = tick.now - status.wait_start_time if status.wait_start_time is not None else 0.0
    return tick.now - status.rollout_start_time - waiting


def track_waits(tick: Tick, wait: Hold | None) -> None:
    """Remember when a wait for a person began; when it ends, move the rollout's start forward by its length."""
    status = tick.status
    if wait is not None:
        if status.wait_start_time is None:
            tick.update(wait_start_time=tick.now)
        return
    if status.wait_start_time is None:
        return
    waited = tick.now - status.wait_start_time
    start = status.rollout_start_time
    tick.update(wait_start_time=None, rollout_start_time=None if start is None else start + waited)


def check_max_duration(tick: Tick, wait: Hold | None, *, primary_changed: bool) -> None:
    """Roll back an analysis that ran longer than ``maxDuration`` (not while a person is awaited, and never once
    the primary has the new template: a rollback could not go back to the old release then)."""
    limit = tick.spec.analysis.max_duration_s
    if limit is None or wait is not None or primary_changed or tick.status.phase not in ANALYSING:
        return
    elapsed = automated_elapsed(tick)
    if elapsed is None or elapsed <= limit:
        return
    weak = tick.status.hold in WEAK_HOLDS  # the judge still holds for data or evidence: no regression shown
    (roll_back_or_pause if weak else rollback)(
        tick,
        Reason.MAX_DURATION_EXCEEDED,
        f"Rolling back {tick.target}: the rollout ran {format_duration(elapsed)}, longer than its maxDuration "
        f"{format_duration(limit)}",
    )


__all__ = ["automated_elapsed", "check_max_duration", "track_waits"]
