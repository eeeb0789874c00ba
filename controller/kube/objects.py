"""Pure builders for the Kubernetes objects Coalmine creates: dicts in, dicts out, no I/O.

Flagger's model (see docs/cluster-objects.md): from the user's unmodified target Deployment ``<target>`` we derive
``<target>-primary`` (the stable copy that serves traffic), three ClusterIP Services (``<svc>`` apex → primary,
``<svc>-primary``, ``<svc>-canary``), ``-primary`` copies of the ConfigMaps/Secrets the pod spec references, and
a ``-primary`` copy of the target's HPA. Everything here is deterministic so the operator can rebuild the desired
object on every tick and write only when it differs from the live one; the effectful side is
:mod:`controller.kube.client`.

Config tracking and readiness (also pure) live in :mod:`controller.kube.configs` and :mod:`controller.kube.health`
and are re-exported here so callers have one place to import builders from.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controller.kube.configs import (
    CONFIG_TRACKING_ANNOTATION,
    ConfigRef,
    build_primary_config,
    config_checksum,
    referenced_configs,
    rewrite_config_refs,
    tracked_configs,
)
from controller.kube.errors import TargetInvalid
from controller.kube.health import Readiness, readiness, readiness_percent
from controller.kube.meta import (
    ANNOTATION_PREFIX,
    CANARY_API_VERSION,
    CANARY_KIND,
    copyable_annotations,
    copyable_labels,
    is_owned_by,
    owner_reference,
    primary_name,
)
from controller.rollout.spec import CanarySpec

__all__ = [
    "CANARY_API_VERSION",
    "CANARY_KIND",
    "CONFIGS_CHECKSUM_ANNOTATION",
    "CONFIG_TRACKING_ANNOTATION",
    "PROMOTED_HASH_ANNOTATION",
    "REPORTING_CONTROLLER",
    "SELECTOR_LABELS",
    "ConfigRef",
    "Readiness",
    "ServiceSet",
    "build_event",
    "build_primary_config",
    "build_primary_deployment",
    "build_primary_hpa",
    "build_services",
    "config_checksum",
    "copyable_annotations",
    "copyable_labels",
    "is_owned_by",
    "owner_reference",
    "pod_template_hash",
    "primary_name",
    "readiness",
    "readiness_percent",
    "referenced_configs",
    "rewrite_config_refs",
    "selector_label",
    "service_names",
    "tracked_configs",
]

Object = dict[str, Any]

REPORTING_CONTROLLER = "coalmine.dev/operator"
PROMOTED_HASH_ANNOTATION = "coalmine.dev/promoted-template-hash"
CONFIGS_CHECKSUM_ANNOTATION = "coalmine.dev/configs-checksum"

# Flagger looks for the pod selector under these keys, in this order.
SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")

# Sidecars never get a discovered Service port (Flagger's list).
_SIDECARS = frozenset({"istio-proxy", "envoy"})


def service_names(spec: CanarySpec) -> tuple[str, str, str]:
    """``(apex, primary, canary)`` Service names: ``service.name`` or the target's name, then the suffixes."""
    apex = spec.service.name or spec.target_ref.name
    return apex, f"{apex}-primary", f"{apex}-canary"


def selector_label(deployment: Mapping[str, Any]) -> tuple[str, str]:
    """The (label, value) that selects the target's pods: the first of ``app``, ``name``, ``app.kubernetes.io/name``.

    Raises :class:`TargetInvalid` naming the Deployment when none is there — Coalmine needs it to tell primary
    pods (``<value>-primary``) from canary pods.
    """
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    for label in SELECTOR_LABELS:
        if match.get(label):
            return label, str(match[label])
    meta = deployment.get("metadata") or {}
    raise TargetInvalid(
        f"Deployment {meta.get('namespace', '')}/{meta.get('name', '')}: spec.selector.matchLabels must contain "
        f"one of {', '.join(SELECTOR_LABELS)}"
    )


def _prune(value: Any) -> Any:
    """Drop None and empty containers recursively, so ``annotations: {}`` and a missing key hash the same."""
    if isinstance(value, Mapping):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def _digest(value: Any, size: int = 16) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:size]


def pod_template_hash(deployment: Mapping[str, Any]) -> str:
    """A stable hash of the pod template: what identifies a revision of the target.

    It ignores what is not the revision — ``replicas`` (outside the template), Coalmine's own ``coalmine.dev/``
    annotations, key order and empty fields — so scaling, re-serialising or our bookkeeping never looks like a new
    release, while any change to containers, volumes, labels or other annotations does.
    """
    template = dict((deployment.get("spec") or {}).get("template") or {})
    meta = dict(template.get("metadata") or {})
    meta["annotations"] = {
        k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(ANNOTATION_PREFIX)
    }
    meta.pop("creationTimestamp", None)
    template["metadata"] = meta
    return _digest(_prune(template))


def _relabel(labels: Mapping[str, str] | None, label: str, value: str) -> dict[str, str]:
    return {**dict(labels or {}), label: value}


def build_primary_deployment(
    target: Mapping[str, Any],
    spec: CanarySpec,
    canary_owner: Mapping[str, Any],
    *,
    tracked: Mapping[str, str] | None = None,
    replicas: int | None = None,
) -> Object:
    """``<target>-primary``: the target's pod spec with the selector label ``<value>-primary``.

    ConfigMap/Secret references listed in ``tracked`` (keys ``configmap/NAME``/``secret/NAME``, as returned by
    :func:`tracked_configs`) point at their ``-primary`` copies, and the pod template carries their combined
    checksum so a config-only promotion still rolls the primary's pods. ``replicas`` defaults to the target's
    (at least 1); pass the live primary's count when an HPA owns it. Annotation ``coalmine.dev/promoted-template-
    hash`` records which target revision the primary runs.
    """
    del spec  # the primary depends on the target only; the parameter keeps the builder signatures uniform
    meta = target.get("metadata") or {}
    tspec = target.get("spec") or {}
    template = tspec.get("template") or {}
    tmeta = template.get("metadata") or {}
    label, value = selector_label(target)
    primary_value = primary_name(value)
    tracked = dict(tracked or {})

    pod_annotations = dict(tmeta.get("annotations") or {})
    if tracked:
        pod_annotations[CONFIGS_CHECKSUM_ANNOTATION] = _digest(sorted(tracked.items()))
    pod_meta: Object = {"labels": _relabel(tmeta.get("labels"), label, primary_value)}
    if pod_annotations:
        pod_meta["annotations"] = pod_annotations

    target_replicas = tspec.get("replicas")
    if replicas is None:
        replicas = int(target_replicas) if target_replicas else 1

    body: Object = {
        "replicas": replicas,
        "selector": {"matchLabels": {label: primary_value}},
        "template": {
            "metadata": pod_meta,
            "spec": rewrite_config_refs(template.get("spec") or {}, tracked),
        },
    }
    for key in ("strategy", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        if key in tspec:
            body[key] = tspec[key]

    annotations = copyable_annotations(meta.get("annotations"))
    annotations[PROMOTED_HASH_ANNOTATION] = pod_template_hash(target)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": primary_name(str(meta["name"])),
            "namespace": meta.get("namespace"),
            "labels": _relabel(copyable_labels(meta.get("labels")), label, primary_value),
            "annotations": annotations,
            "ownerReferences": [owner_reference(canary_owner)],
        },
        "spec": body,
    }


@dataclass(frozen=True)
class ServiceSet:
    """The three ClusterIP Services: ``apex`` (what clients call; selects the primary), ``primary``, ``canary``."""

    apex: Object
    primary: Object
    canary: Object

    def all(self) -> tuple[Object, Object, Object]:
        return self.apex, self.primary, self.canary


def _discovered_ports(spec: CanarySpec, template_spec: Mapping[str, Any]) -> list[Object]:
    """``service.portDiscovery``: every other container port (sidecars excluded), named as Flagger names them."""
    service = spec.service
    main = service.target_port if service.target_port is not None else service.port
    ports: dict[str, int] = {}
    for container in template_spec.get("containers") or ():
        if container.get("name") in _SIDECARS:
            continue
        for index, port in enumerate(container.get("ports") or ()):
            number = int(port["containerPort"])
            if number == main or (isinstance(main, str) and port.get("name") == main):
                continue
            ports.setdefault(port.get("name") or f"tcp-{container.get('name')}-{index}", number)
    return [
        {"name": name, "protocol": "TCP", "port": number, "targetPort": number}
        for name, number in sorted(ports.items())
        if number != service.port
    ]


def build_services(spec: CanarySpec, target: Mapping[str, Any], canary_owner: Mapping[str, Any]) -> ServiceSet:
    """The apex, primary and canary Services for the target, with ``service.apex/primary/canary`` metadata.

    The apex and primary select ``<value>-primary`` pods, the canary selects the target's own pods; each carries
    the port (``portName``, ``targetPort`` defaulting to ``port``, ``appProtocol``) plus discovered ports.
    """
    label, value = selector_label(target)
    namespace = (target.get("metadata") or {}).get("namespace")
    service = spec.service
    port: Object = {
        "name": service.port_name,
        "protocol": "TCP",
        "port": service.port,
        "targetPort": service.target_port if service.target_port is not None else service.port,
    }
    if service.app_protocol:
        port["appProtocol"] = service.app_protocol
    ports = [port]
    if service.port_discovery:
        template_spec = ((target.get("spec") or {}).get("template") or {}).get("spec") or {}
        ports += _discovered_ports(spec, template_spec)

    def one(name: str, pods: str, custom: Mapping[str, Any] | None) -> Object:
        custom = custom or {}
        metadata: Object = {
            "name": name,
            "namespace": namespace,
            "labels": {**dict(custom.get("labels") or {}), label: name},
            "ownerReferences": [owner_reference(canary_owner)],
        }
        annotations = copyable_annotations(custom.get("annotations"))
        if annotations:
            metadata["annotations"] = annotations
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {"type": "ClusterIP", "selector": {label: pods}, "ports": [dict(p) for p in ports]},
        }

    apex, primary, canary = service_names(spec)
    return ServiceSet(
        apex=one(apex, primary_name(value), service.apex),
        primary=one(primary, primary_name(value), service.primary),
        canary=one(canary, value, service.canary),
    )


def build_primary_hpa(
    hpa: Mapping[str, Any], spec: CanarySpec, canary_owner: Mapping[str, Any] | None = None
) -> Object:
    """``<hpa>-primary`` (autoscaling/v2) scaling ``<target>-primary`` with the target HPA's metrics and behavior.

    ``autoscalerRef.primaryScalerReplicas`` (``minReplicas``/``maxReplicas``) overrides the bounds for the primary,
    e.g. to keep enough capacity for 100 % of traffic after promotion.
    """
    meta = hpa.get("metadata") or {}
    source = hpa.get("spec") or {}
    ref = source.get("scaleTargetRef") or {}
    body: Object = {
        "scaleTargetRef": {
            "apiVersion": ref.get("apiVersion", "apps/v1"),
            "kind": ref.get("kind", "Deployment"),
            "name": primary_name(spec.target_ref.name),
        },
        "maxReplicas": int(source.get("maxReplicas", 1)),
    }
    for key in ("minReplicas", "metrics", "behavior"):
        if source.get(key) is not None:
            body[key] = source[key]
    for key, value in (spec.primary_scaler_replicas or {}).items():
        if key in ("minReplicas", "maxReplicas"):
            body[key] = int(value)
    metadata: Object = {
        "name": primary_name(str(meta["name"])),
        "namespace": meta.get("namespace"),
        "labels": copyable_labels(meta.get("labels")),
    }
    if canary_owner is not None:
        metadata["ownerReferences"] = [owner_reference(canary_owner)]
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata, "spec": body}


def build_event(
    regarding: Mapping[str, Any],
    *,
    reason: str,
    note: str,
    action: str,
    type_: str,
    now: datetime,
    instance: str,
) -> Object:
    """An ``events.k8s.io/v1`` Event about ``regarding`` (reason CamelCase; the note is the human sentence).

    Limits are the API server's: reason/action ≤ 128 characters, note ≤ 1 kB.
    """
    meta = regarding.get("metadata") or {}
    ref: Object = {
        "apiVersion": regarding.get("apiVersion", CANARY_API_VERSION),
        "kind": regarding.get("kind", CANARY_KIND),
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
    }
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    note_bytes = note.encode()
    if len(note_bytes) > 1024:
        note = note_bytes[:1021].decode("utf-8", "ignore") + "..."
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
        "eventTime": (now.astimezone(UTC) if now.tzinfo else now).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "reportingController": REPORTING_CONTROLLER,
        "reportingInstance": instance[:128],
        "action": action[:128],
        "reason": reason[:128],
        "note": note,
        "type": type_,
        "regarding": ref,
    }
