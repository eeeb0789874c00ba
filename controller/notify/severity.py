"""Which transitions become notifications, how severe they are, and which providers receive them (all pure).

Routing is Flagger's: a provider set to ``info`` receives everything, ``warn`` receives warn and error, ``error``
only error (info ⊃ warn ⊃ error). Only transitions a person may need to act on, or wants to know about, notify:
each weight step (``Advanced``) would drown the channel, so it stays a Kubernetes Event only.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.rollout.decision import Event, EventType, Reason
from controller.rollout.spec import AlertSpec, Severity, WebhookSpec

_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.ERROR: 2}

ERROR_REASONS = frozenset(
    {
        Reason.ROLLED_BACK,
        Reason.COMPARISON_REJECTED,
        Reason.ROLLBACK_REQUESTED,
        Reason.ABORTED,
        Reason.PROGRESS_DEADLINE_EXCEEDED,
        Reason.MAX_DURATION_EXCEEDED,
        Reason.PROMOTION_STALLED,
        Reason.TARGET_MISSING,
        Reason.ROUTE_NOT_ACCEPTED,
    }
)
"""The rollout failed, was stopped or is stuck promoting: someone must look."""

WARN_REASONS = frozenset(
    {
        Reason.WAITING_APPROVAL,
        Reason.WAITING_PROMOTION,
        Reason.HALTED,
        Reason.NO_DATA,
        Reason.POST_ROLLOUT_FAILED,
        Reason.ROUTES_DRIFTED,
        Reason.USER_PAUSED,
        Reason.INCONCLUSIVE_PAUSE,
    }
)
"""The rollout waits for a person or cannot judge (Flagger alerts "waiting for approval" as warn)."""

NOTIFY_REASONS = (
    ERROR_REASONS
    | WARN_REASONS
    | frozenset(
        {
            Reason.NEW_REVISION,
            Reason.ANALYSIS_RESTARTED,
            Reason.REVERT_DETECTED,
            Reason.ROLLOUT_APPROVED,
            Reason.PROMOTION_APPROVED,
            Reason.ANALYSIS_SKIPPED,
            Reason.SUCCEEDED,
            Reason.USER_RESUMED,
            Reason.PROMOTE_FULL,
            Reason.RETRIED,
        }
    )
)
"""Reasons that notify; every other Event is recorded on the Canary only."""


def severity_for(reason: Reason, event_type: EventType = EventType.NORMAL, phase: str = "") -> Severity:
    """Rollback/failure reasons are ``error``; waits, holds and any Warning Event are ``warn``; the rest ``info``.

    ``phase`` is the phase written with the Event: a ``NoData`` Event is a warning while the rollout holds, and an
    error when it is the rollback at ``noDataLimit`` (phase ``Failed``)."""
    if reason in ERROR_REASONS or (reason is Reason.NO_DATA and phase == "Failed"):
        return Severity.ERROR
    if reason in WARN_REASONS or event_type == EventType.WARNING:
        return Severity.WARN
    return Severity.INFO


def is_notable(reason: Reason) -> bool:
    """True if an Event with this reason should notify (see :data:`NOTIFY_REASONS`)."""
    return reason in NOTIFY_REASONS


def is_muted(event: Event, webhooks: Sequence[WebhookSpec]) -> bool:
    """True if ``event`` was caused by failing webhooks of a type whose every hook has ``muteAlert: true``.

    Flagger's ``muteAlert``: a webhook known to be flaky (or alerting on its own) should not page anyone when it
    fails; the failure is still recorded as a Kubernetes Event and still counts as a failed check.
    """
    if event.hook is None:
        return False
    hooks = [hook for hook in webhooks if hook.type == event.hook]
    return bool(hooks) and all(hook.mute_alert for hook in hooks)


def should_send(provider_severity: Severity, message_severity: Severity) -> bool:
    """True if a provider configured at ``provider_severity`` receives a message of ``message_severity``."""
    return _RANK[message_severity] >= _RANK[provider_severity]


def alerts_for(alerts: Sequence[AlertSpec], message_severity: Severity) -> tuple[AlertSpec, ...]:
    """The Canary's ``analysis.alerts`` entries that receive a message of ``message_severity``, in spec order."""
    return tuple(alert for alert in alerts if should_send(alert.severity, message_severity))
