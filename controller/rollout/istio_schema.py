"""Check a value against a part of Istio's CRD schema (shipped in :mod:`controller.schema`), CEL rules included.

The API server checks a VirtualService or DestinationRule in two ways: its OpenAPI schema (types, enums, with
unknown fields pruned) and its ``x-kubernetes-validations`` CEL rules. Both are applied here, with unknown fields
refused instead of pruned, to any sub-tree — a Canary's ``service.retries`` is checked against the schema of
``VirtualService.spec.http[].retries`` — and problems are reported at the Canary's own field path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft4Validator

from controller.rollout.crd_rules import check_crd_rules
from controller.rollout.problems import Findings, Problem
from controller.rollout.schema_check import report_errors, tightened_validator
from controller.schema.extract_istio import SHIPPED
from controller.schema.openapi import rules_of


@cache
def _schemas() -> Mapping[str, Any]:
    with SHIPPED.open(encoding="utf-8") as handle:
        data: Mapping[str, Any] = json.load(handle)["schemas"]
    return data


def subschema(kind: str, path: str) -> Mapping[str, Any]:
    """The schema at ``path`` of ``kind``'s object: dotted properties, ``[]`` for list items
    (``spec.http[].retries``); ``""`` is the whole object's."""
    node: Mapping[str, Any] = _schemas()[kind]
    for part in filter(None, path.split(".")):
        name, items = (part[:-2], True) if part.endswith("[]") else (part, False)
        node = node["properties"][name]
        if items:
            node = node["items"]
    return node


@cache
def _validator(kind: str, path: str) -> Draft4Validator:
    return tightened_validator(subschema(kind, path))


def shipped_rules() -> set[str]:
    """Every CEL rule in the shipped schemas (a test compiles each one)."""
    return {rule for schema in _schemas().values() for rule in (str(entry["rule"]) for entry in rules_of(schema))}


def check_istio_value(kind: str, schema_path: str, value: Any, field_path: str, out: Findings) -> None:
    """Report what Istio's API server would refuse (or prune) in ``value``, placed at ``schema_path`` of a
    ``kind`` object, as problems at ``field_path``."""
    report_errors(_validator(kind, schema_path), value, field_path, out)
    check_crd_rules(subschema(kind, schema_path), value, field_path, out, source="Istio", show_value=True)


def istio_problems(kind: str, schema_path: str, value: Any) -> list[Problem]:
    """:func:`check_istio_value` on a whole object (``schema_path`` ``""``: its ``spec`` and ``status``) or a part,
    problems at Istio's own paths; tests hold the router's output to it."""
    out = Findings()
    if not schema_path and isinstance(value, Mapping):
        value = {key: item for key, item in value.items() if key not in ("apiVersion", "kind", "metadata")}
    check_istio_value(kind, schema_path, value, "", out)
    return out.problems
