"""Carry out the engine's actions against the cluster, in order (effectful; blocking-style, run by ``ctx.blocking``).

Each action is idempotent (create-or-update, scale to a count, set weights), so replaying a tick after a crash
converges. ``act`` returns True when the engine released the Canary for deletion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.kube.api import DEPLOYMENTS, HPAS, KubeApi
from controller.kube.apply import (
    apply_primary_configs,
    apply_primary_deployment,
    apply_primary_hpa,
    apply_services,
    restore_target,
    scale,
)
from controller.kube.errors import TargetInvalid
from controller.kube.meta import primary_name
from controller.kube.objects import pod_template_hash
from controller.rollout.decision import (
    Action,
    ConvergeObjects,
    Initialize,
    PromotePrimary,
    ReleaseFinalizer,
    RestoreOnDelete,
    ScaleCanary,
    SetWeights,
)
from controller.rollout.spec import CanarySpec
from controller.routers import Router


def canary_replicas(api: KubeApi, namespace: str, spec: CanarySpec) -> int:
    """How many replicas the target gets for a new revision: the HPA's minimum, else the primary's count (≥ 1)."""
    if spec.autoscaler_ref is not None:
        hpa = api.get(HPAS, namespace, spec.autoscaler_ref.name)
        minimum = int(((hpa or {}).get("spec") or {}).get("minReplicas") or 1)
        return max(1, minimum)
    primary = api.get(DEPLOYMENTS, namespace, primary_name(spec.target_ref.name))
    return max(1, int(((primary or {}).get("spec") or {}).get("replicas") or 1))


def act(
    api: KubeApi,
    router: Router,
    canary: Mapping[str, Any],
    spec: CanarySpec,
    target: Mapping[str, Any] | None,
    actions: Sequence[Action],
) -> bool:
    """Apply ``actions`` (see module doc); raises :class:`KubeError` subclasses, naming the object, on failure."""
    namespace = str((canary.get("metadata") or {}).get("namespace", ""))
    released = False
    for action in actions:
        if isinstance(action, Initialize):
            if target is None:
                raise TargetInvalid(f"Deployment {namespace}/{spec.target_ref.name}: targetRef does not exist")
            tracked = apply_primary_configs(api, namespace, target, canary)
            apply_primary_deployment(api, namespace, target, spec, canary, tracked)
            apply_primary_hpa(api, namespace, spec, canary)
            apply_services(api, namespace, spec, target, canary)
            router.reconcile(spec, canary)
        elif isinstance(action, ConvergeObjects):
            if target is not None:
                apply_services(api, namespace, spec, target, canary)
            router.reconcile(spec, canary)
        elif isinstance(action, ScaleCanary):
            replicas = canary_replicas(api, namespace, spec) if action.up else 0
            scale(api, namespace, spec.target_ref.name, replicas)
        elif isinstance(action, SetWeights):
            router.reconcile(spec, canary)
            router.set_routes(
                action.primary, action.canary, mirror=action.mirror_weight, match_active=action.match_active
            )
        elif isinstance(action, PromotePrimary):
            if target is None or pod_template_hash(target) != action.pod_template_hash:
                raise TargetInvalid(
                    f"Deployment {namespace}/{spec.target_ref.name} changed after its analysis; not promoting it"
                )
            tracked = apply_primary_configs(api, namespace, target, canary)
            apply_primary_deployment(api, namespace, target, spec, canary, tracked, promote=True)
        elif isinstance(action, RestoreOnDelete):
            restore_target(api, namespace, spec)
            router.finalize()
        elif isinstance(action, ReleaseFinalizer):
            released = True
    return released
