"""The CRDs in the repository's ``crds/`` directory, read as data: the single source of truth for field shapes.

Validation checks a document against the very schema the API server enforces, so ``coalmine validate`` and
``kubectl apply`` never disagree about types, enums or ranges. This module only reads packaged files.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CRD_DIR = (
    Path(__file__).resolve().parents[1] / "crds"
)  # controller/crds links to the repo's crds/ (shipped as package data)
CRD_FILES: Mapping[str, str] = {
    "Canary": "canary.yaml",
    "MetricTemplate": "metrictemplate.yaml",
    "AlertProvider": "alertprovider.yaml",
    "BlueGreen": "bluegreen.yaml",
}


class SchemaNotFoundError(RuntimeError):
    """The CRD files are not where Coalmine expects them (a broken install, not a user error)."""


@cache
def load_crd(kind: str) -> Mapping[str, Any]:
    """Return the CustomResourceDefinition object for ``kind`` (a key of :data:`CRD_FILES`)."""
    if kind not in CRD_FILES:
        raise KeyError(f"{kind!r} is not a Coalmine kind; known kinds: {', '.join(CRD_FILES)}")
    path = CRD_DIR / CRD_FILES[kind]
    if not path.is_file():
        raise SchemaNotFoundError(
            f"the {kind} CRD is missing: expected {path}; reinstall Coalmine from a checkout that has crds/"
        )
    with path.open(encoding="utf-8") as handle:
        crd: Mapping[str, Any] = yaml.safe_load(handle)
    return crd


def crd_schema(kind: str) -> Mapping[str, Any]:
    """Return the ``openAPIV3Schema`` of the served version of ``kind``'s CRD."""
    versions = load_crd(kind)["spec"]["versions"]
    served = next(version for version in versions if version.get("storage"))
    schema: Mapping[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema
