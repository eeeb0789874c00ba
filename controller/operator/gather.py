"""Read what the engine needs from the cluster for one tick (effectful; blocking-style, see ``ctx.blocking``).

Everything read here ends up in :class:`~controller.rollout.observations.Observations`; nothing is decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.kube.api import DEPLOYMENTS, KubeApi
from controller.kube.apply import read_tracked_configs
from controller.kube.health import readiness
from controller.kube.meta import primary_name
from controller.kube.objects import PROMOTED_HASH_ANNOTATION, pod_template_hash
from controller.rollout.observations import Observations, RouteWeights, TargetObservation
from controller.rollout.request_codec import REQUEST_ANNOTATION, decode_request
from controller.rollout.spec import CanarySpec
from controller.routers import Router

_HASHES_KEPT = 16384
_template_hashes: dict[tuple[str, str], str] = {}


def _template_hash(deployment: Mapping[str, Any]) -> str:
    """:func:`pod_template_hash` of a Deployment as the API server returned it, remembered by its uid and
    ``resourceVersion`` (which name one content): every tick of every Canary hashes its target, which rarely
    changes, and the canonical JSON and digest were a twentieth of a busy operator's CPU."""
    meta = deployment.get("metadata") or {}
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    if not uid or not version:
        return pod_template_hash(deployment)
    key = (str(uid), str(version))
    found = _template_hashes.get(key)
    if found is None:
        if len(_template_hashes) >= _HASHES_KEPT:
            _template_hashes.clear()  # a crude bound: one tick per Canary fills it again
        found = _template_hashes[key] = pod_template_hash(deployment)
    return found


@dataclass(frozen=True)
class Gathered:
    """Observations without the look and hooks (those come after ``plan``), and the target object for ``act``."""

    observations: Observations
    target: Mapping[str, Any] | None


def gather(api: KubeApi, router: Router, canary: Mapping[str, Any], spec: CanarySpec) -> Gathered:
    """One GET each for the target, the primary and the routes; tracked configs when the target exists."""
    meta = canary.get("metadata") or {}
    namespace = str(meta.get("namespace", ""))
    target = api.get(DEPLOYMENTS, namespace, spec.target_ref.name)
    if target is None:
        target_obs = TargetObservation(exists=False)
        canary_ready, canary_stalled = 0.0, False
    else:
        target_obs = TargetObservation(
            exists=True,
            pod_template_hash=_template_hash(target),
            tracked_configs=read_tracked_configs(api, namespace, target),
            generation=int((target.get("metadata") or {}).get("generation") or 0),
        )
        target_health = readiness(target)
        canary_ready, canary_stalled = target_health.percent, target_health.stuck
    primary = api.get(DEPLOYMENTS, namespace, primary_name(spec.target_ref.name))
    if primary is None:
        primary_ready, primary_updated, primary_revision = 0.0, False, ""
    else:
        health = readiness(primary)
        primary_ready, primary_updated = health.percent, health.complete
        primary_revision = str(
            ((primary.get("metadata") or {}).get("annotations") or {}).get(PROMOTED_HASH_ANNOTATION, "")
        )
    routes = router.get_routes()
    annotations = meta.get("annotations") or {}
    observations = Observations(
        target=target_obs,
        primary_ready_percent=primary_ready,
        canary_ready_percent=canary_ready,
        canary_stalled=canary_stalled,
        primary_updated=primary_updated,
        primary_revision=primary_revision,
        routes=None if routes is None else RouteWeights(routes.primary, routes.canary),
        route_problem=router.route_problem(),
        request=decode_request(annotations.get(REQUEST_ANNOTATION)),
        generation=int(meta.get("generation") or 0),
        deleting=meta.get("deletionTimestamp") is not None,
    )
    return Gathered(observations, target)
