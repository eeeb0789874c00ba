"""The OpenAPI documents a real API server publishes, so real ``kubectl`` can validate, patch and explain.

What kubectl 1.35 does with them, and so what they must hold:

- ``kubectl apply`` / ``create`` (default ``--validate=strict``) reads ``/openapi/v3`` (an index of group-versions)
  and ``/openapi/v3/apis/<g>/<v>`` (``/openapi/v3/api/v1`` for core), looks for the **PATCH operation** whose
  ``x-kubernetes-group-version-kind`` (one map) names the kind, and if it lists a ``fieldValidation`` query
  parameter leaves validation to the server (``?fieldValidation=Strict``, see :mod:`.fieldcheck`). Without such a
  path it falls back to ``/openapi/v2`` **as protobuf**, which this emulator does not speak: it answers 406 there
  unless JSON is acceptable, like a server that cannot produce the asked-for type.
- ``kubectl apply`` on an existing object computes a strategic merge patch from the v3 schema when the PATCH
  operation accepts ``application/strategic-merge-patch+json`` (built-in kinds), else a JSON merge patch.
- ``kubectl explain`` finds the component schema whose ``x-kubernetes-group-version-kind`` (a list) names the kind.

Built-in kinds come from kubernetes-validate's bundled upstream definitions of 1.35 (JSON schema, converted back:
``$ref`` to ``#/components/schemas/…`` wrapped in ``allOf`` when it has siblings, as upstream writes it, nullable
types back to one type, int-or-string back to ``format: int-or-string``). Custom resources come from their CRD's
``openAPIV3Schema`` with ``apiVersion``/``kind``/``metadata`` added as the apiextensions builder does; a schemaless
resource (Istio and kopf here, unless their real CRDs are loaded) is an object preserving unknown fields. Names
follow upstream: ``io.k8s.api.apps.v1.Deployment``, ``dev.coalmine.v1alpha1.Canary`` (the group reversed).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp.web
import kubernetes_validate

from .objects import ApiError
from .resources import ResourceSpec

_DEFS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / "v1.35.0-local" / "_definitions.json"
V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
_ALWAYS = (META + "Status", META + "DeleteOptions", META + "Patch", META + "WatchEvent", META + "ListMeta")
_LOOSE: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
JSON_PATCH, MERGE_PATCH = "application/json-patch+json", "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


def _from_json_schema(node: Any) -> Any:
    """One upstream definition back from JSON schema to OpenAPI v3 (see the module docstring)."""
    if isinstance(node, list):
        return [_from_json_schema(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            result[key] = V3_PREFIX + value.rsplit("/", 1)[-1]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                result[key] = types[0]
        elif key in ("properties", "patternProperties"):
            result[key] = {k: _from_json_schema(v) for k, v in value.items()}
        else:
            result[key] = _from_json_schema(value)
    one_of = result.get("oneOf")
    if isinstance(one_of, list) and all(isinstance(o, Mapping) and "type" in o for o in one_of):
        alternatives = {o["type"] for o in one_of}
        result.pop("oneOf")
        result["type"] = "string"
        if alternatives == {"string", "integer"}:
            result["format"] = "int-or-string"
    if "$ref" in result and len(result) > 1:
        result = {"allOf": [{"$ref": result.pop("$ref")}], **result}
    return result


@functools.cache
def upstream() -> dict[str, dict[str, Any]]:
    """Every upstream (1.35) definition by its OpenAPI name, as OpenAPI v3 schemas."""
    raw = json.loads(_DEFS.read_text(encoding="utf-8"))["$defs"]
    definitions = {name: _from_json_schema(schema) for name, schema in raw.items()}
    for schema in definitions.values():
        if schema.get("x-kubernetes-group-version-kind"):  # the converter pinned apiVersion/kind; upstream doesn't
            for key in ("apiVersion", "kind"):
                (schema.get("properties") or {}).get(key, {}).pop("enum", None)
    return definitions


@functools.cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in upstream().items():
        gvks: list[dict[str, str]] = schema.get("x-kubernetes-group-version-kind") or []
        if len(gvks) == 1:
            gvk = gvks[0]
            index[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return index


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


def _closure(roots: Iterable[str]) -> dict[str, Any]:
    """The named upstream definitions and everything they refer to."""
    definitions, todo, seen = upstream(), list(roots), dict[str, Any]()
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen[name] = definitions[name]
        found: set[str] = set()
        _refs(definitions[name], found)
        todo.extend(found - seen.keys())
    return seen


def schema_name(spec: ResourceSpec) -> str:
    """The component name of a resource's kind (upstream's, or the reversed group for custom resources)."""
    if spec.builtin and (spec.group, spec.version, spec.kind) in _by_gvk():
        return _by_gvk()[(spec.group, spec.version, spec.kind)]
    return ".".join([*reversed(spec.group.split(".")), spec.version, spec.kind])


def _gvk(spec: ResourceSpec, kind: str | None = None) -> dict[str, str]:
    return {"group": spec.group, "version": spec.version, "kind": kind or spec.kind}


def kind_schema(spec: ResourceSpec) -> dict[str, Any]:
    """The published schema of a resource's kind (refs point into :func:`upstream`, with the v3 prefix)."""
    if spec.builtin and (spec.group, spec.version, spec.kind) in _by_gvk():
        return upstream()[schema_name(spec)]
    schema = copy.deepcopy(dict(spec.schema or _LOOSE))
    schema.setdefault("type", "object")
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned schema of this representation of an object.",
    }
    properties["kind"] = {"type": "string", "description": "Kind is a string value representing the REST resource."}
    properties["metadata"] = {
        "allOf": [{"$ref": V3_PREFIX + OBJECT_META}],
        "default": {},
        "description": "Standard object's metadata.",
    }
    schema["x-kubernetes-group-version-kind"] = [_gvk(spec)]
    return schema


def _list_schema(spec: ResourceSpec) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items"],
        "description": f"{spec.kind}List is a list of {spec.kind}",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": V3_PREFIX + schema_name(spec)}},
            "metadata": {"allOf": [{"$ref": V3_PREFIX + META + "ListMeta"}], "default": {}},
        },
        "x-kubernetes-group-version-kind": [_gvk(spec, f"{spec.kind}List")],
    }


def _param(name: str, where: str = "query", *, required: bool = False) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": where, "schema": {"type": "string", "uniqueItems": True}}
    if required:
        param["required"] = True
    return param


_WRITE_PARAMS = [_param("dryRun"), _param("fieldManager"), _param("fieldValidation")]


def _operation(spec: ResourceSpec, action: str, verb: str, schema: str, gvk: Mapping[str, str]) -> dict[str, Any]:
    ref = {"schema": {"$ref": V3_PREFIX + schema}}
    operation: dict[str, Any] = {
        "operationId": f"{verb}{spec.kind}",
        "description": f"{verb} the specified {spec.kind}",
        "responses": {"200": {"description": "OK", "content": {"application/json": ref}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": dict(gvk),
    }
    if action in ("post", "put"):
        operation["parameters"] = list(_WRITE_PARAMS)
        operation["requestBody"] = {"content": {"*/*": ref}, "required": True}
    elif action == "patch":
        patch = {"schema": {"$ref": V3_PREFIX + META + "Patch"}}
        types = [JSON_PATCH, MERGE_PATCH] + ([STRATEGIC_PATCH] if spec.builtin else [])
        operation["parameters"] = list(_WRITE_PARAMS)
        operation["requestBody"] = {"content": dict.fromkeys(types, patch), "required": True}
    elif action == "delete":
        operation["parameters"] = [_param("dryRun")]
    elif action in ("list", "watchlist"):
        operation["parameters"] = [_param(p) for p in ("labelSelector", "fieldSelector", "limit", "continue")]
    return operation


def _paths(spec: ResourceSpec) -> dict[str, Any]:
    base = f"/apis/{spec.group}/{spec.version}" if spec.group else f"/api/{spec.version}"
    collection = f"{base}/namespaces/{{namespace}}/{spec.plural}" if spec.namespaced else f"{base}/{spec.plural}"
    scope = [_param("namespace", "path", required=True)] if spec.namespaced else []
    name, gvk, kind = schema_name(spec), _gvk(spec), schema_name(spec)
    items = {
        "get": _operation(spec, "list", "list", f"{name}List", gvk),
        "post": _operation(spec, "post", "create", kind, gvk),
        "parameters": scope,
    }
    item = {
        "get": _operation(spec, "get", "read", kind, gvk),
        "put": _operation(spec, "put", "replace", kind, gvk),
        "patch": _operation(spec, "patch", "patch", kind, gvk),
        "delete": _operation(spec, "delete", "delete", META + "Status", gvk),
        "parameters": [_param("name", "path", required=True), *scope],
    }
    paths = {collection: items, f"{collection}/{{name}}": item}
    if spec.namespaced:
        paths[f"{base}/{spec.plural}"] = {"get": _operation(spec, "list", "list", f"{name}List", gvk)}
    for sub in sorted(spec.subresources):
        target, sub_gvk = (
            ("io.k8s.api.autoscaling.v1.Scale", {"group": "autoscaling", "version": "v1", "kind": "Scale"})
            if sub == "scale"
            else (kind, gvk)
        )
        paths[f"{collection}/{{name}}/{sub}"] = {
            verb: _operation(spec, action, verb, target, sub_gvk)
            for verb, action in (("get", "get"), ("put", "put"), ("patch", "patch"))
        } | {"parameters": item["parameters"]}
    return paths


def group_version_path(spec: ResourceSpec) -> str:
    return f"apis/{spec.group}/{spec.version}" if spec.group else f"api/{spec.version}"


def v3_document(specs: Iterable[ResourceSpec]) -> dict[str, Any]:
    """One group-version's document (``specs``: the resources served in it)."""
    selected = list(specs)
    roots = [*_ALWAYS, OBJECT_META]
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for spec in selected:
        paths.update(_paths(spec))
        name = schema_name(spec)
        if spec.builtin and name in upstream():
            roots += [name, f"{name}List"]
        else:
            schemas[name], schemas[f"{name}List"] = kind_schema(spec), _list_schema(spec)
        if "scale" in spec.subresources:
            roots.append("io.k8s.api.autoscaling.v1.Scale")
    version = "v1.35.0"
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "components": {"schemas": {**_closure(roots), **schemas}},
    }


def _v2_operation(operation: Mapping[str, Any]) -> dict[str, Any]:
    """A v3 operation in Swagger 2.0 form (parameters typed inline, consumes instead of requestBody)."""
    result = {k: v for k, v in operation.items() if k not in ("requestBody", "responses", "parameters")}
    result["parameters"] = [
        {k: v for k, v in p.items() if k != "schema"} | {"type": "string"} for p in operation.get("parameters") or ()
    ]
    body = operation.get("requestBody")
    if body:
        result["consumes"] = list(body["content"])
        result["parameters"].append({"name": "body", "in": "body", "required": True, "schema": {"type": "object"}})
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    result["produces"] = ["application/json"]
    result["responses"] = {"200": {"description": "OK", "schema": response}}
    return result


def v2_document(specs: Iterable[ResourceSpec]) -> dict[str, Any]:
    """``/openapi/v2`` as JSON: every group-version's paths and definitions in one Swagger 2.0 document."""
    specs = list(specs)
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for spec in specs:
        document = v3_document([spec])
        definitions.update(document["components"]["schemas"])
        for path, item in document["paths"].items():
            paths[path] = {
                verb: _v2_operation(op)
                if verb != "parameters"
                else [{k: v for k, v in p.items() if k != "schema"} | {"type": "string"} for p in op]
                for verb, op in item.items()
            }
    text = json.dumps(definitions).replace(V3_PREFIX, V2_PREFIX)
    paths_text = json.dumps(paths).replace(V3_PREFIX, V2_PREFIX)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": json.loads(paths_text),
        "definitions": json.loads(text),
    }


class Documents:
    """The documents of the current set of served resources, built once per change (CRDs come and go)."""

    def __init__(self) -> None:
        self._specs: tuple[ResourceSpec, ...] = ()
        self._v3: dict[str, bytes] = {}
        self._index: bytes = b""
        self._urls: dict[str, str] = {}
        self._v2: bytes | None = None

    def invalidate(self) -> None:
        """The served resources changed: rebuild on the next request."""
        self._index = b""

    def refresh(self, specs: Iterable[ResourceSpec]) -> None:
        if self._index:
            return
        self._specs = tuple(specs)
        by_path: dict[str, list[ResourceSpec]] = {}
        for spec in specs:
            by_path.setdefault(group_version_path(spec), []).append(spec)
        self._v3 = {path: json.dumps(v3_document(group)).encode() for path, group in sorted(by_path.items())}
        self._urls = {
            path: f"/openapi/v3/{path}?hash={hashlib.sha512(body).hexdigest().upper()}"
            for path, body in self._v3.items()
        }
        index = {"paths": {path: {"serverRelativeURL": url} for path, url in self._urls.items()}}
        self._index = json.dumps(index).encode()
        self._v2 = None

    def index(self) -> bytes:
        return self._index

    def group_version(self, path: str) -> bytes | None:
        """``api/v1`` or ``apis/<group>/<version>``: the document, or None if nothing is served there."""
        return self._v3.get(path.strip("/"))

    def url(self, path: str) -> str:
        """The current (hashed) URL of a group-version's document: an older hash is redirected there."""
        return self._urls[path.strip("/")]

    def v2(self) -> bytes:
        if self._v2 is None:
            self._v2 = json.dumps(v2_document(self._specs)).encode()
        return self._v2

    def respond(self, path: str, asked_hash: str | None, accept: str) -> aiohttp.web.Response:
        """The answer to ``GET /openapi/…``: JSON only (406 to a protobuf-only ``Accept``, which is what kubectl
        asks ``/openapi/v2`` for); a hashed v3 URL is immutable, an obsolete hash redirected to the newest."""
        if accept and "json" not in accept and "*/*" not in accept:
            return _error(406, "NotAcceptable", f"only application/json is served here, not {accept}")
        if path.rstrip("/") == "/openapi/v2":
            return aiohttp.web.Response(body=self.v2(), content_type="application/json")
        if path.rstrip("/") == "/openapi/v3":
            return aiohttp.web.Response(body=self.index(), content_type="application/json")
        group_version = path.removeprefix("/openapi/v3/")
        document = self.group_version(group_version)
        if document is None:
            return _error(404, "NotFound", "the server could not find the requested resource")
        if asked_hash is None:
            return aiohttp.web.Response(body=document, content_type="application/json")
        current = self.url(group_version)
        if not current.endswith(f"?hash={asked_hash}"):
            return aiohttp.web.Response(status=301, headers={"Location": current})
        immutable = {"Cache-Control": "public, immutable", "Expires": "Fri, 01 Jan 2100 00:00:00 GMT"}
        return aiohttp.web.Response(body=document, content_type="application/json", headers=immutable)


def _error(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(ApiError(code, reason, message).status(), status=code)


__all__ = ("Documents", "kind_schema", "schema_name", "upstream", "v2_document", "v3_document")
