"""The resources the emulator serves: built-in kinds, kopf's peerings, and (through CRDs) Istio, Gateway API, Coalmine.

Each :class:`ResourceSpec` says what a real API server does differently per resource: whether it is namespaced,
which subresources it has (``status`` splits writes; ``scale`` for Deployments), whether ``metadata.generation``
exists, whether strategic merge patches are accepted (built-in kinds only — custom resources answer 415), for
custom resources the CRD schema writes are pruned, defaulted and validated against, and whether the objects are
another resource's, converted (``events.k8s.io/v1`` Events are stored as ``v1`` Events, :mod:`.events`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import events
from .schemas import CrdInfo, SchemaValidator

REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_CRDS = REPO_ROOT / "crds"
COALMINE_GROUP = "coalmine.dev"
COALMINE_VERSION = "v1alpha1"
CRD_RESOURCE = "apiextensions.k8s.io/v1/customresourcedefinitions"


@dataclass(frozen=True)
class ResourceSpec:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: frozenset[str] = frozenset()
    generation: bool = False
    builtin: bool = True
    storage_version: str = ""  # where objects live when several versions are served ("" = this version)
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    schema: Mapping[str, Any] | None = None
    validator: SchemaValidator | None = None
    # Another group's resource whose objects this one serves, converted (events.k8s.io/v1 Events are v1 Events):
    storage: str = ""  # that resource's key
    to_storage: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    from_storage: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The ``group/version/plural`` string kmock's ``resources`` and ``objects`` understand."""
        return f"{self.group}/{self.version}/{self.plural}" if self.group else f"{self.version}/{self.plural}"

    @property
    def storage_key(self) -> str:
        if self.storage:
            return self.storage
        version = self.storage_version or self.version
        return f"{self.group}/{version}/{self.plural}" if self.group else f"{version}/{self.plural}"

    @property
    def qualified(self) -> str:
        """``deployments.apps`` — how the API server names a resource in error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_STATUS = frozenset({"status"})


def builtin_specs() -> list[ResourceSpec]:
    """Built-in kinds the operator and kopf touch, plus kopf's CRDs (schemaless, preserved as written).

    Istio's and Gateway API's kinds are not here: they are served from their real CRDs (:mod:`.vendored`)."""
    specs = [
        ResourceSpec("", "v1", "namespaces", "Namespace", namespaced=False, subresources=_STATUS, short_names=("ns",)),
        ResourceSpec("", "v1", "services", "Service", subresources=_STATUS, short_names=("svc",)),
        ResourceSpec("", "v1", "configmaps", "ConfigMap", short_names=("cm",)),
        ResourceSpec("", "v1", "secrets", "Secret"),
        ResourceSpec("", "v1", "events", "Event", short_names=("ev",)),
        ResourceSpec("", "v1", "pods", "Pod", subresources=_STATUS, short_names=("po",)),
        ResourceSpec(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            short_names=("ev",),
            storage="v1/events",
            to_storage=events.to_core,
            from_storage=events.to_events,
        ),
        ResourceSpec(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            subresources=frozenset({"status", "scale"}),
            generation=True,
            short_names=("deploy",),
            categories=("all",),
        ),
        ResourceSpec(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            subresources=_STATUS,
            generation=True,
            short_names=("hpa",),
        ),
        ResourceSpec("coordination.k8s.io", "v1", "leases", "Lease"),
        ResourceSpec(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            subresources=_STATUS,
            generation=True,
            short_names=("crd", "crds"),
        ),
        ResourceSpec("kopf.dev", "v1", "kopfpeerings", "KopfPeering", generation=True, builtin=False),
        ResourceSpec(
            "kopf.dev",
            "v1",
            "clusterkopfpeerings",
            "ClusterKopfPeering",
            namespaced=False,
            generation=True,
            builtin=False,
        ),
    ]
    return specs


# Coalmine's kinds, used schemaless until (or unless) their CRD file is present in the repo's ``crds/``.
COALMINE_KINDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("canaries", "Canary", ("cmc", "cmcanary")),
    ("metrictemplates", "MetricTemplate", ("cmmt",)),
    ("alertproviders", "AlertProvider", ("cmap",)),
    ("bluegreens", "BlueGreen", ("cmbg",)),
)


def schemaless_crd(plural: str, kind: str, short_names: tuple[str, ...]) -> dict[str, Any]:
    """A CRD body for a Coalmine kind whose real CRD is not written yet: status subresource, no pruning."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{COALMINE_GROUP}"},
        "spec": {
            "group": COALMINE_GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": list(short_names),
                "categories": ["all", "coalmine"],
            },
            "versions": [
                {
                    "name": COALMINE_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def crd_specs(info: CrdInfo) -> list[ResourceSpec]:
    """One spec per served version of a CRD; all versions share the storage version's objects."""
    return [
        ResourceSpec(
            info.group,
            version.name,
            info.plural,
            info.kind,
            namespaced=info.namespaced,
            subresources=version.subresources & {"status", "scale"},
            generation=True,
            builtin=False,
            storage_version=info.storage_version,
            singular=info.singular,
            short_names=info.short_names,
            categories=info.categories,
            schema=version.schema,
            validator=SchemaValidator(version.schema) if version.schema is not None else None,
        )
        for version in info.versions
        if version.served
    ]
