"""The vocabulary of a rollout: Flagger's phases, why a rollout is holding, and the manual requests people send.

Phases keep Flagger's spelling so dashboards, alerts and Argo CD health scripts written for Flagger keep working.
``Hold`` is Coalmine's own: it says *why* a phase is not moving, for people. It is a display, not the source of truth:
whether a rollout waits for a person is derived from phase, step and gates
(:func:`controller.rollout.moves.human_wait`), because a look that runs during the wait rewrites the hold.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Flagger's Canary phases (``status.phase``)."""

    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"


ANALYSING = frozenset({Phase.PROGRESSING, Phase.WAITING_PROMOTION})
"""Phases in which the canary takes traffic and each analysis interval brings a look."""

STEADY = frozenset({Phase.INITIALIZED, Phase.SUCCEEDED, Phase.FAILED})
"""Phases that wait for a new revision (or ``retry``); nothing is in flight."""

IN_PROGRESS = frozenset(
    {
        Phase.INITIALIZING,
        Phase.WAITING,
        Phase.PROGRESSING,
        Phase.WAITING_PROMOTION,
        Phase.PROMOTING,
        Phase.FINALISING,
        Phase.TERMINATING,
    }
)
"""Phases a kstatus reader should see as ``Reconciling``."""


def is_active(phase: Phase) -> bool:
    """True while a revision is being rolled out: the canary is scaled up and may take traffic."""
    return phase in ANALYSING or phase in (Phase.PROMOTING, Phase.FINALISING)


def is_analysing(phase: Phase) -> bool:
    """True in the phases where looks (metrics, rollout hooks) run each interval."""
    return phase in ANALYSING


def is_steady(phase: Phase) -> bool:
    """True when nothing is in flight and only a new revision (or ``retry``) starts a rollout."""
    return phase in STEADY


def is_terminal(phase: Phase) -> bool:
    """True when the current revision's rollout has ended (successfully or not), or the Canary is gone."""
    return phase in (Phase.SUCCEEDED, Phase.FAILED, Phase.TERMINATED)


def is_in_progress(phase: Phase) -> bool:
    """True when the controller is still working towards a steady state (kstatus ``Reconciling``)."""
    return phase in IN_PROGRESS


class ManualAction(StrEnum):
    """What a person can ask for (``kubectl coalmine promote|abort|…``), Argo Rollouts' verbs."""

    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"


class Hold(StrEnum):
    """Why a rollout is not moving right now (``status.hold``); the value is shown to users."""

    TARGET_MISSING = "TargetMissing"
    PRIMARY_NOT_READY = "PrimaryNotReady"
    CANARY_NOT_READY = "CanaryNotReady"
    ANALYSIS_PENDING = "AnalysisPending"
    FAILED_CHECK = "FailedCheck"
    NO_DATA = "NoData"
    EVIDENCE = "Evidence"
    TIMED_PAUSE = "TimedPause"
    MANUAL_PAUSE = "ManualPause"
    CONFIRM_ROLLOUT = "ConfirmRollout"
    CONFIRM_TRAFFIC_INCREASE = "ConfirmTrafficIncrease"
    CONFIRM_PROMOTION = "ConfirmPromotion"
    USER_PAUSE = "UserPause"
    INCONCLUSIVE = "Inconclusive"
    PROMOTION_STALLED = "PromotionStalled"
    ROUTE_NOT_ACCEPTED = "RouteNotAccepted"


HUMAN_HOLDS = frozenset(
    {
        Hold.MANUAL_PAUSE,
        Hold.CONFIRM_ROLLOUT,
        Hold.CONFIRM_TRAFFIC_INCREASE,
        Hold.CONFIRM_PROMOTION,
        Hold.USER_PAUSE,
        Hold.INCONCLUSIVE,
    }
)
"""Holds that name a wait for a person (or a gate they control); ``moves.human_wait`` decides which one applies."""


def is_human_hold(hold: Hold | None) -> bool:
    """True if the hold *shown* waits for a person — for readers of the status (the simulated person in
    ``coalmine simulate``, the CLI). The engine itself decides from :func:`controller.rollout.moves.human_wait`."""
    return hold in HUMAN_HOLDS


WORLD_HOLDS = frozenset({Hold.TARGET_MISSING, Hold.PRIMARY_NOT_READY, Hold.CANARY_NOT_READY, Hold.ROUTE_NOT_ACCEPTED})
"""Holds that say the cluster is not ready; shown in preference to a person's wait (nothing can move until then)."""
