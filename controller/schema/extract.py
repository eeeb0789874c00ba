"""Copy the ``openAPIV3Schema`` of a few kinds, verbatim, out of a project's published CRD file.

Coalmine validates what its routers write against the real schemas of the objects (Istio's, Gateway API's),
CEL rules included, so it ships them: one JSON file per API group and version, regenerated with
``python -m controller.schema.extract_istio FILE`` or ``…extract_gateway FILE`` when that project is upgraded.
Tests prove each shipped copy equals what this extraction gives on the reference file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Shipment:
    """Which kinds of which ``group``/``version`` are shipped where, and where they came from."""

    group: str
    version: str
    kinds: tuple[str, ...]
    shipped: Path
    source: Mapping[str, str] = field(default_factory=dict)


def extract(shipment: Shipment, documents: Iterable[Any]) -> dict[str, Any]:
    """The shipped data: every kind of the shipment at its version, its schema copied unchanged."""
    schemas: dict[str, Any] = {}
    for crd in documents:
        if not isinstance(crd, Mapping) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        if spec.get("group") != shipment.group or kind not in shipment.kinds:
            continue
        for version in spec.get("versions") or ():
            if version.get("name") == shipment.version:
                schemas[str(kind)] = version["schema"]["openAPIV3Schema"]
    missing = [kind for kind in shipment.kinds if kind not in schemas]
    api_version = f"{shipment.group}/{shipment.version}"
    if missing:
        raise ValueError(f"no {api_version} schema for {', '.join(missing)} in the CRD file")
    return {"source": dict(shipment.source), "apiVersion": api_version, "schemas": schemas}


def render(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(shipment: Shipment, argv: list[str], usage: str) -> int:
    """Write the shipment from the CRD file named in ``argv`` (``usage`` when it is not one file)."""
    if len(argv) != 1:
        print(f"usage: {usage}", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        data = extract(shipment, yaml.safe_load_all(handle))
    shipment.shipped.parent.mkdir(exist_ok=True)
    shipment.shipped.write_text(render(data), encoding="utf-8")
    print(f"wrote {shipment.shipped}")
    return 0


__all__ = ["Shipment", "extract", "main", "render"]
