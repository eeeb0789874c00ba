"""``x-kubernetes-validations`` (CEL) rules, evaluated where and when the API server evaluates them.

The language is cel-python's, with :mod:`controller.schema.cel`'s Kubernetes ``duration()`` (Go's syntax) and the
part of the Kubernetes strings library the served CRDs call (Gateway API's ``split``), plus a few of its siblings.
A rule calling anything else is refused when first compiled (:class:`UnsupportedRule`) instead of silently passing.

What the API server does, and this does:

- A rule runs on every value its schema node applies to, after pruning and defaulting, with ``self`` bound to the
  value; a node whose value has the wrong type is skipped (its OpenAPI type error is reported instead). Declared
  property names are escaped as Kubernetes does (``namespace``, a CEL keyword, is ``self.__namespace__``).
- **Transition rules** (those naming ``oldSelf``) run on updates only, and only where the old value *correlates*:
  through object properties, map keys, and ``x-kubernetes-list-type: map`` items by their keys — never through
  atomic or set lists, and never on create (``optionalOldSelf`` rules are skipped likewise).
- A failed rule reports ``messageExpression``'s result (when it evaluates to a non-empty string), else ``message``,
  else ``failed rule: <rule>``, as ``Invalid value: "<type>": <message>`` at the node's path plus ``fieldPath``,
  with ``reason`` (``FieldValueInvalid`` by default). An evaluation error counts as a failure, as in Kubernetes.

Not emulated: the cost budget, ``optionalOldSelf``'s optional values, validation ratcheting of unchanged values.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import celpy
from celpy import adapter, celtypes
from celpy.evaluation import CELEvalError

from controller.schema.cel import KUBERNETES_FUNCTIONS, UnsupportedRule, compile_rule
from controller.schema.openapi import cel_view, has_type, rules_of

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter", "has"})
_OLD_SELF = re.compile(r"\boldSelf\b")
_REASON_BODY = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


FUNCTIONS = KUBERNETES_FUNCTIONS


@dataclass(frozen=True)
class RuleError:
    """One failed rule: field path, the error body (``Invalid value: "object": …``) and the cause's reason."""

    path: str
    body: str
    reason: str


_ABSENT = object()


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _evaluate(program: celpy.Runner, activation: Mapping[str, Any]) -> Any:
    try:
        return program.evaluate(dict(activation))
    except CELEvalError as exc:
        return exc


def _failure(rule: Mapping[str, Any], activation: Mapping[str, Any]) -> str | None:
    """None if the rule holds, else the message the API server reports."""
    result = _evaluate(compile_rule(str(rule["rule"])), activation)
    if isinstance(result, celtypes.BoolType) and bool(result):
        return None
    if rule.get("messageExpression"):
        message = _evaluate(compile_rule(str(rule["messageExpression"])), activation)
        if isinstance(message, str) and message.strip():
            return str(message)
    return str(rule.get("message") or f"failed rule: {rule['rule']}")


def _check_node(schema: Mapping[str, Any], value: Any, old: Any, path: str, out: list[RuleError]) -> None:
    rules = schema.get("x-kubernetes-validations") or ()
    if not rules:
        return
    converted: dict[str, Any] = {}
    for rule in rules:
        transition = bool(_OLD_SELF.search(str(rule["rule"]))) or bool(rule.get("optionalOldSelf"))
        if transition and old is _ABSENT:
            continue
        if not converted:
            converted["self"] = adapter.json_to_cel(cel_view(value, schema))
        activation = {**converted, "oldSelf": adapter.json_to_cel(cel_view(old, schema))} if transition else converted
        message = _failure(rule, activation)
        if message is None:
            continue
        reason = str(rule.get("reason") or "FieldValueInvalid")
        field = path + str(rule.get("fieldPath") or "") if path else str(rule.get("fieldPath") or "").lstrip(".")
        label = _REASON_BODY.get(reason, "Invalid value")
        body = (
            f'{label}: "{schema.get("type", "object")}": {message}'
            if label == "Invalid value"
            else f"{label}: {message}"
        )
        out.append(RuleError(field, body, reason))


def _list_key(schema: Mapping[str, Any], item: Any) -> tuple[Any, ...] | None:
    keys = schema.get("x-kubernetes-list-map-keys") or ()
    if not isinstance(item, Mapping) or not keys:
        return None
    return tuple(repr(item.get(key)) for key in keys)


def check(schema: Mapping[str, Any], value: Any, old: Any = _ABSENT, path: str = "") -> list[RuleError]:
    """Every rule failure in ``value`` (``old``: the stored object on update; leave it out on create)."""
    out: list[RuleError] = []
    _walk(schema, value, old, path, out)
    return out


def _walk(schema: Mapping[str, Any], value: Any, old: Any, path: str, out: list[RuleError]) -> None:
    if value is None or not has_type(schema, value):
        return
    _check_node(schema, value, old, path, out)
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if isinstance(old, dict) else {}
        for key, child in value.items():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None and (key not in ("apiVersion", "kind", "metadata") or path):
                _walk(sub, child, old_map.get(key, _ABSENT), _join_path(path, str(key)), out)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items: Mapping[str, Any] = schema["items"]
        old_items: dict[tuple[Any, ...], Any] = {}
        if schema.get("x-kubernetes-list-type") == "map" and isinstance(old, list):
            old_items = {k: item for item in old if (k := _list_key(schema, item)) is not None}
        for index, child in enumerate(value):
            key = _list_key(schema, child) if old_items else None
            _walk(items, child, old_items.get(key, _ABSENT) if key else _ABSENT, f"{path}[{index}]", out)


__all__ = ("FUNCTIONS", "RuleError", "UnsupportedRule", "check", "compile_rule", "rules_of")
