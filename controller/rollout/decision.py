"""What the engine decided this tick: actions for the operator to carry out, the new status, and Events.

Actions are desired effects, not API calls: each must be idempotent when the operator applies it (create-or-update,
scale to a count, set weights), so replaying a tick after a crash converges to the same cluster state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.rollout.spec import HookType
from controller.rollout.status import CanaryStatus


@dataclass(frozen=True)
class Initialize:
    """Create or refresh ``<target>-primary`` (a copy of the target's pod spec, its HPA and ``-primary`` copies of
    tracked ConfigMaps/Secrets) and the ``-primary``/``-canary`` Services. Routing is switched separately, once the
    primary is ready, so no traffic ever reaches a primary that cannot serve it."""


@dataclass(frozen=True)
class ConvergeObjects:
    """Bring the apex/primary/canary Services and the router's objects (VirtualService, DestinationRules) to what
    the spec now says — timeouts, retries, headers, CORS, traffic policy, match, apex labels — keeping the live
    traffic split. Emitted once per spec edit in every phase, so an edit never waits for the next release."""


@dataclass(frozen=True)
class ScaleCanary:
    """Scale the target Deployment up (to its own replicas / HPA minimum) or down to zero."""

    up: bool


@dataclass(frozen=True)
class SetWeights:
    """Reconcile the router and route ``primary``/``canary`` percent of traffic (always summing to 100).

    ``match_active`` turns on the A/B route (``analysis.match`` → canary); ``mirror_weight`` mirrors that percent of
    the primary's traffic to the canary (responses from the canary are discarded).
    """

    primary: int
    canary: int
    match_active: bool = False
    mirror_weight: int | None = None

    def __post_init__(self) -> None:
        if not (0 <= self.canary <= 100 and self.primary + self.canary == 100):
            raise ValueError(f"weights must be within 0..100 and sum to 100, got {self.primary}/{self.canary}")


@dataclass(frozen=True)
class PromotePrimary:
    """Copy the target's pod spec (and tracked configs) to the primary. ``pod_template_hash`` is the analysed
    revision: the operator must refuse to copy a target whose hash differs (it changed after the analysis)."""

    pod_template_hash: str


@dataclass(frozen=True)
class RestoreOnDelete:
    """``revertOnDeletion``: scale the target back up and give it its traffic back (restore the original routes)."""


@dataclass(frozen=True)
class ReleaseFinalizer:
    """The Canary may go: remove Coalmine's finalizer."""


Action = Initialize | ConvergeObjects | ScaleCanary | SetWeights | PromotePrimary | RestoreOnDelete | ReleaseFinalizer


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(StrEnum):
    """Event reasons (CamelCase, stable: notification triggers and alert routing key on them)."""

    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    NEW_REVISION = "NewRevision"
    REVERT_DETECTED = "RevertDetected"
    WAITING_APPROVAL = "WaitingForApproval"
    ROLLOUT_APPROVED = "RolloutApproved"
    ANALYSIS_STARTED = "AnalysisStarted"
    ANALYSIS_RESTARTED = "AnalysisRestarted"
    ADVANCED = "Advanced"
    PAUSED = "Paused"
    HALTED = "Halted"
    NO_DATA = "NoData"
    WAITING = "Waiting"
    EVIDENCE_HOLD = "EvidenceHold"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTION_APPROVED = "PromotionApproved"
    PROMOTING = "Promoting"
    ANALYSIS_SKIPPED = "AnalysisSkipped"
    PRIMARY_WEIGHT_ADVANCED = "PrimaryWeightAdvanced"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    COMPARISON_REJECTED = "ComparisonRejected"
    ROLLBACK_REQUESTED = "RollbackRequested"
    ABORTED = "Aborted"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    MAX_DURATION_EXCEEDED = "MaxDurationExceeded"
    PROMOTION_STALLED = "PromotionStalled"
    USER_PAUSED = "UserPaused"
    INCONCLUSIVE_PAUSE = "InconclusivePause"
    USER_RESUMED = "UserResumed"
    PROMOTE_FULL = "PromoteFullRequested"
    RETRIED = "Retried"
    REQUEST_IGNORED = "ManualRequestIgnored"
    ROUTES_DRIFTED = "RoutesDrifted"
    ROUTE_NOT_ACCEPTED = "RouteNotAccepted"
    TARGET_MISSING = "TargetMissing"
    POST_ROLLOUT_FAILED = "PostRolloutFailed"
    TERMINATING = "Terminating"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"
    INVALID_SPEC = "InvalidSpec"
    RECONCILE_FAILED = "ReconcileFailed"


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the Canary (and to send to ``event`` webhooks and alert providers).

    ``hook``: the webhook type whose failure caused this Event, if one did — its ``muteAlert`` decides whether the
    Event also notifies (it is always recorded).
    """

    type: EventType
    reason: Reason
    message: str
    hook: HookType | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of one tick: apply ``actions`` in order, then write ``status`` and record ``events``."""

    actions: tuple[Action, ...]
    status: CanaryStatus
    events: tuple[Event, ...] = ()
