"""Effectful appliers: read what the builders need, write what they build. Each function is idempotent.

The operator's act step calls these (from a thread); the pure ``build_*`` functions they use are in
:mod:`controller.kube.objects` and :mod:`controller.kube.configs`. Every write goes through
:func:`controller.kube.client.create_or_update` or :func:`~controller.kube.client.update_with_retry`, so a rerun
after a crash converges without duplicate objects and a no-op reconcile writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.kube.client import (
    CONFIGMAPS,
    DEPLOYMENTS,
    HPAS,
    SECRETS,
    SERVICES,
    KubeApi,
    create_or_update,
    describe,
    merge_desired,
    update_with_retry,
)
from controller.kube.configs import ConfigKind, build_primary_config, referenced_configs, tracked_configs
from controller.kube.errors import TargetInvalid
from controller.kube.health import Readiness, readiness
from controller.kube.meta import primary_name
from controller.kube.objects import ServiceSet, build_primary_deployment, build_primary_hpa, build_services
from controller.rollout.spec import CanarySpec

Object = dict[str, Any]


def read_target(api: KubeApi, namespace: str, spec: CanarySpec) -> Object:
    """The target Deployment; :class:`TargetInvalid` naming it when it does not exist."""
    target = api.get(DEPLOYMENTS, namespace, spec.target_ref.name)
    if target is None:
        raise TargetInvalid(f"{describe(DEPLOYMENTS, namespace, spec.target_ref.name)}: targetRef does not exist")
    return target


def read_configs(
    api: KubeApi, namespace: str, target: Mapping[str, Any]
) -> tuple[dict[str, Object], dict[str, Object]]:
    """The ConfigMaps and Secrets the target references (by name), one GET each, absent ones left out."""
    configmaps: dict[str, Object] = {}
    secrets: dict[str, Object] = {}
    for ref in referenced_configs(target):
        found = api.get(CONFIGMAPS if ref.kind is ConfigKind.CONFIGMAP else SECRETS, namespace, ref.name)
        if found is not None:
            (configmaps if ref.kind is ConfigKind.CONFIGMAP else secrets)[ref.name] = found
    return configmaps, secrets


def read_tracked_configs(api: KubeApi, namespace: str, target: Mapping[str, Any]) -> dict[str, str]:
    """``status.trackedConfigs`` for the live target (see :func:`controller.kube.configs.tracked_configs`)."""
    configmaps, secrets = read_configs(api, namespace, target)
    return tracked_configs(target, configmaps, secrets)


def _replace_content(live: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """A config copy's content is wholly the source's: a key removed from the source disappears from the copy."""
    merged = merge_desired(live, desired)
    for key in ("data", "binaryData", "stringData"):
        merged.pop(key, None)
        if key in desired:
            merged[key] = desired[key]
    merged.pop("immutable", None)
    return merged


def apply_primary_configs(
    api: KubeApi, namespace: str, target: Mapping[str, Any], canary: Mapping[str, Any]
) -> dict[str, str]:
    """Create/update the ``-primary`` copies of the tracked configs; return the checksums they were copied at."""
    configmaps, secrets = read_configs(api, namespace, target)
    tracked = tracked_configs(target, configmaps, secrets)
    for key in tracked:
        kind, _, name = key.partition("/")
        source = configmaps[name] if kind == ConfigKind.CONFIGMAP.value else secrets[name]
        resource = CONFIGMAPS if kind == ConfigKind.CONFIGMAP.value else SECRETS
        create_or_update(api, resource, namespace, build_primary_config(source, canary), _replace_content)
    return tracked


def apply_primary_deployment(
    api: KubeApi,
    namespace: str,
    target: Mapping[str, Any],
    spec: CanarySpec,
    canary: Mapping[str, Any],
    tracked: Mapping[str, str],
    *,
    promote: bool = False,
) -> Object:
    """Create ``<target>-primary`` if missing; with ``promote``, roll it to the target's current pod template.

    A promotion replaces the pod template and rollout settings but never the selector (immutable) and never the
    replica count an HPA owns; without an HPA the primary follows the target's replicas when those are non-zero
    (the target itself sits at 0 between rollouts).
    """
    name = primary_name(str(target["metadata"]["name"]))
    live = api.get(DEPLOYMENTS, namespace, name)
    if live is None:
        return api.create(DEPLOYMENTS, namespace, build_primary_deployment(target, spec, canary, tracked=tracked))
    if not promote:
        return live

    def mutate(current: Object) -> Object:
        replicas = (current.get("spec") or {}).get("replicas")
        target_replicas = (target.get("spec") or {}).get("replicas")
        if spec.autoscaler_ref is None and target_replicas:
            replicas = target_replicas
        desired = build_primary_deployment(target, spec, canary, tracked=tracked, replicas=replicas)
        updated = merge_desired(current, {"metadata": desired["metadata"]})
        updated["spec"] = {**current["spec"], **desired["spec"], "selector": current["spec"]["selector"]}
        return updated

    result = update_with_retry(api, DEPLOYMENTS, namespace, name, mutate)
    if result is None:  # deleted between the two reads: the next tick creates it
        raise TargetInvalid(f"{describe(DEPLOYMENTS, namespace, name)}: disappeared during promotion")
    return result


_NODE_PORT_TYPES = frozenset({"NodePort", "LoadBalancer"})


def _ports_keeping_node_ports(live_spec: Mapping[str, Any], ports: list[Object]) -> list[Object]:
    """Our ports, each with the ``nodePort`` the live Service already has for it (same port and protocol), so a
    NodePort/LoadBalancer entry point keeps the port its clients and load balancer use."""
    if live_spec.get("type") not in _NODE_PORT_TYPES:
        return [dict(p) for p in ports]
    allocated = {
        (int(p["port"]), str(p.get("protocol") or "TCP")): p["nodePort"]
        for p in live_spec.get("ports") or ()
        if p.get("nodePort") is not None and p.get("port") is not None
    }
    out = []
    for port in ports:
        copy = dict(port)
        node_port = allocated.get((int(copy["port"]), str(copy.get("protocol") or "TCP")))
        if node_port is not None:
            copy["nodePort"] = node_port
        out.append(copy)
    return out


def _owned_by(live: Mapping[str, Any], canary: Mapping[str, Any]) -> bool:
    uid = str((canary.get("metadata") or {}).get("uid", ""))
    refs = (live.get("metadata") or {}).get("ownerReferences") or ()
    return bool(uid) and any(str(ref.get("uid")) == uid for ref in refs)


def _service_merge(live: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """A Service Coalmine created: ports and selector are replaced, not merged (a stale selector key would select
    nothing); ``service.apex/primary/canary`` metadata on top; server-assigned fields such as ``clusterIP`` kept."""
    merged = merge_desired(live, desired)
    merged["spec"]["selector"] = dict(desired["spec"]["selector"])
    merged["spec"]["ports"] = _ports_keeping_node_ports(live.get("spec") or {}, desired["spec"]["ports"])
    return merged


def _takeover_merge(live: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
    """A Service the user made (their ``<service>`` taken over as the apex): only selector and ports are ours —
    Flagger's rule. Its ``type``, ``nodePort``s, ``externalTrafficPolicy``, ``loadBalancer*`` fields, labels and
    annotations stay exactly as the user has them, so a LoadBalancer/NodePort entry point never goes down."""
    merged = {k: v for k, v in live.items() if k != "status"}
    live_spec = dict(live.get("spec") or {})
    live_spec["selector"] = dict(desired["spec"]["selector"])
    live_spec["ports"] = _ports_keeping_node_ports(live_spec, desired["spec"]["ports"])
    merged["spec"] = live_spec
    return merged


def apply_services(
    api: KubeApi, namespace: str, spec: CanarySpec, target: Mapping[str, Any], canary: Mapping[str, Any]
) -> ServiceSet:
    """Create/update the apex, primary and canary Services (an existing apex Service is taken over: see
    :func:`_takeover_merge`)."""
    services = build_services(spec, target, canary)

    def apex_merge(live: Mapping[str, Any], desired: Mapping[str, Any]) -> Object:
        return _service_merge(live, desired) if _owned_by(live, canary) else _takeover_merge(live, desired)

    for service in (services.canary, services.primary):
        create_or_update(api, SERVICES, namespace, service, _service_merge)
    create_or_update(api, SERVICES, namespace, services.apex, apex_merge)
    return services


def apply_primary_hpa(api: KubeApi, namespace: str, spec: CanarySpec, canary: Mapping[str, Any]) -> Object | None:
    """Create/update ``<hpa>-primary`` from the HPA named by ``autoscalerRef`` (``None`` without one).

    The target's own HPA needs no handling while the target is scaled to 0: Kubernetes does not autoscale a
    Deployment with zero replicas, and it resumes when Coalmine scales the target up for a new revision.
    """
    if spec.autoscaler_ref is None:
        return None
    hpa = api.get(HPAS, namespace, spec.autoscaler_ref.name)
    if hpa is None:
        raise TargetInvalid(f"{describe(HPAS, namespace, spec.autoscaler_ref.name)}: autoscalerRef does not exist")
    return create_or_update(api, HPAS, namespace, build_primary_hpa(hpa, spec, canary))


def scale(api: KubeApi, namespace: str, name: str, replicas: int) -> Object:
    """Set a Deployment's replicas with a merge patch (only ``spec.replicas`` is written)."""
    return api.patch(DEPLOYMENTS, namespace, name, {"spec": {"replicas": int(replicas)}})


def read_readiness(api: KubeApi, namespace: str, name: str) -> Readiness | None:
    """Readiness of a Deployment, ``None`` if it does not exist."""
    deployment = api.get(DEPLOYMENTS, namespace, name)
    return None if deployment is None else readiness(deployment)


def restore_target(api: KubeApi, namespace: str, spec: CanarySpec) -> Object | None:
    """``revertOnDeletion``: give the target back the primary's replica count (at least 1) so it serves again."""
    primary = api.get(DEPLOYMENTS, namespace, primary_name(spec.target_ref.name))
    if api.get(DEPLOYMENTS, namespace, spec.target_ref.name) is None:
        return None
    replicas = int(((primary or {}).get("spec") or {}).get("replicas") or 1)
    return scale(api, namespace, spec.target_ref.name, max(1, replicas))
