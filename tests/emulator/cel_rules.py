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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import celpy
import lark
from celpy import adapter, celtypes
from celpy.evaluation import CELEvalError, base_functions

from controller.schema.cel import KUBERNETES_FUNCTIONS, UnsupportedRule

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter", "has"})
_OLD_SELF = re.compile(r"\boldSelf\b")
_REASON_BODY = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}
_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _split(text: Any, separator: Any, limit: Any = None) -> Any:
    parts = str(text).split(str(separator)) if limit is None or int(limit) < 0 else None
    if parts is None:
        parts = [] if int(limit) == 0 else str(text).split(str(separator), int(limit) - 1)
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    value = str(text)
    stop = len(value) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(value):
        return CELEvalError(f"substring({start}, {end}) out of range", IndexError, (text,))
    return celtypes.StringType(value[int(start) : stop])


def _join(items: Any, separator: Any = "") -> Any:
    return celtypes.StringType(str(separator).join(str(item) for item in items))


STRINGS_LIBRARY: dict[str, Callable[..., Any]] = {
    "split": _split,
    "substring": _substring,
    "join": _join,
    "lowerAscii": lambda text: celtypes.StringType(str(text).lower()),
    "upperAscii": lambda text: celtypes.StringType(str(text).upper()),
    "trim": lambda text: celtypes.StringType(str(text).strip()),
    "indexOf": lambda text, sub: celtypes.IntType(str(text).find(str(sub))),
    "lastIndexOf": lambda text, sub: celtypes.IntType(str(text).rfind(str(sub))),
}
"""The Kubernetes CEL strings-library functions cel-python lacks (``ext.Strings``, version 2 semantics)."""

FUNCTIONS: dict[str, Callable[..., Any]] = {**KUBERNETES_FUNCTIONS, **STRINGS_LIBRARY}


def _called(tree: lark.Tree[Any]) -> set[str]:
    names: set[str] = set()
    for node in tree.iter_subtrees():
        if node.data == "ident_arg":
            names.add(str(node.children[0]))
        elif node.data == "member_dot_arg":
            names.add(str(node.children[1]))
    return names


@cache
def compile_rule(rule: str) -> celpy.Runner:
    """The compiled program of one rule or message expression (compiled once per process)."""
    environment = celpy.Environment()
    tree = environment.compile(rule)
    unknown = _called(tree) - set(base_functions) - set(FUNCTIONS) - _MACROS
    if unknown:
        raise UnsupportedRule(f"CEL rule {rule!r} calls {', '.join(sorted(unknown))}, which the emulator lacks")
    return environment.program(tree, functions=FUNCTIONS)


def rules_of(schema: Any) -> Iterator[Mapping[str, Any]]:
    """Every ``x-kubernetes-validations`` entry in a schema, at any depth."""
    if isinstance(schema, Mapping):
        yield from schema.get("x-kubernetes-validations") or ()
        for value in schema.values():
            yield from rules_of(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from rules_of(value)


@dataclass(frozen=True)
class RuleError:
    """One failed rule: field path, the error body (``Invalid value: "object": …``) and the cause's reason."""

    path: str
    body: str
    reason: str


_ABSENT = object()
# CEL's reserved words: a schema property so named is ``__name__`` in rules (apiextensions-apiserver's cel.Escape).
_RESERVED = frozenset(
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
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


def escape(name: str) -> str:
    """A declared property's name as CEL rules spell it (``namespace`` → ``__namespace__``, ``a.b`` → ``a__dot__b``)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return name  # not addressable from CEL
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


def cel_view(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` as rules see it: declared property names escaped; map keys (``additionalProperties``) are not."""
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for key, child in value.items():
            if key in properties:
                result[escape(key)] = cel_view(child, properties[key])
            else:
                result[key] = cel_view(child, extra) if isinstance(extra, Mapping) else child
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [cel_view(item, schema["items"]) for item in value]
    return value


def _join_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _has_type(schema: Mapping[str, Any], value: Any) -> bool:
    expected = schema.get("type")
    if not isinstance(expected, str):
        return True
    if isinstance(value, bool) and expected != "boolean":
        return False
    return isinstance(value, _TYPES.get(expected, (object,)))


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
    if value is None or not _has_type(schema, value):
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
