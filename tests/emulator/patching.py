"""The three patch dialects of the Kubernetes API, applied to plain JSON documents.

kmock's own emulator deep-merges every write, which hides bugs a real API server would expose: a strategic
merge patch sent to a custom resource (the server answers 415), a JSON-patch ``test`` that fails (422, which kopf
relies on to detect a concurrent change), a merge patch that removes a key with ``null``. These functions return a
new document and never mutate their inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Lists that a strategic merge patch merges by key instead of replacing (from the built-in types' Go tags).
# ``None`` means a list of scalars merged as a set (e.g. ``metadata.finalizers``).
_MERGE_KEYS: dict[str, str | None] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "finalizers": None,
    "ports": "containerPort",  # a Service's ports merge by "port"; see _merge_key()
}


class PatchError(ValueError):
    """A patch that cannot be applied; ``status`` is what the API server answers (422 or 400)."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A practical subset of Kubernetes' strategic merge patch, for built-in kinds only.

    Objects merge like a merge patch; the well-known keyed lists (containers by name, volumeMounts by mountPath,
    finalizers as a set …) merge element-wise, with ``$patch: delete`` removing an element and ``$patch:
    replace`` replacing a whole object. Other lists are replaced, as in the real server. ``$setElementOrder``
    and ``$retainKeys`` directives are accepted and ignored.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result: dict[str, Any] = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if value is None:
            result.pop(key, None)
        elif key in _MERGE_KEYS and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, _merge_key(key, value))
        elif isinstance(value, Mapping):
            result[key] = strategic_merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_key(field: str, items: Sequence[Any]) -> str | None:
    if field == "ports" and not any(isinstance(item, Mapping) and "containerPort" in item for item in items):
        return "port"
    return _MERGE_KEYS[field]


def _merge_list(current: list[Any], patch: list[Any], key: str | None) -> list[Any]:
    if key is None:  # a set of scalars
        merged = list(current)
        merged.extend(item for item in patch if item not in merged)
        return merged
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, Mapping) or key not in item:
            raise PatchError(f"strategic merge patch: list item without merge key {key!r}: {item!r}")
        index = next((i for i, old in enumerate(result) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test) over JSON pointers.

    A failed ``test`` or a path that does not exist raises :class:`PatchError` with status 422, which is what
    the API server answers and what kopf expects when its optimistic ``test`` of ``resourceVersion`` fails.
    """
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", status=400)
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, Mapping) or "op" not in operation or "path" not in operation:
            raise PatchError(f"malformed JSON patch operation: {operation!r}", status=400)
        op, path = operation["op"], _pointer(operation["path"])
        if op == "test":
            if _get(doc, path) != operation.get("value"):
                raise PatchError(f"testing value {operation['path']} failed")
        elif op == "add":
            doc = _add(doc, path, copy.deepcopy(operation.get("value")))
        elif op == "remove":
            doc = _remove(doc, path)
        elif op == "replace":
            _get(doc, path)  # must exist
            doc = _add(_remove(doc, path), path, copy.deepcopy(operation.get("value")))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            value = copy.deepcopy(_get(doc, source))
            if op == "move":
                doc = _remove(doc, source)
            doc = _add(doc, path, value)
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}", status=400)
    return doc


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {text!r}", status=400)
    return [part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/")]


def _get(doc: Any, path: list[str]) -> Any:
    node = doc
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"path /{'/'.join(path)} does not exist")
    return node


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"index {last} out of range")
    else:
        raise PatchError(f"cannot add into a scalar at /{'/'.join(path)}")
    return doc


def _remove(doc: Any, path: list[str]) -> Any:
    if not path:
        return None
    parent = _get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise PatchError(f"path /{'/'.join(path)} does not exist")
    return doc
