"""A CRD schema's structural rules beyond OpenAPI: ``x-kubernetes-list-type`` uniqueness and CEL
``x-kubernetes-validations``, applied to a value the way the Kubernetes API server applies them.

Shared by the checks of Istio's and Gateway API's objects before Coalmine writes them
(:mod:`controller.rollout.istio_schema`, :mod:`controller.rollout.gatewayapi_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller.rollout.problems import Findings, join
from controller.rollout.schema_check import got
from controller.schema.cel import rule_holds
from controller.schema.openapi import cel_view, has_type


def _check_list_type(schema: Mapping[str, Any], value: list[Any], path: str, out: Findings) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys = list(schema.get("x-kubernetes-list-map-keys") or ())
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                continue
            key = json.dumps([item.get(k) for k in keys], sort_keys=True)
            if key in seen:
                named = ", ".join(f"{k}={item.get(k)!r}" for k in keys)
                out.problem(join(path, index), f"duplicate entry ({named} is already at [{seen[key]}])")
            seen.setdefault(key, index)
    elif list_type == "set":
        items: list[str] = []
        for index, item in enumerate(value):
            text = json.dumps(item, sort_keys=True)
            if text in items:
                out.problem(join(path, index), f"duplicate value ({got(item)})")
            items.append(text)


def check_crd_rules(
    schema: Mapping[str, Any], value: Any, path: str, out: Findings, *, source: str, show_value: bool = False
) -> None:
    """List types (map keys, sets) and CEL rules where the value has the schema's type (a wrong type was already
    reported), as the API server applies them: ``self`` is the value with declared property names escaped.
    ``source`` names whose rules they are in the fallback message; ``show_value`` appends the offending value."""
    if not has_type(schema, value):
        return
    if isinstance(value, list):
        _check_list_type(schema, value, path, out)
    rules = schema.get("x-kubernetes-validations") or ()
    if rules:
        cel_self = cel_view(value, schema)
        for rule in rules:
            if not rule_holds(str(rule["rule"]), cel_self):
                message = str(rule.get("message") or f"must satisfy the {source} rule {rule['rule']}")
                out.problem(path, f"{message} ({got(value)})" if show_value else message)
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if isinstance(value, dict):
        for key, child in value.items():
            child_schema = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if child_schema is not None:
                check_crd_rules(child_schema, child, join(path, str(key)), out, source=source, show_value=show_value)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, child in enumerate(value):
            check_crd_rules(schema["items"], child, join(path, index), out, source=source, show_value=show_value)


__all__ = ["check_crd_rules"]
