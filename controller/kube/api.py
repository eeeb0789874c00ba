"""The vocabulary every Kubernetes adapter shares: resources, patch types, the :class:`KubeApi` interface, and the
record of API calls from which the operator's RBAC is derived. No I/O here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote

Object = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One API resource: where it lives (group/version/plural) and what it is called (kind) in messages."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path, e.g. ``/apis/apps/v1/namespaces/ns/deployments/x/status``."""
        parts = ["/api/v1"] if not self.group else [f"/apis/{self.group}/{self.version}"]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
        if subresource:
            parts.append(subresource)
        return "/".join(parts)


DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler")
EVENTS = Resource("events.k8s.io", "v1", "events", "Event")
VIRTUAL_SERVICES = Resource("networking.istio.io", "v1beta1", "virtualservices", "VirtualService")
DESTINATION_RULES = Resource("networking.istio.io", "v1beta1", "destinationrules", "DestinationRule")
CANARIES = Resource("coalmine.dev", "v1alpha1", "canaries", "Canary")
BLUEGREENS = Resource("coalmine.dev", "v1alpha1", "bluegreens", "BlueGreen")
METRIC_TEMPLATES = Resource("coalmine.dev", "v1alpha1", "metrictemplates", "MetricTemplate")
ALERT_PROVIDERS = Resource("coalmine.dev", "v1alpha1", "alertproviders", "AlertProvider")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")  # leader election (controller.operator.leader)


class PatchType(StrEnum):
    """The three patch flavours the API server accepts; the value is the Content-Type."""

    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    JSON = "application/json-patch+json"


@dataclass(frozen=True)
class ApiCall:
    """One request as RBAC sees it: ``verb`` on ``resource`` (``plural`` or ``plural/subresource``) in ``group``."""

    verb: str
    group: str
    resource: str


Recorder = Callable[[ApiCall], None]


def rbac_rules(calls: Iterable[ApiCall]) -> list[dict[str, Any]]:
    """ClusterRole ``rules`` covering exactly the recorded calls: one rule per (group, resource), verbs sorted.

    Run the test suite with a recorder and this gives the least privilege the operator actually needs.
    """
    verbs: dict[tuple[str, str], set[str]] = {}
    for call in calls:
        verbs.setdefault((call.group, call.resource), set()).add(call.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(names)}
        for (group, resource), names in sorted(verbs.items())
    ]


Merge = Callable[[Mapping[str, Any], Mapping[str, Any]], Object]


class KubeApi(Protocol):
    """The small interface routers and appliers need; :class:`KubeClient` implements it over HTTP.

    ``replace`` sends the body's ``metadata.resourceVersion``: a stale one raises :class:`ApiConflict`.
    """

    def get(self, resource: Resource, namespace: str, name: str) -> Object | None:
        """The object, or None when it does not exist; a fresh object the caller may change or keep."""
        ...

    def list(self, resource: Resource, namespace: str, label_selector: str | None = None) -> list[Object]: ...

    def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object: ...

    def replace(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Object: ...

    def patch(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
    ) -> Object: ...

    def delete(self, resource: Resource, namespace: str, name: str) -> bool: ...


def describe(resource: Resource, namespace: str | None, name: str | None) -> str:
    """``Deployment default/podinfo`` — how every message names an object."""
    where = f"{namespace}/{name}" if namespace and name else (name or namespace or "")
    return f"{resource.kind} {where}".strip()
