"""Server-side field validation (``?fieldValidation=Strict|Warn|Ignore``), which real kubectl relies on.

kubectl 1.35 does not validate manifests itself when the server's OpenAPI says the PATCH operation takes a
``fieldValidation`` parameter (see :mod:`.openapi`); it sends ``fieldValidation=Strict`` and expects the server to
refuse unknown fields: **400** ``<Kind> in version "<v>" cannot be handled as a <Kind>: strict decoding error:
unknown field "spec.x"``. ``Warn`` (the server's default) accepts the write and answers a ``Warning`` header per
unknown field; ``Ignore`` says nothing. Either way the store then prunes what the schema does not know.

The walk follows the published schema (:func:`.openapi.kind_schema`): ``properties`` name the known fields,
``additionalProperties`` types a map's values, ``items`` a list's, ``x-kubernetes-preserve-unknown-fields``
accepts anything besides the declared properties, a schema without properties accepts anything (``JSON``,
``RawExtension``), and ``$``-prefixed keys are strategic-merge-patch directives, not fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kmock._internal import rendering

from .objects import ApiError
from .openapi import kind_schema, upstream
from .resources import ResourceSpec

STRICT, WARN, IGNORE = "Strict", "Warn", "Ignore"


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow ``$ref`` and single-``allOf`` wrappers into the upstream definitions."""
    seen = 0
    while seen < 50:
        seen += 1
        ref = schema.get("$ref")
        if isinstance(ref, str):
            schema = upstream().get(ref.rsplit("/", 1)[-1], {})
            continue
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and not schema.get("properties"):
            schema = all_of[0]
            continue
        return schema
    return schema


def _walk(value: Any, schema: Mapping[str, Any], path: str, found: list[str]) -> None:
    schema = _resolve(schema)
    if isinstance(value, Mapping):
        properties = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        if properties is None and not isinstance(additional, Mapping):
            return  # free-form (JSON, RawExtension, preserve-unknown-fields without properties)
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                continue
            child = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                _walk(item, properties[key], child, found)
            elif isinstance(additional, Mapping):
                _walk(item, additional, child, found)
            elif additional is True or preserve or (embedded and key in ("apiVersion", "kind", "metadata")):
                continue
            else:
                found.append(child)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{index}]", found)


def unknown_fields(spec: ResourceSpec, body: Any, schema: Mapping[str, Any] | None = None) -> list[str]:
    """The dotted paths (``spec.template.spec.containers[0].imagee``) of fields the kind's schema lacks
    (``schema``: the kind's published schema if the caller keeps it, else built from ``spec``)."""
    found: list[str] = []
    _walk(body, schema if schema is not None else kind_schema(spec), "", found)
    return found


def check(spec: ResourceSpec, body: Any, directive: str | None, schema: Mapping[str, Any] | None = None) -> list[str]:
    """Apply ``fieldValidation``: raise 400 for Strict, else return the warnings to send (none for Ignore)."""
    if directive not in (None, "", STRICT, WARN, IGNORE):
        raise ApiError(400, "BadRequest", f"fieldValidation must be one of Ignore, Warn or Strict, got {directive!r}")
    if directive == IGNORE:
        return []
    unknown = unknown_fields(spec, body, schema)
    if not unknown:
        return []
    if directive == STRICT:
        fields = ", ".join(f'unknown field "{field}"' for field in unknown)
        message = (
            f'{spec.kind} in version "{spec.version}" cannot be handled as a {spec.kind}: strict decoding error: '
            f"{fields}"
        )
        raise ApiError(400, "BadRequest", message)
    return [f'unknown field "{field}"' for field in unknown]


_FIELD_PATCHES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


class FieldValidation:
    """``fieldValidation`` for the emulator's writes, keeping each resource's published schema."""

    def __init__(self) -> None:
        self._schemas: dict[str, tuple[ResourceSpec, Mapping[str, Any]]] = {}

    def check(self, spec: ResourceSpec, request: rendering.Request, method: str) -> list[str]:
        """Check a create, replace or merge/strategic patch (a JSON patch names paths, not fields: the real server
        checks its result, which is not emulated); raise for Strict, else return the warnings."""
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if method == "DELETE" or request.subresource == "scale":
            return []
        if method == "PATCH" and content_type not in _FIELD_PATCHES:
            return []
        cached = self._schemas.get(spec.key)
        if cached is None or cached[0] is not spec:  # a CRD changed: its resource has a new spec
            cached = self._schemas[spec.key] = (spec, kind_schema(spec))
        return check(spec, request.data, request.params.get("fieldValidation"), cached[1])


__all__ = ("IGNORE", "STRICT", "WARN", "FieldValidation", "check", "unknown_fields")
