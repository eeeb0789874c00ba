"""The endpoint registry: where each Deployment's backend listens, kept in the API for the router to read.

There are no Pods or Endpoints in the emulated API, so the workload stand-in (the "kubelet") publishes each running
backend in one ConfigMap per namespace, ``coalmine-sandbox-endpoints``: key = Deployment name, value = JSON
``{"address": "127.0.0.1:PORT", "revision": …, "labels": {pod template labels}, "version": …, "pid": …}``.
``kubectl get configmap coalmine-sandbox-endpoints -o yaml`` shows what runs where. Keeping it in the API (rather
than a file) means the router needs nothing but a kubeconfig, like a sidecar that only talks to the control plane.

The router turns a destination host into a backend the way Kubernetes does: the Service of that name selects pods
by labels, and the backends whose pod template labels include the Service's selector serve it (``<svc>-primary``
selects ``app: <target>-primary``, i.e. the ``<target>-primary`` Deployment). When no such Service exists the host
is taken as a Deployment name (``<name>-canary`` → ``<name>``), so a VirtualService written by hand still works.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.kube.api import CONFIGMAPS, KubeApi

REGISTRY_CONFIGMAP = "coalmine-sandbox-endpoints"
CANARY_SUFFIX = "-canary"


@dataclass(frozen=True)
class Endpoint:
    """One running backend: the Deployment it stands for, its address, revision, pod labels, version and pid."""

    deployment: str
    address: str
    revision: str
    labels: Mapping[str, str] = field(default_factory=dict)
    version: str = "unknown"
    pid: int = 0

    def to_json(self) -> str:
        body = {
            "address": self.address,
            "revision": self.revision,
            "labels": dict(self.labels),
            "version": self.version,
            "pid": self.pid,
        }
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, deployment: str, raw: str) -> Endpoint:
        body: dict[str, Any] = json.loads(raw)
        return cls(
            deployment=deployment,
            address=str(body["address"]),
            revision=str(body.get("revision", "")),
            labels={str(k): str(v) for k, v in (body.get("labels") or {}).items()},
            version=str(body.get("version", "unknown")),
            pid=int(body.get("pid") or 0),
        )


def parse_registry(configmap: Mapping[str, Any] | None) -> dict[str, Endpoint]:
    """The endpoints a registry ConfigMap lists (entries that don't parse are skipped, not fatal)."""
    endpoints: dict[str, Endpoint] = {}
    for name, raw in ((configmap or {}).get("data") or {}).items():
        try:
            endpoints[name] = Endpoint.from_json(name, raw)
        except (ValueError, KeyError, TypeError):
            continue
    return endpoints


class Registry:
    """Reads and writes the registry ConfigMap of one namespace (blocking: call it from a thread)."""

    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace

    def read(self) -> dict[str, Endpoint]:
        return parse_registry(self.api.get(CONFIGMAPS, self.namespace, REGISTRY_CONFIGMAP))

    def publish(self, endpoint: Endpoint) -> None:
        """Record (or replace) the Deployment's backend; creates the ConfigMap on first use."""
        data = {endpoint.deployment: endpoint.to_json()}
        if self.api.get(CONFIGMAPS, self.namespace, REGISTRY_CONFIGMAP) is None:
            body = {
                "metadata": {"name": REGISTRY_CONFIGMAP, "labels": {"app.kubernetes.io/part-of": "coalmine-sandbox"}},
                "data": data,
            }
            self.api.create(CONFIGMAPS, self.namespace, body)
            return
        self.api.patch(CONFIGMAPS, self.namespace, REGISTRY_CONFIGMAP, {"data": data})

    def withdraw(self, deployment: str) -> None:
        """Forget the Deployment's backend (nothing to do when the ConfigMap or the entry is gone)."""
        if deployment in self.read():
            self.api.patch(CONFIGMAPS, self.namespace, REGISTRY_CONFIGMAP, {"data": {deployment: None}})


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def resolve(host: str, selectors: Mapping[str, Mapping[str, str]], endpoints: Mapping[str, Endpoint]) -> list[Endpoint]:
    """The backends serving the Service ``host`` (see the module docstring); empty when none runs.

    ``selectors`` maps Service name → ``spec.selector`` for the Services in the namespace.
    """
    if host in selectors:
        selector = selectors[host]
        return [e for _, e in sorted(endpoints.items()) if _selects(selector, e.labels)]
    name = host.removesuffix(CANARY_SUFFIX)
    return [endpoints[name]] if name in endpoints else []
