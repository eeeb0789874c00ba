"""How the plugin reaches the cluster: kubeconfig like kubectl, and every read/write it makes, with clear errors.

Configuration follows kubectl: ``--kubeconfig`` or ``$KUBECONFIG`` (several files separated by ``:``) or
``~/.kube/config``, ``--context`` or the current context, and the in-cluster ServiceAccount when no kubeconfig
exists (a CI job running in a Pod). The namespace is ``-n``, else the context's namespace, else ``default``.

All API failures become :class:`PluginError` with a sentence a person can act on ("no permission to patch
canaries.coalmine.dev in test (needs: patch on canaries)") and the exit code the command should end with.
The only write in the whole plugin is :func:`write_request`: a merge patch of one annotation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import config as kube_config
from kubernetes.client import Configuration

from controller.kube.client import CANARIES, DEPLOYMENTS, EVENTS, KubeClient, Resource
from controller.kube.errors import ApiError, ApiForbidden, ApiNotFound
from controller.kube.objects import pod_template_hash
from controller.rollout.request_codec import request_patch

BLUEGREENS = Resource("coalmine.dev", "v1alpha1", "bluegreens", "BlueGreen")
CORE_EVENTS = Resource("", "v1", "events", "Event")
ROLLOUT_KINDS = (CANARIES, BLUEGREENS)
_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

T = TypeVar("T")
Object = dict[str, Any]


class PluginError(Exception):
    """A failure to report to the user as one line; ``exit_code`` is what the command exits with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Cluster:
    """A connected API client, the namespace commands default to, and the kubeconfig user (for ``by``).

    ``configuration`` is the loaded kubeconfig's client configuration, kept for callers that need a second
    connection with the same credentials (``kubectl coalmine dashboard`` opens its watches with it).
    """

    api: KubeClient
    namespace: str
    user: str = ""
    configuration: Configuration | None = field(default=None, compare=False, repr=False)


def connect(kubeconfig: str | None, context: str | None, namespace: str | None, timeout_s: float = 15.0) -> Cluster:
    """Load credentials the way kubectl does (see the module docstring) and build the client."""
    configuration = Configuration()
    files = kubeconfig or os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
    present = [path for path in files.split(os.pathsep) if path and Path(path).expanduser().is_file()]
    try:
        if present:
            config_file = os.pathsep.join(present)
            contexts, current = kube_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=config_file
            )
            chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
            if chosen is None:
                names = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
                raise PluginError(f"context {context!r} is not in the kubeconfig (contexts: {names})")
            kube_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=config_file,
                context=context,
                client_configuration=configuration,
                persist_config=False,
            )
            details = chosen.get("context") or {}
            default_ns, user = details.get("namespace") or "default", str(details.get("user") or "")
        elif kubeconfig or context:
            raise PluginError(f"kubeconfig {files!r} does not exist")
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            default_ns = _SA_NAMESPACE.read_text().strip() if _SA_NAMESPACE.is_file() else "default"
            user = ""
        else:
            raise PluginError("no kubeconfig found (set KUBECONFIG or --kubeconfig) and not running in a cluster")
    except kube_config.ConfigException as exc:
        raise PluginError(f"cannot load the Kubernetes configuration: {exc}") from exc
    api = KubeClient.from_configuration(configuration, timeout_s=timeout_s, instance="kubectl-coalmine")
    return Cluster(api=api, namespace=namespace or str(default_ns), user=user, configuration=configuration)


def list_rollouts(cluster: Cluster, namespace: str | None) -> list[Object]:
    """Canaries and BlueGreens in ``namespace`` (all namespaces when None); no BlueGreen CRD is not an error."""
    found: list[Object] = []
    for resource in ROLLOUT_KINDS:
        items = _guard(partial(_list_kind, cluster, resource, namespace), "list", resource, namespace)
        found.extend({"kind": resource.kind, **item} for item in items)
    return sorted(found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"].get("name", "")))


def find_rollout(cluster: Cluster, namespace: str, name: str) -> Object:
    """The Canary (or else the BlueGreen) called ``name``; a clear error when there is neither."""
    for resource in ROLLOUT_KINDS:
        obj = _guard(partial(cluster.api.get, resource, namespace, name), "get", resource, namespace)
        if obj is not None:
            return {"kind": resource.kind, **obj}
    raise PluginError(f'no Canary or BlueGreen named "{name}" in namespace "{namespace}"')


def resource_of(obj: Mapping[str, Any]) -> Resource:
    return BLUEGREENS if obj.get("kind") == BLUEGREENS.kind else CANARIES


def list_events(cluster: Cluster, namespace: str, kind: str, name: str) -> list[Object]:
    """Events about ``kind/name`` from both Event APIs, de-duplicated (a real cluster serves one store through both).

    The API server filters them (field selectors), so a busy namespace costs no more than a quiet one. Events are
    context, not the point of any command: an Event API we may not read yields nothing, not an error.
    """
    seen: dict[str, Object] = {}
    for resource, ref in ((EVENTS, "regarding"), (CORE_EVENTS, "involvedObject")):
        selector = f"{ref}.kind={kind},{ref}.name={name}"
        try:
            items = cluster.api.list(resource, namespace, field_selector=selector)
        except ApiError:
            continue
        for item in items:
            meta = item.get("metadata") or {}
            seen.setdefault(str(meta.get("uid") or meta.get("name")), item)
    return list(seen.values())


def write_request(cluster: Cluster, obj: Mapping[str, Any], value: str) -> Object:
    """Store a manual request: a JSON merge patch of one annotation, never ``spec`` or ``status``."""
    resource = resource_of(obj)
    meta = obj.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    written = _guard(
        lambda: cluster.api.patch(resource, namespace, name, request_patch(value)), "patch", resource, namespace
    )
    return {"kind": resource.kind, **written}


def target_revision(cluster: Cluster, obj: Mapping[str, Any]) -> str | None:
    """The pod-template hash of the target Deployment, or None when it cannot be read (then nothing is inferred)."""
    spec = obj.get("spec") or {}
    target = spec.get("targetRef") or {}
    if target.get("kind", "Deployment") != "Deployment" or not target.get("name"):
        return None
    namespace = str((obj.get("metadata") or {}).get("namespace"))
    try:
        deployment = cluster.api.get(DEPLOYMENTS, namespace, str(target["name"]))
    except ApiError:
        return None
    return None if deployment is None else pod_template_hash(deployment)


def find_deployment(cluster: Cluster, namespace: str, name: str) -> Object | None:
    """A Deployment (the target or its ``-primary``), None when absent; a :class:`PluginError` worded for RBAC when
    it may not be read, so a caller can show why the images are missing instead of failing the whole view."""
    return _guard(partial(cluster.api.get, DEPLOYMENTS, namespace, name), "get", DEPLOYMENTS, namespace)


def _list_kind(cluster: Cluster, resource: Resource, namespace: str | None) -> list[Object]:
    try:
        return cluster.api.list(resource, namespace or "")
    except ApiNotFound:
        if resource is BLUEGREENS:  # the BlueGreen CRD is optional
            return []
        raise


def _guard(call: Callable[[], T], verb: str, resource: Resource, namespace: str | None) -> T:
    where = f"in {namespace}" if namespace else "cluster-wide"
    qualified = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    try:
        return call()
    except ApiForbidden as exc:
        raise PluginError(f"no permission to {verb} {qualified} {where} (needs: {verb} on {resource.plural})") from exc
    except ApiNotFound as exc:
        if verb == "list":
            raise PluginError(f"{qualified} is not served by this cluster: is the Coalmine CRD installed?") from exc
        raise PluginError(f"{resource.kind} not found: {exc.reason}") from exc
    except ApiError as exc:
        raise PluginError(f"the API server failed to {verb} {qualified} {where}: {exc}") from exc
