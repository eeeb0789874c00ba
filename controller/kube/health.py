"""How ready a Deployment is, computed the way Flagger's readiness check reads Deployment status (pure).

The engine compares :func:`readiness_percent` with ``primaryReadyThreshold``/``canaryReadyThreshold``; the
:class:`Readiness` record adds whether the rollout has finished, whether Kubernetes gave up on it
(``ProgressDeadlineExceeded``) and a sentence for status and Events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Readiness:
    """``percent``: available pods of the current template as a share of the desired replicas (0..100).

    ``complete``: every desired replica runs the current template, is available, and no old pod is left.
    ``stuck``: the Deployment controller reports ``ProgressDeadlineExceeded`` (it will not get better by waiting).
    """

    percent: float
    complete: bool
    stuck: bool
    message: str


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return None


def readiness(deployment: Mapping[str, Any]) -> Readiness:
    """Readiness of a Deployment from its ``spec.replicas`` and ``status``.

    - Until the Deployment controller has observed the latest ``metadata.generation`` the status describes an
      older spec, so the answer is 0 % ("waiting") rather than a stale 100 %.
    - Old pods still running during a rolling update are assumed to be the available ones first, so the percent
      never counts an old pod as a new one.
    - Zero desired replicas is vacuously 100 % ready (nothing to wait for); the engine decides whether a scaled-to-
      zero Deployment may receive traffic.
    """
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    generation = int(meta.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if generation and observed < generation:
        return Readiness(
            0.0, False, False, f"Deployment {name}: waiting for the controller to observe generation {generation}"
        )
    progressing = _condition(status, "Progressing") or {}
    stuck = progressing.get("reason") == "ProgressDeadlineExceeded"
    desired = int(spec["replicas"]) if spec.get("replicas") is not None else 1
    replicas = int(status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    old = max(0, replicas - updated)
    if desired == 0:
        return Readiness(100.0, old == 0 and replicas == 0, stuck, f"Deployment {name}: scaled to zero")
    available_updated = max(0, min(updated, available - old))
    percent = min(100.0, 100.0 * available_updated / desired)
    complete = updated >= desired and old == 0 and available >= desired
    if stuck:
        message = f"Deployment {name}: exceeded its progress deadline"
    elif updated < desired:
        message = f"Deployment {name}: waiting for rollout to finish: {updated} of {desired} replicas updated"
    elif old:
        message = f"Deployment {name}: waiting for rollout to finish: {old} old replicas pending termination"
    else:
        message = f"Deployment {name}: {available_updated} of {desired} updated replicas available"
    return Readiness(percent, complete, stuck, message)


def readiness_percent(deployment: Mapping[str, Any]) -> float:
    """Available current-template replicas as a percentage of the desired replicas (see :func:`readiness`)."""
    return readiness(deployment).percent
