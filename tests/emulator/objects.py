"""Object-level rules of the API server: errors as ``Status``, server-managed metadata, built-in kinds' quirks.

Kept apart from the HTTP plumbing in :mod:`server` so each rule reads in one place: what ``create`` fills in,
what an update may not change, what the (absent) controllers of built-in kinds would have written.
"""

from __future__ import annotations

import base64
import copy
import datetime
import uuid
from collections.abc import Mapping
from typing import Any

from .resources import ResourceSpec

HOLD_STATUS_ANNOTATION = "emulator.coalmine.dev/hold-status"


class ApiError(Exception):
    """An API error answered as a ``Status`` object, with the code and reason a real server would use."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(spec: ResourceSpec, name: str) -> ApiError:
    details = {"name": name, "group": spec.group, "kind": spec.plural}
    return ApiError(404, "NotFound", f'{spec.qualified} "{name}" not found', details)


def conflict(spec: ResourceSpec, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {spec.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, {"name": name, "group": spec.group, "kind": spec.plural})


Cause = tuple[str, str] | tuple[str, str, str]


def invalid(spec: ResourceSpec, name: str, causes: list[Cause]) -> ApiError:
    """422 Invalid, naming every offending field like the API server (``spec.x: Invalid value: …``).

    A cause is ``(field, detail)`` — an invalid value — or ``(field, body, reason)`` when the error is of another
    kind: ``body`` is then the whole error text (``Unsupported value: "x": …``, ``Forbidden: …``)."""
    entries = [
        (c[0], f"Invalid value: {c[1]}", c[1], "FieldValueInvalid") if len(c) == 2 else (c[0], c[1], c[1], c[2])
        for c in causes
    ]
    text = "; ".join(f"{field or '<root>'}: {body}" for field, body, _, _ in entries)
    group = f".{spec.group}" if spec.group else ""
    details = {
        "name": name,
        "group": spec.group,
        "kind": spec.kind,
        "causes": [{"reason": r, "message": m, "field": f} for f, _, m, r in entries],
    }
    return ApiError(422, "Invalid", f'{spec.kind}{group} "{name}" is invalid: {text}', details)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def strip_server_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without the fields the server manages, to detect a no-op write (no new resourceVersion)."""
    result = copy.deepcopy(dict(obj))
    meta = result.get("metadata") or {}
    for key in ("resourceVersion", "managedFields", "generation"):
        meta.pop(key, None)
    return result


def user_part(obj: Mapping[str, Any], *, has_status: bool) -> dict[str, Any]:
    """What ``metadata.generation`` tracks: everything but metadata (and status, with a status subresource)."""
    skip = {"metadata", "status"} if has_status else {"metadata"}
    return {k: v for k, v in obj.items() if k not in skip}


class BuiltinBehaviour:
    """What a cluster's controllers and admission do for built-in kinds, reduced to what operators observe.

    The deployment stand-in makes a Deployment "roll out" instantly on every spec write: its status reports
    ``observedGeneration`` and all replicas updated, ready and available. Annotate a Deployment with
    ``emulator.coalmine.dev/hold-status: "true"`` (or disable ``deployments_ready``) to keep whatever status a
    test writes through ``/status``, e.g. to simulate a rollout that never becomes ready.
    """

    def __init__(self, *, deployments_ready: bool = True) -> None:
        self.deployments_ready = deployments_ready

    def prepare(self, spec: ResourceSpec, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if spec.group == "" and spec.plural == "secrets":
            self._secret(obj)
        elif spec.group == "" and spec.plural == "namespaces":
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif spec.group == "apps" and spec.plural == "deployments":
            self._deployment(obj)

    @staticmethod
    def _secret(obj: dict[str, Any]) -> None:
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")

    def _deployment(self, obj: dict[str, Any]) -> None:
        deployment = obj.setdefault("spec", {})
        deployment.setdefault("replicas", 1)
        deployment.setdefault("revisionHistoryLimit", 10)
        deployment.setdefault("progressDeadlineSeconds", 600)
        deployment.setdefault(
            "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
        )

    def settle_deployment(self, obj: dict[str, Any]) -> None:
        """Write the status the deployment controller would converge to (called after generation is set)."""
        annotations = obj.get("metadata", {}).get("annotations") or {}
        if not self.deployments_ready or annotations.get(HOLD_STATUS_ANNOTATION) == "true":
            return
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        obj["status"] = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
            ],
        }


def new_uid() -> str:
    return str(uuid.uuid4())


def scale_view(spec: ResourceSpec, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The ``autoscaling/v1`` Scale of a Deployment, as ``GET …/deployments/x/scale`` returns it."""
    meta = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }
