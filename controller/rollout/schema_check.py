"""Check a document against its CRD's openAPIV3Schema, with unknown fields rejected, and say it in plain words.

The API server prunes unknown fields silently, so a misspelt ``stepWieght`` would vanish and the rollout would run
with defaults. Here every object schema that lists its properties is tightened to ``additionalProperties: false``
(``x-kubernetes-preserve-unknown-fields`` objects, the Istio pass-through ones, are left open).
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from controller.rollout.problems import Findings, join
from controller.rollout.schema import crd_schema

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"

_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping of fields",
    "array": "a list",
}

# Fields of Flagger's Canary that Coalmine (Deployments behind Istio) does not implement: say so, not "unknown".
_FLAGGER_ONLY = frozenset(
    {
        "ingressRef",
        "routeRef",
        "upstreamRef",
        "primaryScalerQueries",
        "delegation",
        "headless",
        "meshName",
        "backends",
        "gatewayRefs",
        "backendTimeout",
        "trafficDistribution",
        "unmanagedMetadata",
        "disableTLS",
        "region",
    }
)

# Why an enum is so narrow, keyed by the field path with list indices removed.
_ENUM_HINTS = {
    "spec.provider": "Coalmine routes traffic through Istio only",
    "spec.targetRef.kind": "Coalmine rolls out Deployments only",
    "spec.autoscalerRef.kind": "Coalmine scales with HorizontalPodAutoscalers only",
    "spec.provider.type": "Coalmine queries Prometheus only",
}


def _tighten(node: Any) -> None:
    if not isinstance(node, dict):
        return
    if node.get("x-kubernetes-int-or-string"):
        node["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]  # OpenAPI's nullable: JSON Schema Draft 4 spells it as a type
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    for child in node.get("properties", {}).values():
        _tighten(child)
    _tighten(node.get("items"))
    _tighten(node.get("additionalProperties"))


def tightened_validator(schema: Mapping[str, Any]) -> Draft4Validator:
    """A Draft 4 validator (OpenAPI v3's boolean ``exclusiveMinimum``) for ``schema`` with unknown fields rejected
    wherever the schema lists its properties (the API server would prune them silently)."""
    copied = copy.deepcopy(dict(schema))
    _tighten(copied)
    return Draft4Validator(copied)


@cache
def strict_validator(kind: str) -> Draft4Validator:
    """:func:`tightened_validator` for the CRD of ``kind``."""
    return tightened_validator(crd_schema(kind))


def _path(parts: Iterator[str | int] | Any) -> str:
    path = ""
    for part in parts:
        path = join(path, part)
    return path


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def got(value: Any) -> str:
    """``got …``: the offending value, shortened, for a message."""
    return _got(value)


def _got(value: Any) -> str:
    if isinstance(value, bool):
        return f"got {str(value).lower()}"
    if value is None:
        return "got null (an empty value)"
    if isinstance(value, dict):
        return "got a mapping"
    if isinstance(value, list):
        return "got a list"
    return f"got {_shown(value)}"


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _type_message(expected: Any, instance: Any) -> str:
    names = expected if isinstance(expected, list) else [expected]
    words = " or ".join(_TYPE_WORDS.get(str(name), str(name)) for name in names)
    message = f"must be {words} ({_got(instance)})"
    if names == ["string"] and isinstance(instance, int | float | bool):
        message += '; quote the value, e.g. "5"'
    return message


def _unknown_fields(schema: Mapping[str, Any], instance: Any, path: str, out: Findings) -> None:
    allowed = sorted(schema.get("properties", {}))
    for key in sorted(set(instance) - set(allowed), key=str):
        key = str(key)
        if key in _FLAGGER_ONLY:
            out.problem(join(path, key), "is a Flagger field Coalmine does not support; remove it")
            continue
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        out.problem(join(path, key), f"unknown field; {hint}allowed here: {', '.join(allowed)}")


def _report(error: ValidationError, out: Findings, prefix: str = "") -> None:
    path = _path([*([prefix] if prefix else []), *error.absolute_path])
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    kind: Any = error.validator
    value: Any = error.validator_value
    instance: Any = error.instance
    if kind == "additionalProperties":
        _unknown_fields(schema, instance, path, out)
    elif kind == "required":
        missing = re.match(r"'(.+)' is a required property", error.message)
        out.problem(join(path, missing.group(1) if missing else "?"), "is required")
    elif kind == "type" and schema.get("pattern") == DURATION_PATTERN:
        out.problem(path, f"must be a duration such as 30s, 1m or 1h30m, written with its unit ({_got(instance)})")
    elif kind == "type":
        out.problem(path, _type_message(value, instance))
    elif kind == "enum":
        choices = ", ".join(str(choice) for choice in value if choice != "")
        hint = _ENUM_HINTS.get(re.sub(r"\[\d+\]", "", path))
        suffix = f"; {hint}" if hint else ""
        out.problem(path, f"must be one of: {choices} ({_got(instance)}){suffix}")
    elif kind == "minimum":
        sign = ">" if schema.get("exclusiveMinimum") else "≥"
        out.problem(path, f"must be {sign} {_bound(schema['minimum'])} ({_got(instance)})")
    elif kind == "maximum":
        sign = "<" if schema.get("exclusiveMaximum") else "≤"
        out.problem(path, f"must be {sign} {_bound(schema['maximum'])} ({_got(instance)})")
    elif kind == "minItems":
        out.problem(path, f"must have at least {value} item(s)")
    elif kind == "minLength":
        out.problem(path, "must not be empty")
    elif kind == "maxLength":  # never echo the value: it is long by definition (jsonschema's message quotes it all)
        out.problem(path, f"must be at most {value} characters (got {len(instance)})")
    elif kind == "pattern" and value == DURATION_PATTERN:
        out.problem(path, f"must be a duration such as 30s, 1m or 1h30m (units ms, s, m, h; {_got(instance)})")
    elif kind in ("minProperties", "maxProperties"):
        names = ", ".join(sorted(schema.get("properties", {})))
        out.problem(path, f"must set exactly one of: {names}")
    elif kind == "anyOf" and schema.get("x-kubernetes-int-or-string"):
        out.problem(path, f"must be a number or a name ({_got(instance)})")
    else:
        out.problem(path, error.message)


def _sort_key(parts: Any) -> list[tuple[int, str]]:
    """Order errors by field path, list indices numerically (metrics[2] before metrics[10])."""
    return [(0, f"{part:09d}") if isinstance(part, int) else (1, str(part)) for part in parts]


def report_errors(validator: Draft4Validator, instance: Any, prefix: str, out: Findings) -> None:
    """Report every violation of ``instance``, its paths under ``prefix`` (a field path), ordered by field path."""
    errors = sorted(validator.iter_errors(instance), key=lambda error: _sort_key(error.absolute_path))
    for error in errors:
        _report(error, out, prefix)


def check_schema(kind: str, document: Mapping[str, Any], out: Findings) -> None:
    """Report every schema violation of ``document`` (a ``kind`` resource), ordered by field path."""
    report_errors(strict_validator(kind), document, "", out)
