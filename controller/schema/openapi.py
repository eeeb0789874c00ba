"""Walking a CRD's OpenAPI v3 schema the way the API server does: JSON types, CEL rules, escaped property names.

Shared by the validators Coalmine runs before writing (Istio's and Gateway API's schemas, in
:mod:`controller.rollout.istio_schema` and :mod:`controller.rollout.gatewayapi_schema`) and by the test suite's
emulated API server, so the three judge a value the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def has_type(schema: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` has the schema node's ``type`` (a bool is not an integer); no ``type``: anything goes."""
    expected = schema.get("type")
    if not isinstance(expected, str):
        return True
    if isinstance(value, bool) and expected != "boolean":
        return False
    return isinstance(value, JSON_TYPES.get(expected, (object,)))


def rules_of(schema: Any) -> Iterator[Mapping[str, Any]]:
    """Every ``x-kubernetes-validations`` entry in a schema, at any depth."""
    if isinstance(schema, Mapping):
        yield from schema.get("x-kubernetes-validations") or ()
        for value in schema.values():
            yield from rules_of(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from rules_of(value)


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


__all__ = ["JSON_TYPES", "cel_view", "escape", "has_type", "rules_of"]
