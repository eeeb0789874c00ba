"""Status conditions derived from the phase: Flagger's ``Promoted`` and kstatus' ``Ready``/``Reconciling``/``Stalled``.

Flagger users (and its Argo CD health checks) read ``Promoted``; generic tooling (``kubectl wait``, Flux, kstatus,
Argo CD) reads ``Ready`` with the abnormal-true ``Reconciling`` and ``Stalled``. ``lastTransitionTime`` only moves
when a condition's status changes, as Kubernetes conventions require. ``Stalled`` is also True while a promotion
is stalled past the progress deadline (``hold: PromotionStalled``): it needs a person, but is not rolled back.
"""

from __future__ import annotations

from controller.rollout.phases import Hold, Phase, is_in_progress
from controller.rollout.status import CanaryStatus, Condition, format_time

_PROMOTED_MESSAGES = {
    Phase.INITIALIZING: "New Deployment detected, starting initialization.",
    Phase.INITIALIZED: "Deployment initialization completed.",
    Phase.WAITING: "Waiting for approval.",
    Phase.PROGRESSING: "New revision detected, progressing canary analysis.",
    Phase.WAITING_PROMOTION: "Waiting for approval.",
    Phase.PROMOTING: "Canary analysis completed, starting primary rolling update.",
    Phase.FINALISING: "Canary analysis completed, routing all traffic to primary.",
    Phase.SUCCEEDED: "Canary analysis completed successfully, promotion finished.",
    Phase.FAILED: "Canary analysis failed, Deployment promotion failed.",
    Phase.TERMINATING: "Canary is being deleted, restoring the target.",
    Phase.TERMINATED: "Canary deleted.",
}


def _promoted(phase: Phase) -> str:
    if phase in (Phase.INITIALIZED, Phase.SUCCEEDED):
        return "True"
    if phase is Phase.FAILED:
        return "False"
    return "Unknown"


def _ready(phase: Phase) -> str:
    return "True" if phase in (Phase.INITIALIZED, Phase.SUCCEEDED) else "False"


SUSPENDED_MESSAGE = "Suspended (spec.suspend is true): no actions until it is false"


def derive_conditions(
    status: CanaryStatus, now: float, generation: int, *, suspended: bool = False
) -> tuple[Condition, ...]:
    """The four conditions for ``status`` (its phase and message), keeping transition times that did not change.

    ``suspended``: the messages say so first; the condition states stay those of the phase (Ready keeps its value).
    """
    phase = status.phase
    message = status.message or _PROMOTED_MESSAGES[phase]
    if suspended:
        message = f"{SUSPENDED_MESSAGE}. {message}"
    wanted = (
        ("Promoted", _promoted(phase), _PROMOTED_MESSAGES[phase]),
        ("Ready", _ready(phase), message),
        ("Reconciling", "True" if is_in_progress(phase) else "False", message),
        ("Stalled", "True" if phase is Phase.FAILED or status.hold is Hold.PROMOTION_STALLED else "False", message),
    )
    stamp = format_time(float(int(now)))  # Kubernetes' metav1.Time has whole seconds
    result = []
    for type_, state, text in wanted:
        previous = status.condition(type_)
        since = previous.last_transition_time if previous and previous.status == state else stamp
        result.append(
            Condition(
                type=type_,
                status=state,
                reason=phase.value,
                message=text,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return tuple(result)
