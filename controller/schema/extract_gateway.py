"""Generate ``controller/schema/gateway-api/gateway.networking.k8s.io-v1.json`` from Gateway API's CRD file.

The shipped file holds, verbatim, the ``openAPIV3Schema`` (with its ``x-kubernetes-validations`` CEL rules) of the
kind the Gateway API router writes, at the version it writes it (``gateway.networking.k8s.io/v1`` HTTPRoute, standard
channel). Regenerate it when Gateway API is upgraded::

    python -m controller.schema.extract_gateway path/to/gateway.networking.k8s.io_httproutes.yaml

``tests/test_gatewayapi_router.py`` proves the shipped copy equals what this extraction gives on the reference file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

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
        print(
            "usage: python -m controller.schema.extract_gateway gateway.networking.k8s.io_httproutes.yaml",
            file=sys.stderr,
        )
        return 2
    with open(argv[0], encoding="utf-8") as handle:
        data = extract(yaml.safe_load_all(handle))
    SHIPPED.parent.mkdir(exist_ok=True)
    SHIPPED.write_text(render(data), encoding="utf-8")
    print(f"wrote {SHIPPED}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
