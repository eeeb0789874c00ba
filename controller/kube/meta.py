"""Metadata conventions shared by every object Coalmine owns: names, owner references, what is never copied.

Pure and tiny, so the builders in :mod:`controller.kube.objects` and :mod:`controller.kube.configs` agree on them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CANARY_API_VERSION = "coalmine.dev/v1alpha1"
CANARY_KIND = "Canary"
OWNER_KINDS = frozenset({CANARY_KIND, "BlueGreen"})
"""The Coalmine kinds that own objects (a BlueGreen owns exactly what a Canary would)."""
ANNOTATION_PREFIX = "coalmine.dev/"

# Metadata never copied onto objects Coalmine owns: kubectl/Deployment bookkeeping, and the keys GitOps tools use
# to track what belongs to an application (a copied tracking label makes Argo CD or Flux treat the ``-primary``
# copy as part of the app and prune it, or report it out of sync).
_DROPPED_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "argocd.argoproj.io/tracking-id",
    }
)
_DROPPED_LABELS = frozenset(
    {
        "app.kubernetes.io/instance",
        "kustomize.toolkit.fluxcd.io/name",
        "kustomize.toolkit.fluxcd.io/namespace",
        "helm.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/namespace",
    }
)


def primary_name(name: str) -> str:
    return f"{name}-primary"


def owner_reference(canary: Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to the Canary (given as the whole object or just its ``metadata``).

    Owned objects are garbage-collected with the Canary; ``blockOwnerDeletion`` keeps a foreground delete of the
    Canary waiting for them, as Flagger does.
    """
    meta = canary.get("metadata", canary)
    return {
        "apiVersion": str(canary.get("apiVersion", CANARY_API_VERSION)),
        "kind": str(canary.get("kind", CANARY_KIND)),
        "name": str(meta["name"]),
        "uid": str(meta.get("uid", "")),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_owned_by(obj: Mapping[str, Any], canary_name: str) -> bool:
    """Whether ``obj`` has a controller owner reference to Coalmine's Canary called ``canary_name``.

    The API group is checked too: an object owned by a *Flagger* Canary of the same name (a cluster migrating from
    Flagger) is someone else's, to be saved and restored rather than adopted.
    """
    group = CANARY_API_VERSION.split("/")[0] + "/"
    return any(
        ref.get("kind") in OWNER_KINDS
        and str(ref.get("apiVersion", "")).startswith(group)
        and ref.get("name") == canary_name
        and ref.get("controller")
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or ()
    )


def copyable_annotations(annotations: Mapping[str, str] | None) -> dict[str, str]:
    """Annotations worth copying onto a Coalmine-owned object (no bookkeeping, no GitOps tracking, none of ours)."""
    return {
        k: v
        for k, v in (annotations or {}).items()
        if k not in _DROPPED_ANNOTATIONS and not k.startswith(ANNOTATION_PREFIX)
    }


def copyable_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Object labels worth copying onto a Coalmine-owned object (GitOps tracking labels dropped)."""
    return {k: v for k, v in (labels or {}).items() if k not in _DROPPED_LABELS}
