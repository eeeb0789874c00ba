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
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft4Validator

from controller.rollout.problems import Findings, Problem, join
from controller.rollout.schema_check import got, report_errors, tightened_validator
from controller.schema.cel import rule_holds
from controller.schema.extract_gateway import SHIPPED

KIND = "HTTPRoute"
# Kubernetes escapes property names that are CEL keywords, or contain characters an identifier cannot
# (apiextensions-apiserver's cel.Escape): ``namespace`` becomes ``__namespace__``, ``a.b`` becomes ``a__dot__b``.
_CEL_RESERVED = frozenset(
    [
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    ]
)
_ESCAPABLE = re.compile(r"^[a-zA-Z_./-][a-zA-Z0-9_./-]*$")
_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


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


def _rules(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for rule in node.get("x-kubernetes-validations") or ():
            yield str(rule["rule"])
        for child in node.values():
            yield from _rules(child)
    elif isinstance(node, list):
        for child in node:
            yield from _rules(child)


def shipped_rules() -> set[str]:
    """Every CEL rule in the shipped schema (a test compiles each one)."""
    return set(_rules(_schemas()[KIND]))


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


def _escape(name: str) -> str:
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return name  # not addressable from CEL at all; left as is
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


def _cel_value(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` as CEL sees it: declared property names escaped (map keys of ``additionalProperties`` are not)."""
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, child in value.items():
            if key in properties:
                result[_escape(key)] = _cel_value(child, properties[key])
            else:
                result[key] = _cel_value(child, extra) if isinstance(extra, Mapping) else child
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_cel_value(item, schema["items"]) for item in value]
    return value


def _has_type(schema: Mapping[str, Any], value: Any) -> bool:
    expected = schema.get("type")
    if not isinstance(expected, str):
        return True
    if isinstance(value, bool) and expected != "boolean":
        return False
    return isinstance(value, _JSON_TYPES.get(expected, (object,)))


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


def _check_rules(schema: Mapping[str, Any], value: Any, path: str, out: Findings) -> None:
    """List types and CEL rules where the value has the schema's type (a wrong type was already reported)."""
    if not _has_type(schema, value):
        return
    if isinstance(value, list):
        _check_list_type(schema, value, path, out)
    rules = schema.get("x-kubernetes-validations") or ()
    if rules:
        cel_self = _cel_value(value, schema)
        for rule in rules:
            if not rule_holds(str(rule["rule"]), cel_self):
                message = rule.get("message") or f"must satisfy the Gateway API rule {rule['rule']}"
                out.problem(path, str(message))
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    if isinstance(value, dict):
        for key, child in value.items():
            child_schema = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if child_schema is not None:
                _check_rules(child_schema, child, join(path, str(key)), out)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, child in enumerate(value):
            _check_rules(schema["items"], child, join(path, index), out)


def check_httproute_value(schema_path: str, value: Any, field_path: str, out: Findings) -> None:
    """Report what the API server would refuse (or prune) in ``value``, placed at ``schema_path`` of an HTTPRoute
    (after defaulting it as the server does), as problems at ``field_path``."""
    defaulted = with_defaults(value, schema_path)
    report_errors(_validator(schema_path), defaulted, field_path, out)
    _check_rules(subschema(schema_path), defaulted, field_path, out)


def httproute_problems(value: Any, schema_path: str = "") -> list[Problem]:
    """:func:`check_httproute_value` on a whole HTTPRoute (``schema_path`` ``""``: its ``spec`` and ``status``;
    ``apiVersion``, ``kind`` and ``metadata`` are Kubernetes' own) or a part, problems at HTTPRoute paths; tests
    hold the router's output to it."""
    out = Findings()
    if not schema_path and isinstance(value, Mapping):
        value = {key: item for key, item in value.items() if key not in ("apiVersion", "kind", "metadata")}
    check_httproute_value(schema_path, value, "", out)
    return out.problems
