"""Which Canary/BlueGreen fields are copied into Istio objects, and where: each is checked against that spot of
Istio's schema (:mod:`controller.rollout.istio_schema`), so the API server can never refuse or prune what the
router writes from an accepted spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.rollout.istio_schema import check_istio_value
from controller.rollout.problems import Findings, mapping

HTTP_ROUTE = "spec.http[]"

# Canary field under ``spec.service`` -> (Istio kind, schema path) it is copied to by the Istio router.
SERVICE_FIELDS: Mapping[str, tuple[str, str]] = {
    "hosts": ("VirtualService", "spec.hosts"),
    "gateways": ("VirtualService", "spec.gateways"),
    "match": ("VirtualService", f"{HTTP_ROUTE}.match"),
    "rewrite": ("VirtualService", f"{HTTP_ROUTE}.rewrite"),
    "retries": ("VirtualService", f"{HTTP_ROUTE}.retries"),
    "timeout": ("VirtualService", f"{HTTP_ROUTE}.timeout"),
    "headers": ("VirtualService", f"{HTTP_ROUTE}.headers"),
    "corsPolicy": ("VirtualService", f"{HTTP_ROUTE}.corsPolicy"),
    "trafficPolicy": ("DestinationRule", "spec.trafficPolicy"),
}
# Match lists outside ``spec.service``, per kind: A/B conditions copied into the canary route's match.
MATCH_FIELDS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "Canary": (("analysis", "match"), ("canaryAnalysis", "match")),
    "BlueGreen": (("preview", "match"),),
}


def _already_reported(path: str, out: Findings) -> bool:
    return any(p.path == path or p.path.startswith((path + ".", path + "[")) for p in out.problems)


def check_istio_fields(kind: str, document: Mapping[str, Any], out: Findings) -> None:
    """Check every pass-through field of a ``kind`` document against Istio's schema (skipping a field the CRD
    check already found wrong, so one mistake is reported once)."""
    spec = mapping(document.get("spec"))
    service = mapping(spec.get("service"))
    for field, (istio_kind, schema_path) in SERVICE_FIELDS.items():
        path = f"spec.service.{field}"
        if field in service and not _already_reported(path, out):
            check_istio_value(istio_kind, schema_path, service[field], path, out)
    for parent, field in MATCH_FIELDS.get(kind, ()):
        value = mapping(spec.get(parent)).get(field)
        path = f"spec.{parent}.{field}"
        if value is not None and not _already_reported(path, out):
            check_istio_value("VirtualService", f"{HTTP_ROUTE}.match", value, path, out)
