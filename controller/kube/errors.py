"""The one exception tree for everything Coalmine does against the Kubernetes API.

``KubeError`` is the documented root: a handler that catches it catches every failure of this package, and every
message names the object (``Deployment default/podinfo-primary``) so a status message or an Event is actionable on
its own. The subclasses say what a caller can do about it: retry later (``ApiUnavailable``), re-read and re-apply
(``ApiConflict``), fix the spec (``ApiInvalid``, ``TargetInvalid``), fix RBAC (``ApiForbidden``).
"""

from __future__ import annotations


class KubeError(Exception):
    """Root of every error raised by ``controller.kube`` and the routers built on it."""


class ApiError(KubeError):
    """The API server answered a request with an error status (``status`` is the HTTP code, 0 if none)."""

    def __init__(self, what: str, status: int, reason: str) -> None:
        self.what = what
        self.status = status
        self.reason = reason
        super().__init__(f"{what}: {reason} (HTTP {status})" if status else f"{what}: {reason}")


class ApiNotFound(ApiError):
    """404: the object (or its namespace, or its API group — e.g. Istio not installed) does not exist."""


class ApiConflict(ApiError):
    """409: the object changed since it was read (stale resourceVersion) or already exists."""


class ApiInvalid(ApiError):
    """400/422: the API server rejected the object; the reason says which field."""


class ApiForbidden(ApiError):
    """401/403: the operator's ServiceAccount lacks the permission; the message names verb and resource."""


class ApiUnavailable(ApiError):
    """5xx, 429, a timeout or a broken connection: transient, retry on the next tick."""


class TargetInvalid(KubeError):
    """The user's target cannot be handled as written (e.g. no ``app`` selector label); the message says why."""


class MissingConfig(KubeError):
    """A ConfigMap or Secret the pod spec requires (not ``optional``) does not exist."""
