"""CRD structural schemas as the API server applies them: prune unknown fields, apply defaults, validate.

The order matches the real server: unknown fields are *pruned* silently (never rejected), ``null`` in a field that
is not ``nullable`` is dropped, then ``default`` values are filled in, then the object is validated and rejected
with 422 Invalid naming each field. Validation is the ``openAPIV3Schema`` (types, enums, bounds, patterns), the
``format`` checks the API server makes (``int32``/``int64`` ranges, ``date-time``, ``date``, ``byte``, ``ipv4``,
``ipv6``, ``uuid``; other formats are ignored, as there), ``x-kubernetes-list-type: set``/``map`` uniqueness, and
the CEL rules (``x-kubernetes-validations``, transition rules on update only; see :mod:`.cel_rules`). An operator
that relies on a default, writes a field the schema doesn't know, or breaks a CEL rule behaves here as in a cluster.

Not emulated: validation ratcheting (an unchanged invalid value is refused on update here, accepted by a 1.30+
server), CEL cost limits, ``x-kubernetes-embedded-resource`` metadata rules, ``x-kubernetes-map-type``.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import cel_rules

_ROOT_KEEP = frozenset({"apiVersion", "kind", "metadata"})


@dataclass(frozen=True)
class FieldError:
    """One validation failure, with the dotted field path the API server would name."""

    path: str
    message: str
    reason: str = ""  # set when ``message`` is the whole error body (``Duplicate value: …``), not an Invalid value


@dataclass(frozen=True)
class CrdVersion:
    name: str
    served: bool
    storage: bool
    schema: Mapping[str, Any] | None
    subresources: frozenset[str]


@dataclass(frozen=True)
class CrdInfo:
    """What the emulator needs from one CustomResourceDefinition."""

    group: str
    plural: str
    singular: str
    kind: str
    list_kind: str
    namespaced: bool
    short_names: tuple[str, ...]
    categories: tuple[str, ...]
    versions: tuple[CrdVersion, ...]
    body: Mapping[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def storage_version(self) -> str:
        return next((v.name for v in self.versions if v.storage), self.versions[0].name)

    def version(self, name: str) -> CrdVersion | None:
        return next((v for v in self.versions if v.name == name), None)


def parse_crd(body: Mapping[str, Any]) -> CrdInfo:
    spec = body.get("spec") or {}
    names = spec.get("names") or {}
    versions = tuple(
        CrdVersion(
            name=str(v["name"]),
            served=bool(v.get("served", True)),
            storage=bool(v.get("storage", False)),
            schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            subresources=frozenset((v.get("subresources") or {}).keys()),
        )
        for v in spec.get("versions") or []
    )
    if not versions or not spec.get("group") or not names.get("plural") or not names.get("kind"):
        raise ValueError(f"not a usable apiextensions.k8s.io/v1 CRD: {body.get('metadata', {}).get('name')!r}")
    return CrdInfo(
        group=str(spec["group"]),
        plural=str(names["plural"]),
        singular=str(names.get("singular") or names["kind"].lower()),
        kind=str(names["kind"]),
        list_kind=str(names.get("listKind") or f"{names['kind']}List"),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()),
        versions=versions,
        body=body,
    )


def load_crd_files(paths: list[Path]) -> Iterator[Mapping[str, Any]]:
    """Yield every CustomResourceDefinition document found in the given YAML files (multi-document aware)."""
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition":
                yield doc


def prune_and_default(obj: Mapping[str, Any], schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy without the fields the schema doesn't declare, and with the schema's defaults filled in."""
    result = copy.deepcopy(dict(obj))
    if schema is None:
        return result
    _walk(result, schema, root=True)
    return result


def _walk(node: Any, schema: Mapping[str, Any], *, root: bool = False) -> None:
    if isinstance(node, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(node):
            if root and key in _ROOT_KEEP:
                continue  # apiVersion, kind and metadata are the server's, never pruned by a CRD schema
            if key in properties:
                if node[key] is None and not properties[key].get("nullable"):
                    del node[key]  # the server drops a non-nullable null (then defaults it, below)
                elif node[key] is not None:
                    _walk(node[key], properties[key])
            elif isinstance(additional, Mapping):
                _walk(node[key], additional)
            elif not (preserve or additional is True):
                del node[key]
        for key, sub in properties.items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
                _walk(node[key], sub)
    elif isinstance(node, list) and isinstance(schema.get("items"), Mapping):
        for item in node:
            _walk(item, schema["items"])


def to_json_schema(schema: Any) -> Any:
    """Translate the OpenAPI v3.0 dialect of CRDs into a Draft 4 JSON schema (``nullable``, int-or-string)."""
    if isinstance(schema, list):
        return [to_json_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "default", "example") or key.startswith("x-kubernetes-"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            result[key] = {k: to_json_schema(v) for k, v in value.items()}
        else:
            result[key] = to_json_schema(value)
    if schema.get("x-kubernetes-int-or-string"):
        result.pop("type", None)
        result = {"anyOf": [{"type": "integer"}, {"type": "string"}], **result}
    if schema.get("nullable") and "type" in result:
        result["type"] = [result["type"], "null"]
    return result


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
FORMATS = jsonschema.FormatChecker(formats=())


def _format(name: str, check: Any, types: tuple[type, ...] = (str,)) -> None:
    def holds(value: Any) -> bool:
        if not isinstance(value, types) or isinstance(value, bool):
            return True
        try:
            return bool(check(value))
        except ValueError:
            return False

    FORMATS.checks(name)(holds)


_format("int32", lambda v: -(2**31) <= v < 2**31, (int,))
_format("int64", lambda v: -(2**63) <= v < 2**63, (int,))
_format("date-time", _DATE_TIME.match)
_format("date", re.compile(r"^\d{4}-\d{2}-\d{2}$").match)
_format("byte", lambda v: base64.b64decode(v, validate=True) is not None)
_format("ipv4", lambda v: ipaddress.IPv4Address(v) is not None)
_format("ipv6", lambda v: ipaddress.IPv6Address(v) is not None)
_format("uuid", lambda v: uuid.UUID(v) is not None)


def _duplicates(node: Any, schema: Mapping[str, Any], path: str, out: list[FieldError]) -> None:
    """``x-kubernetes-list-type`` ``set`` (equal items) and ``map`` (equal keys) are refused as duplicates."""
    if isinstance(node, dict):
        properties: Mapping[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, child in node.items():
            sub = properties.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                _duplicates(child, sub, f"{path}.{key}" if path else str(key), out)
    elif isinstance(node, list):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or ()
        seen: set[str] = set()
        for index, item in enumerate(node):
            if list_type == "set":
                identity = json.dumps(item, sort_keys=True)
            elif list_type == "map" and isinstance(item, Mapping):
                identity = json.dumps({k: item[k] for k in keys if k in item}, sort_keys=True)
            else:
                identity = ""
            if identity and identity in seen:
                out.append(FieldError(f"{path}[{index}]", f"Duplicate value: {identity}", "FieldValueDuplicate"))
            seen.add(identity)
            if isinstance(schema.get("items"), Mapping):
                _duplicates(item, schema["items"], f"{path}[{index}]", out)


@dataclass
class SchemaValidator:
    """A compiled validator for one CRD version (compiled once: validation runs on every write)."""

    schema: Mapping[str, Any]
    _validator: jsonschema.Draft4Validator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._validator = jsonschema.Draft4Validator(to_json_schema(self.schema), format_checker=FORMATS)

    def errors(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[FieldError]:
        """Everything the API server refuses in ``obj``; ``old`` is the stored object on update (transition rules)."""
        found = []
        for error in self._validator.iter_errors(obj):
            path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path)
            found.append(FieldError(path.replace(".[", "["), error.message))
        _duplicates(obj, self.schema, "", found)
        rule_errors = cel_rules.check(self.schema, obj) if old is None else cel_rules.check(self.schema, obj, old)
        found.extend(FieldError(e.path, e.body, e.reason) for e in rule_errors)
        return sorted(found, key=lambda e: (e.path, e.message))
