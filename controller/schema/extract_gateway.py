"""Generate ``controller/schema/gateway-api/gateway.networking.k8s.io-v1.json`` from Gateway API's CRD file.

The shipped file holds, verbatim, the ``openAPIV3Schema`` (with its ``x-kubernetes-validations`` CEL rules) of the
kind the Gateway API router writes, at the version it writes it (``gateway.networking.k8s.io/v1`` HTTPRoute, standard
channel). Regenerate it when Gateway API is upgraded::

    python -m controller.schema.extract_gateway path/to/gateway.networking.k8s.io_httproutes.yaml

``tests/test_gatewayapi_router.py`` proves the shipped copy equals what this extraction gives on the reference file.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller.schema.extract import Shipment, render
from controller.schema.extract import extract as extract_crds
from controller.schema.extract import main as run

GROUP = "gateway.networking.k8s.io"
VERSION = "v1"  # controller.routers.gatewayapi.GATEWAY_API_VERSION
KINDS = ("HTTPRoute",)
SHIPPED = Path(__file__).resolve().parent / "gateway-api" / f"{GROUP}-{VERSION}.json"
SOURCE = {
    "repository": "https://github.com/kubernetes-sigs/gateway-api",
    "path": "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
    "channel": "standard",
    "commit": "4564255ac2c35d582249b3cdf261bdf51c8bca32",
    "license": "Apache-2.0 (LICENSE next to this file)",
}


SHIPMENT = Shipment(GROUP, VERSION, KINDS, SHIPPED, SOURCE)


def extract(documents: Iterable[Any]) -> dict[str, Any]:
    """The shipped data: every kind of :data:`KINDS` at :data:`VERSION`, its schema copied unchanged."""
    return extract_crds(SHIPMENT, documents)


def main(argv: list[str]) -> int:
    return run(SHIPMENT, argv, "python -m controller.schema.extract_gateway gateway.networking.k8s.io_httproutes.yaml")


__all__ = ["SHIPMENT", "SHIPPED", "extract", "main", "render"]

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
