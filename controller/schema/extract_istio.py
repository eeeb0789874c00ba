"""Generate ``controller/schema/istio/networking.istio.io-v1beta1.json`` from Istio's published CRD file.

The shipped file holds, verbatim, the ``openAPIV3Schema`` (with its ``x-kubernetes-validations`` CEL rules) of the
kinds the Istio router writes, at the version it writes them (``networking.istio.io/v1beta1``). Regenerate it when
Istio is upgraded::

    python -m controller.schema.extract_istio path/to/customresourcedefinitions.gen.yaml

``tests/test_istio_schema.py`` proves the shipped copy equals what this extraction gives on the reference file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller.schema.extract import Shipment, render
from controller.schema.extract import extract as extract_crds
from controller.schema.extract import main as run

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


SHIPMENT = Shipment(GROUP, VERSION, KINDS, SHIPPED, SOURCE)


def extract(documents: Iterable[Any]) -> dict[str, Any]:
    """The shipped data: every kind of :data:`KINDS` at :data:`VERSION`, its schema copied unchanged."""
    return extract_crds(SHIPMENT, documents)


def main(argv: list[str]) -> int:
    return run(SHIPMENT, argv, "python -m controller.schema.extract_istio CUSTOMRESOURCEDEFINITIONS.gen.yaml")


__all__ = ["SHIPMENT", "SHIPPED", "extract", "main", "render"]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
