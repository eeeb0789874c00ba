"""Every field the Canary CRD accepts is read: a field that validates but does nothing is a silent lie to the user.

Generic over ``crds/canary.yaml``: every leaf under ``spec`` gets a distinctive valid value in an otherwise fixed
Canary; the parsed spec must change, and each changed attribute of the typed spec must be read somewhere outside
the parser (an attribute access in ``controller/`` or ``analysis/``). Pass-through subtrees (objects that keep
unknown fields, copied into Istio as written) are instead checked to appear verbatim in the router's output. A new
CRD field without a reader, or a new pass-through subtree without an entry below, fails this test.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from controller.rollout.schema import crd_schema
from controller.rollout.spec import CanarySpec
from controller.rollout.validation import COALMINE_API_VERSION, parse_valid_canary, validate_document
from controller.routers import Routes
from controller.routers.istio import SessionCookies, build_destination_rules, build_virtual_service

ROOT = Path(__file__).resolve().parents[1]
Path_ = tuple[str, ...]  # property names, "[]" for list items

BASE: dict[str, Any] = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
    "autoscalerRef": {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "name": "podinfo",
        "primaryScalerReplicas": {},
    },
    "service": {"port": 9898, "apex": {}, "primary": {}, "canary": {}},
    "analysis": {
        "interval": "1m",
        "stepWeight": 10,
        "maxWeight": 50,
        "metrics": [
            {"name": "custom", "templateRef": {"name": "t"}, "thresholdRange": {"max": 1}, "comparison": {}},
        ],
        "webhooks": [{"name": "hook", "url": "http://hook.test/"}],
        "alerts": [{"name": "alert", "providerRef": {"name": "slack"}}],
        "sessionAffinity": {"cookieName": "c"},
        "comparison": {"errorRate": {}, "latency": {}},
    },
}
MODE_FREE = ("stepWeight", "maxWeight")
# Fields valid only next to others: what the baseline and the variant both get for that leaf.
CONTEXT: Mapping[str, tuple[tuple[str, ...], Mapping[str, Any]]] = {
    "analysis.iterations": (MODE_FREE, {"iterations": 2}),
    "analysis.stepWeights": (MODE_FREE, {"stepWeights": [10, 20]}),
    "analysis.metrics[].query": ((), {"metrics": [{"name": "custom", "query": "up", "thresholdRange": {"max": 1}}]}),
    "analysis.steps[].setWeight": (MODE_FREE, {"steps": [{"setWeight": 10}, {"pause": {"duration": "1m"}}]}),
    "analysis.steps[].pause.duration": (MODE_FREE, {"steps": [{"setWeight": 10}, {"pause": {"duration": "1m"}}]}),
    "analysis.mirrorWeight": ((), {"mirror": True}),
}
ITEM_CONTEXT: Mapping[str, tuple[str, ...]] = {  # keys removed from the list item
    "analysis.metrics[].threshold": ("thresholdRange",),
}
ITEM_INDEX = {"analysis.steps[].pause.duration": 1}
# Fields of one provider only: the spec-level context both the baseline and the variant get.
GATEWAY_API_CONTEXT: Mapping[str, Any] = {"provider": "gatewayapi:v1", "gatewayRefs": [{"name": "gateway"}]}
# A distinctive Istio-valid value for each pass-through subtree, and where the router must write it.
PASS_THROUGH: Mapping[str, Any] = {
    "service.trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "connectionPool": {"tcp": {"maxConnections": 7}}},
    "service.match[]": {"uri": {"prefix": "/zz"}, "queryParams": {"zz": {"exact": "1"}}},
    "service.rewrite": {"uri": "/zz"},
    "service.retries": {"attempts": 7, "perTryTimeout": "3s"},
    "service.headers": {"request": {"set": {"x-zz": "1"}}},
    "service.corsPolicy": {"allowMethods": ["PATCH"], "maxAge": "7s"},
    "analysis.match[]": {"headers": {"x-zz": {"exact": "1"}}, "method": {"exact": "PUT"}},
}
# The explicit allowlist: leaves that can hold one valid value only, so there is nothing for a reader to tell apart.
SINGLE_VALUED: Mapping[str, str] = {
    "targetRef.apiVersion": "canary_rules accepts apps/v1 only (the Deployment API)",
}
EXTRA_STRINGS = {"autoscaling/v2": "autoscaling/v1"}  # a value rules accept where the baseline has one
STRINGS = ("zzdistinct", "/zzdistinct", "http://zzdistinct.test/")
# The parser itself is no reader: its functions (parse_*, _parse_*) in the typed-spec module are skipped.
SPEC_MODULE = ROOT / "controller" / "rollout" / "spec.py"


def dotted(path: Path_) -> str:
    return ".".join(path).replace(".[]", "[]")


def walk(schema: Mapping[str, Any], path: Path_ = ()) -> Iterator[tuple[Path_, Mapping[str, Any], bool]]:
    """(path, schema, pass_through) for every leaf and every pass-through subtree under ``schema``."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        yield path, schema, True
    elif (
        schema.get("type") == "array"
        and isinstance(schema.get("items"), Mapping)
        and (schema["items"].get("type") == "object")
    ):
        yield from walk(schema["items"], (*path, "[]"))
    elif "properties" in schema:
        for name, child in schema["properties"].items():
            if path == () and name == "canaryAnalysis":
                continue  # the same schema as analysis (a YAML alias), read as analysis: test_canary_analysis_alias
            yield from walk(child, (*path, name))
    else:
        yield path, schema, False


def spec_schema() -> Mapping[str, Any]:
    schema: Mapping[str, Any] = crd_schema("Canary")["properties"]["spec"]
    return schema


LEAVES = [(dotted(p), s) for p, s, through in walk(spec_schema()) if not through]
THROUGH = [dotted(p) for p, _, through in walk(spec_schema()) if through]


def candidates(schema: Mapping[str, Any], baseline: Any) -> list[Any]:
    default = schema.get("default")
    if "enum" in schema:
        return [v for v in reversed(schema["enum"]) if v not in ("", default, baseline)]
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return [9899, "zzport"]
    if kind == "string" and baseline in EXTRA_STRINGS:
        return [EXTRA_STRINGS[baseline]]
    if kind == "boolean":
        return [not (default or False)]
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", -(10**6)), schema.get("maximum", 10**6)
        pool = [7, 3, 2, 11, 60, 0.3, 0.2] if kind == "number" else [7, 3, 2, 11, 60, 1]
        return [
            v
            for v in pool
            if low <= v <= high and v not in (default, baseline) and not (schema.get("exclusiveMinimum") and v == low)
        ]
    if kind == "string":
        if schema.get("pattern", "").endswith("(ms|s|m|h))+$"):
            return ["7s", "3m"]
        return [v for v in STRINGS if v != baseline]
    if kind == "array":
        item = schema.get("items") or {}
        if item.get("type") == "integer":
            return [[5, 15]]
        return [["zzdistinct"]]
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return [{"zzkey": "zzvalue"}]
    return []


def document(spec: Mapping[str, Any]) -> dict[str, Any]:
    meta = {"name": "podinfo", "namespace": "test"}
    return {"apiVersion": COALMINE_API_VERSION, "kind": "Canary", "metadata": meta, "spec": copy.deepcopy(spec)}


def place(path: str) -> tuple[dict[str, Any], list[str | int]]:
    """The baseline spec for ``path`` (with its context) and where the leaf goes in it."""
    spec = copy.deepcopy(BASE)
    removed, added = CONTEXT.get(path, ((), {}))
    for key in removed:
        spec["analysis"].pop(key, None)
    spec["analysis"].update(copy.deepcopy(dict(added)))
    if path.startswith("service.gatewayRefs"):
        spec["provider"] = GATEWAY_API_CONTEXT["provider"]
        spec["service"]["gatewayRefs"] = copy.deepcopy(GATEWAY_API_CONTEXT["gatewayRefs"])
    keys: list[str | int] = []
    node: Any = spec
    for part in path.replace("[]", ".[]").split("."):
        if part == "[]":
            index = ITEM_INDEX.get(path, 0)
            for key in ITEM_CONTEXT.get(path, ()):
                node[index].pop(key, None)
            keys.append(index)
            node = node[index]
            continue
        keys.append(part)
        if part not in node and part != path.split(".")[-1].replace("[]", ""):
            node[part] = {}
        node = node.get(part, {}) if isinstance(node, dict) else node
    return spec, keys


def put(spec: dict[str, Any], keys: list[str | int], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    node: Any = out
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


def changed(a: Any, b: Any, name: str = "") -> set[str]:
    """Names of the typed spec's attributes (and mapping keys' parents) that differ between ``a`` and ``b``."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and type(a) is type(b):
        found: set[str] = set()
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                found |= changed(getattr(a, f.name), getattr(b, f.name), f.name) or {f.name}
        return found
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return set().union(*(changed(x, y, name) for x, y in zip(a, b, strict=True))) or ({name} if a != b else set())
    return {name} if a != b and name else set()


@cache
def attribute_reads() -> frozenset[str]:
    names: set[str] = set()
    for folder in ("controller", "analysis"):
        for file in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(file.read_text(encoding="utf-8"))
            if file == SPEC_MODULE:
                parsers = [
                    n
                    for n in ast.walk(tree)
                    if isinstance(n, ast.FunctionDef) and n.name.lstrip("_").startswith("parse")
                ]
                for parser in parsers:
                    parser.body = []
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
    return frozenset(names)


def parse(spec: Mapping[str, Any]) -> CanarySpec:
    report = validate_document(document(spec))
    assert report.valid, report.problems
    return parse_valid_canary(document(spec))


def test_the_walk_finds_the_crd_fields() -> None:
    paths = {path for path, _ in LEAVES}
    assert {"analysis.sessionAffinity.primaryCookieName", "service.port", "analysis.metrics[].interval"} <= paths
    assert set(THROUGH) == set(PASS_THROUGH), "a pass-through subtree needs a distinctive value in PASS_THROUGH"


@pytest.mark.parametrize(("path", "schema"), LEAVES, ids=[path for path, _ in LEAVES])
def test_every_crd_leaf_is_read(path: str, schema: Mapping[str, Any]) -> None:
    spec, keys = place(path)
    node: Any = spec
    for key in keys[:-1]:
        node = node[key]
    baseline_value = node.get(keys[-1]) if isinstance(node, dict) else None
    options = candidates(schema, baseline_value)
    if path in SINGLE_VALUED:
        pytest.skip(SINGLE_VALUED[path])
    if "enum" in schema and not options:
        pytest.skip(f"{path} has a single allowed value ({schema['enum']}): nothing to read")
    base = parse(spec)
    for value in options:
        variant = put(spec, keys, value)
        if not validate_document(document(variant)).valid:
            continue
        diff = changed(base, parse(variant))
        assert diff, f"{path}={value!r} validates but leaves the parsed spec unchanged: nothing reads it"
        unread = {name for name in diff if name not in attribute_reads()}
        assert not unread, f"{path} is parsed into {sorted(unread)}, which nothing outside the parser reads"
        return
    raise AssertionError(f"no distinctive valid value for {path} among {options!r}")


def _contains(haystack: Any, needle: Any) -> bool:
    if haystack == needle:
        return True
    if isinstance(haystack, Mapping):
        return any(_contains(v, needle) for v in haystack.values())
    if isinstance(haystack, list):
        return any(_contains(v, needle) for v in haystack)
    return False


@pytest.mark.parametrize("path", sorted(PASS_THROUGH))
def test_pass_through_subtrees_reach_istio_verbatim(path: str) -> None:
    value = PASS_THROUGH[path]
    spec = copy.deepcopy(BASE)
    spec["analysis"].pop("sessionAffinity")
    section, field = path.replace("[]", "").split(".")
    spec[section][field] = [value] if path.endswith("[]") else value
    if path == "analysis.match[]":
        for key in MODE_FREE:
            spec["analysis"].pop(key)
        spec["analysis"]["iterations"] = 3
    parsed = parse(spec)
    vs = build_virtual_service(parsed, "podinfo", "test", Routes(90, 10, match_active=True), cookies=SessionCookies())
    output = [vs, *build_destination_rules(parsed, "test")]
    assert _contains(output, value) or any(
        isinstance(m, Mapping) and all(m.get(k) == v for k, v in value.items())
        for route in vs["spec"].get("http", ())
        for m in route.get("match", ())
    ), f"{path} does not reach the router's output as written"


def test_canary_analysis_alias_is_read_as_analysis() -> None:
    spec = copy.deepcopy(BASE)
    spec["canaryAnalysis"] = spec.pop("analysis")
    spec["canaryAnalysis"]["stepWeight"] = 7
    assert parse(spec).analysis.step_weight == 7
