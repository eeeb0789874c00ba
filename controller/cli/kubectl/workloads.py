"""The target's and primary's Deployments as people read them: images, replicas ready, revisions.

Argo Rollouts' tree shows them next to the rollout; ``kubectl coalmine get NAME`` and the dashboard both show them
from here. A Deployment that is missing or may not be read is a row saying why, never a failed view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.cli.kubectl.access import Cluster, PluginError, find_deployment
from controller.kube.meta import primary_name
from controller.kube.objects import pod_template_hash


def workload(deployment: Mapping[str, Any] | None, name: str, note: str = "") -> dict[str, Any]:
    """A Deployment's images and revisions; ``note`` says why it is missing (absent, or no permission)."""
    if deployment is None:
        return {"name": name, "found": False, "note": note or "not found", "images": []}
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers = [*(pod_spec.get("initContainers") or ()), *(pod_spec.get("containers") or ())]
    return {
        "name": name,
        "found": True,
        "note": note,
        "images": [{"container": str(c.get("name", "")), "image": str(c.get("image", ""))} for c in containers],
        "templateHash": pod_template_hash(deployment),
        "revision": (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision"),
        "generation": meta.get("generation"),
        "replicas": spec.get("replicas"),
        "readyReplicas": status.get("readyReplicas", 0),
        "updatedReplicas": status.get("updatedReplicas", 0),
    }


def read_workload(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """:func:`workload` of the Deployment ``name``, read with the user's credentials."""
    try:
        return workload(find_deployment(cluster, namespace, name), name)
    except PluginError as exc:
        return workload(None, name, str(exc))


def rollout_workloads(cluster: Cluster, namespace: str, rollout: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"target": …, "primary": …}`` for a Canary or BlueGreen (its ``spec.targetRef`` and ``-primary``)."""
    meta = rollout.get("metadata") or {}
    target = str(((rollout.get("spec") or {}).get("targetRef") or {}).get("name") or meta.get("name", ""))
    return {
        "target": read_workload(cluster, namespace, target),
        "primary": read_workload(cluster, namespace, primary_name(target)),
    }
