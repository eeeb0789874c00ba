"""Check an HTTPRoute against Gateway API's own CRD schema (shipped in :mod:`controller.schema`), CEL rules included.

The API server admits an HTTPRoute in four steps, and each is applied here in the same order:

1. ``default`` values are filled in (``parentRefs[].group``/``kind``, ``backendRefs[].weight``, ``path.type``…).
   Several CEL rules only hold on a defaulted object (``size(self.group) == 0 && self.kind == 'Service'``), and a
   router that writes the defaulted form compares equal to what the server stored, so it never rewrites a route
   that did not change — :func:`with_defaults` is what the router uses for that;
2. the OpenAPI schema (types, enums, patterns, lengths, item counts), with unknown fields *refused* here where the
   server would prune them silently;
3. list types: the keys of an ``x-kubernetes-list-type: map`` (``headers[].name``) and the items of a ``set`` must
   be unique;
4. the ``x-kubernetes-validations`` CEL rules, evaluated on the value with property names escaped the way
   Kubernetes does (``namespace`` is a CEL keyword, so the rules say ``__namespace__``).

Problems are reported at HTTPRoute field paths (``spec.rules[0].filters[1]``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from jsonschema import Draft4Validator

from controller.rollout.crd_rules import check_crd_rules
from controller.rollout.problems import Findings, Problem
from controller.rollout.schema_check import report_errors, tightened_validator
from controller.schema.extract_gateway import SHIPPED
from controller.schema.openapi import rules_of

KIND = "HTTPRoute"


@cache
def _schemas() -> Mapping[str, Any]:
    with SHIPPED.open(encoding="utf-8") as handle:
        data: Mapping[str, Any] = json.load(handle)["schemas"]
    return data


def subschema(path: str) -> Mapping[str, Any]:
    """The HTTPRoute schema at ``path``: dotted properties, ``[]`` for list items (``spec.rules[].filters``);
    ``""`` is the whole object's."""
    node: Mapping[str, Any] = _schemas()[KIND]
    for part in filter(None, path.split(".")):
        name, items = (part[:-2], True) if part.endswith("[]") else (part, False)
        node = node["properties"][name]
        if items:
            node = node["items"]
    return node


@cache
def _validator(path: str) -> Draft4Validator:
    return tightened_validator(subschema(path))


def shipped_rules() -> set[str]:
    """Every CEL rule in the shipped schema (a test compiles each one)."""
    return {str(rule["rule"]) for rule in rules_of(_schemas()[KIND])}


def _defaulted(value: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, child in value.items():
            child_schema = properties.get(key, extra if isinstance(extra, Mapping) else None)
            result[key] = child if child_schema is None or child is None else _defaulted(child, child_schema)
        for key, child_schema in properties.items():
            if key not in result and "default" in child_schema:
                result[key] = _defaulted(copy.deepcopy(child_schema["default"]), child_schema)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_defaulted(item, schema["items"]) for item in value]
    return value


def with_defaults(value: Any, path: str = "") -> Any:
    """A copy of ``value`` (the part at ``path`` of an HTTPRoute) with the schema's defaults filled in, as the API
    server stores it."""
    return _defaulted(copy.deepcopy(value), subschema(path))


def check_httproute_value(schema_path: str, value: Any, field_path: str, out: Findings) -> None:
    """Report what the API server would refuse (or prune) in ``value``, placed at ``schema_path`` of an HTTPRoute
    (after defaulting it as the server does), as problems at ``field_path``."""
    defaulted = with_defaults(value, schema_path)
    report_errors(_validator(schema_path), defaulted, field_path, out)
    check_crd_rules(subschema(schema_path), defaulted, field_path, out, source="Gateway API")


def httproute_problems(value: Any, schema_path: str = "") -> list[Problem]:
    """:func:`check_httproute_value` on a whole HTTPRoute (``schema_path`` ``""``: its ``spec`` and ``status``;
    ``apiVersion``, ``kind`` and ``metadata`` are Kubernetes' own) or a part, problems at HTTPRoute paths; tests
    hold the router's output to it."""
    out = Findings()
    if not schema_path and isinstance(value, Mapping):
        value = {key: item for key, item in value.items() if key not in ("apiVersion", "kind", "metadata")}
    check_httproute_value(schema_path, value, "", out)
    return out.problems
