"""The Deployment ``status`` a real deployment controller would write, for the states the stand-in knows.

Pure: the workload stand-in knows whether the current revision's backend answers (``ready``), whether the
previous revision still serves (``old_serving``, during a rolling update) and whether the new revision has failed
to become ready for longer than ``spec.progressDeadlineSeconds`` (``stuck``); this module turns that into the
counters and conditions the operator reads (:func:`controller.kube.health.readiness`):

- ready: ``replicas = updated = ready = available = spec.replicas``, Available/True, Progressing/True
  ``NewReplicaSetAvailable``;
- rolling (old still serving): the old pods are counted as extra, available replicas, so the new revision is
  0 % available until it answers;
- not ready without old pods: nothing available (Available/False ``MinimumReplicasUnavailable``);
- stuck: Progressing/False ``ProgressDeadlineExceeded`` (the operator rolls back on it);
- scaled to zero: all counters 0, Available/True.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Object = dict[str, Any]


@dataclass(frozen=True)
class Observed:
    """What the stand-in sees of one Deployment's backends."""

    ready: bool
    old_serving: bool = False
    stuck: bool = False


def desired_replicas(deployment: Mapping[str, Any]) -> int:
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _condition(kind: str, status: bool, reason: str, message: str) -> Object:
    return {"type": kind, "status": "True" if status else "False", "reason": reason, "message": message}


def deployment_status(deployment: Mapping[str, Any], observed: Observed) -> Object:
    """The status for ``observed`` (without timestamps: see :func:`with_times`)."""
    meta = deployment.get("metadata") or {}
    name = str(meta.get("name", ""))
    desired = desired_replicas(deployment)
    generation = int(meta.get("generation") or 1)
    if desired == 0:
        counts = {"replicas": 0, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0}
        available = _condition("Available", True, "MinimumReplicasAvailable", "Deployment has no replicas.")
        progressing = _condition("Progressing", True, "NewReplicaSetAvailable", f'"{name}" is scaled to zero.')
    elif observed.ready:
        counts = {"replicas": desired, "updatedReplicas": desired, "readyReplicas": desired}
        counts["availableReplicas"] = desired
        available = _condition("Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability.")
        progressing = _condition(
            "Progressing", True, "NewReplicaSetAvailable", f'ReplicaSet of "{name}" has successfully progressed.'
        )
    else:
        old = desired if observed.old_serving else 0
        counts = {"replicas": desired + old, "updatedReplicas": desired, "readyReplicas": old}
        counts["availableReplicas"] = old
        counts["unavailableReplicas"] = desired
        available = (
            _condition("Available", True, "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if old
            else _condition(
                "Available", False, "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
            )
        )
        if observed.stuck:
            progressing = _condition(
                "Progressing", False, "ProgressDeadlineExceeded", f'ReplicaSet of "{name}" has timed out progressing.'
            )
        else:
            progressing = _condition(
                "Progressing", True, "ReplicaSetUpdated", f'ReplicaSet of "{name}" is progressing.'
            )
    return {"observedGeneration": generation, **counts, "conditions": [available, progressing]}


def _essence(status: Mapping[str, Any]) -> tuple[Any, ...]:
    conditions = tuple(
        sorted((c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or ())
    )
    counters = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    return (*(int(status.get(k) or 0) for k in (*counters, "unavailableReplicas")), conditions)


def needs_update(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing ``desired`` changes anything a reader cares about (timestamps aside)."""
    return _essence(current or {}) != _essence(desired)


def with_times(current: Mapping[str, Any] | None, desired: Object, now: str) -> Object:
    """``desired`` with ``lastUpdateTime``/``lastTransitionTime``: kept from ``current`` while a condition's status
    is unchanged, ``now`` otherwise — Kubernetes' rule, so "since when" stays truthful."""
    previous = {c.get("type"): c for c in (current or {}).get("conditions") or ()}
    conditions = []
    for condition in desired["conditions"]:
        before = previous.get(condition["type"]) or {}
        same_status = before.get("status") == condition["status"]
        same_reason = same_status and before.get("reason") == condition["reason"]
        conditions.append(
            {
                **condition,
                "lastTransitionTime": before.get("lastTransitionTime", now) if same_status else now,
                "lastUpdateTime": before.get("lastUpdateTime", now) if same_reason else now,
            }
        )
    counts = {k: v for k, v in desired.items() if k != "conditions"}
    counts.setdefault("unavailableReplicas", None)  # merge patch: null clears a stale count (0 is omitted)
    return {**counts, "conditions": conditions}
