"""Generate ``controller/schema/istio/networking.istio.io-v1beta1.json`` from Istio's published CRD file.

The shipped file holds, verbatim, the ``openAPIV3Schema`` (with its ``x-kubernetes-validations`` CEL rules) of the
kinds the Istio router writes, at the version it writes them (``networking.istio.io/v1beta1``). Regenerate it when
Istio is upgraded::

    python -m controller.schema.extract_istio path/to/customresourcedefinitions.gen.yaml

``tests/test_istio_schema.py`` proves the shipped copy equals what this extraction gives on the reference file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

GROUP = "networking.istio.io"
VERSION = "v1beta1"  # controller.routers.istio.ISTIO_API_VERSION
KINDS = ("VirtualService", "DestinationRule")
SHIPPED = Path(__file__).resolve().parent / "istio" / f"{GROUP}-{VERSION}.json"
SOURCE = {
    "repository": "https://github.com/istio/api",
    "path": "kubernetes/customresourcedefinitions.gen.yaml",
    "commit": "b8f8791d9653b2edc77a071d48887e582cfe84bf",
    "license": "Apache-2.0 (LICENSE next to this file)",
}


def extract(documents: Iterable[Any]) -> dict[str, Any]:
    """The shipped data: every kind of :data:`KINDS` at :data:`VERSION`, its schema copied unchanged."""
    schemas: dict[str, Any] = {}
    for crd in documents:
        if not isinstance(crd, Mapping) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd.get("spec") or {}
        kind = (spec.get("names") or {}).get("kind")
        if spec.get("group") != GROUP or kind not in KINDS:
            continue
        for version in spec.get("versions") or ():
            if version.get("name") == VERSION:
                schemas[str(kind)] = version["schema"]["openAPIV3Schema"]
    missing = [kind for kind in KINDS if kind not in schemas]
    if missing:
        raise ValueError(f"no {GROUP}/{VERSION} schema for {', '.join(missing)} in the CRD file")
    return {"source": SOURCE, "apiVersion": f"{GROUP}/{VERSION}", "schemas": schemas}


def render(data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m controller.schema.extract_istio CUSTOMRESOURCEDEFINITIONS.gen.yaml", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        data = extract(yaml.safe_load_all(handle))
    SHIPPED.write_text(render(data), encoding="utf-8")
    print(f"wrote {SHIPPED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
