"""Why ``coalmine validate`` skipped a document: said out loud for kinds a user may have expected it to check.

Kubernetes' own kinds (Deployments, Services, …) are skipped silently: they sit next to every Canary. A kind from
another API group (an Argo ``Rollout``, a kustomize or Helm CRD) is reported, because a user migrating from Argo
Rollouts or with a typo in ``apiVersion`` must not read "0 invalid" as "checked and fine".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CHECKED = "Coalmine checks Canary, BlueGreen, MetricTemplate and AlertProvider of coalmine.dev and flagger.app"
ARGO_HINT = (
    "an Argo Rollout is not converted or rolled out by Coalmine; keep the Deployment and add a Canary that targets it"
)
BUILTIN_GROUPS = frozenset({"", "v1", "apps", "batch", "autoscaling", "policy"})


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def skip_reason(document: Any) -> str | None:
    """Why a document that is not checked was skipped, or None for Kubernetes' own kinds (skipped silently)."""
    if not isinstance(document, Mapping):
        return None
    api_version = document.get("apiVersion")
    kind = document.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group = _group(api_version)
    if group in BUILTIN_GROUPS or group.endswith(".k8s.io"):
        return None
    if group == "argoproj.io" and kind == "Rollout":
        return f"skipped: {api_version} {kind} is an Argo Rollouts kind; {ARGO_HINT}"
    return f"skipped: {api_version} {kind} is not a Coalmine kind ({CHECKED})"
