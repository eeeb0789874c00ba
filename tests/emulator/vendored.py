"""The third-party CRDs a cluster running Coalmine has installed: Istio's and Gateway API's, as published upstream.

A real API server prunes, defaults and validates a VirtualService or an HTTPRoute by its CRD, CEL rules included;
serving these kinds schemaless would let the operator write what a cluster refuses. The repo ships the data so the
emulator needs nothing outside it:

- Istio: ``controller/schema/istio/networking.istio.io-v1beta1.json`` holds the ``openAPIV3Schema`` of
  VirtualService and DestinationRule, extracted unchanged from istio/api (see ``controller.schema.extract_istio``).
  Istio generates one schema for all its served versions (``v1``, ``v1beta1``, ``v1alpha3``), so the CRD is rebuilt
  here from that schema and the names, versions and printer columns below; ``tests/test_emulator_strict.py`` proves
  the result equals the published CRD's ``spec``.
- Gateway API: the standard-channel CRD files themselves, unmodified, in ``testdata/gateway-api/`` (with LICENSE).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from controller.schema.extract_istio import SHIPPED as ISTIO_SCHEMAS

from .schemas import load_crd_files

GATEWAY_API_DIR = Path(__file__).resolve().parent / "testdata" / "gateway-api"
GATEWAY_API_FILES = ("gatewayclasses.yaml", "gateways.yaml", "httproutes.yaml", "referencegrants.yaml")

_AGE = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It "
    "is represented in RFC3339 form and is in UTC. Populated by the system. Read-only. Null for lists. "
)
_AGE_VS = _AGE + "More info: https://git.k8s.io/community/contributors/devel/api-conventions.md#metadata"
_AGE_DR = (
    _AGE + "For more information, see [Kubernetes API Conventions]"
    "(https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#metadata)"
)


def _column(name: str, path: str, description: str, kind: str = "string") -> dict[str, str]:
    return {"description": description, "jsonPath": path, "name": name, "type": kind}


# kind -> (plural, short name, printer columns), as in istio/api's customresourcedefinitions.gen.yaml.
ISTIO_KINDS: Mapping[str, tuple[str, str, tuple[dict[str, str], ...]]] = {
    "VirtualService": (
        "virtualservices",
        "vs",
        (
            _column("Gateways", ".spec.gateways", "The names of gateways and sidecars that should apply these routes"),
            _column("Hosts", ".spec.hosts", "The destination hosts to which traffic is being sent"),
            _column("Age", ".metadata.creationTimestamp", _AGE_VS, "date"),
        ),
    ),
    "DestinationRule": (
        "destinationrules",
        "dr",
        (
            _column("Host", ".spec.host", "The name of a service from the service registry"),
            _column("Age", ".metadata.creationTimestamp", _AGE_DR, "date"),
        ),
    ),
}
ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = (("v1", True), ("v1alpha3", False), ("v1beta1", False))  # (name, storage); all served


@cache
def _istio_schemas() -> Mapping[str, Any]:
    with ISTIO_SCHEMAS.open(encoding="utf-8") as handle:
        schemas: Mapping[str, Any] = json.load(handle)["schemas"]
    return schemas


def istio_crds() -> list[dict[str, Any]]:
    """Istio's VirtualService and DestinationRule CRDs, as ``istioctl install`` (or the Helm chart) creates them."""
    crds = []
    for kind, (plural, short, columns) in ISTIO_KINDS.items():
        versions = [
            {
                "additionalPrinterColumns": copy.deepcopy(list(columns)),
                "name": name,
                "schema": {"openAPIV3Schema": copy.deepcopy(_istio_schemas()[kind])},
                "served": True,
                "storage": storage,
                "subresources": {"status": {}},
            }
            for name, storage in ISTIO_VERSIONS
        ]
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "annotations": {"helm.sh/resource-policy": "keep"},
                    "labels": {"app": "istio-pilot", "chart": "istio", "heritage": "Tiller", "release": "istio"},
                    "name": f"{plural}.{ISTIO_GROUP}",
                },
                "spec": {
                    "group": ISTIO_GROUP,
                    "names": {
                        "categories": ["istio-io", "networking-istio-io"],
                        "kind": kind,
                        "listKind": f"{kind}List",
                        "plural": plural,
                        "shortNames": [short],
                        "singular": kind.lower(),
                    },
                    "scope": "Namespaced",
                    "versions": versions,
                },
            }
        )
    return crds


@cache
def _gateway_api_crds() -> tuple[Mapping[str, Any], ...]:
    return tuple(load_crd_files([GATEWAY_API_DIR / name for name in GATEWAY_API_FILES]))


def gateway_api_crds() -> list[dict[str, Any]]:
    """Gateway API's standard-channel GatewayClass, Gateway, HTTPRoute and ReferenceGrant CRDs."""
    return [copy.deepcopy(dict(crd)) for crd in _gateway_api_crds()]


def vendored_crds() -> list[dict[str, Any]]:
    """Every third-party CRD the emulator installs at start, like a cluster with Istio and Gateway API."""
    return istio_crds() + gateway_api_crds()
