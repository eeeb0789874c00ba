"""The dashboard's questions and actions, answered with the plugin's own functions; no HTTP here.

Each method returns ``(HTTP status, JSON body)`` so :mod:`.server` only routes and checks origins. Reads call
:func:`list_rollouts` / :func:`find_rollout` / :func:`list_events` and the summaries; an action is exactly
``kubectl coalmine VERB NAME --wait W``: :func:`precheck`, then :func:`send_request`. A :class:`PluginError`
becomes ``{"error": message}`` with 403 when the API server said Forbidden (RBAC), so the page shows the plugin's
sentence ("no permission to patch canaries.coalmine.dev in team (needs: patch on canaries)"), never a trace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.cli.dashboard.live import Hub
from controller.cli.dashboard.views import ACTIONS, detail, row
from controller.cli.kubectl.access import Cluster, PluginError, find_rollout, list_events
from controller.cli.kubectl.access import list_rollouts as read_rollouts
from controller.cli.kubectl.actions import RequestResult, precheck, send_request
from controller.cli.kubectl.summary import events_about, now_epoch, summarize
from controller.cli.kubectl.workloads import rollout_workloads
from controller.kube.errors import ApiForbidden, ApiNotFound

Answer = tuple[int, dict[str, Any]]
MAX_WAIT_S = 60.0
_RESULTS = {RequestResult.HANDLED: "handled", RequestResult.IGNORED: "ignored", RequestResult.NO_ANSWER: "noAnswer"}


@dataclass
class DashboardApi:
    """What the pages may ask: ``namespace`` None means every namespace (``-A``)."""

    cluster: Cluster
    namespace: str | None
    hub: Hub
    default_wait_s: float = 10.0
    clock: Callable[[], float] = now_epoch

    def __post_init__(self) -> None:
        self._acting = threading.Lock()  # one request at a time: two quick clicks must not replace each other

    def session(self) -> Answer:
        """What the page's header shows: the scope, the kubeconfig user, and how live updates arrive."""
        return 200, {
            "namespace": self.namespace,
            "allNamespaces": self.namespace is None,
            "user": self.cluster.user or None,
            "live": dict(self.hub.mode),
        }

    def list_rollouts(self) -> Answer:
        try:
            objects = read_rollouts(self.cluster, self.namespace)
        except PluginError as exc:
            return _refusal(exc)
        now = self.clock()
        for obj in objects:  # the timeline starts with what is there when the page first looks
            if not self.hub.timeline(str(obj["kind"]), *_where(obj)):
                self.hub.observe(obj, str(obj["kind"]))
        return 200, {"items": [row(summarize(obj), now) for obj in objects], "live": dict(self.hub.mode)}

    def rollout(self, namespace: str, name: str) -> Answer:
        """The detail page: the object through the summaries, its Events, its two Deployments and the timeline."""
        if not self._in_scope(namespace):
            return 404, {"error": f"namespace {namespace} is outside this dashboard's scope"}
        try:
            obj = find_rollout(self.cluster, namespace, name)
            kind = str(obj["kind"])
            events = events_about(list_events(self.cluster, namespace, kind, name), kind, name)
        except PluginError as exc:
            return _refusal(exc)
        if not self.hub.timeline(kind, namespace, name):
            self.hub.observe(obj, kind)
        workloads = rollout_workloads(self.cluster, namespace, obj)
        body = detail(obj, events, self.clock(), workloads, self.hub.timeline(kind, namespace, name))
        return 200, body

    def act(self, namespace: str, name: str, action_name: str, wait_s: float | None) -> Answer:
        """Press a button: the plugin's precheck (409 with its reason), then its request and wait."""
        action = ACTIONS.get(action_name)
        if action is None:
            return 404, {"error": f"unknown action {action_name!r} (one of: {', '.join(ACTIONS)})"}
        if not self._in_scope(namespace):
            return 404, {"error": f"namespace {namespace} is outside this dashboard's scope"}
        wait = self.default_wait_s if wait_s is None else max(0.0, min(float(wait_s), MAX_WAIT_S))
        said: list[str] = []
        with self._acting:
            try:
                obj = find_rollout(self.cluster, namespace, name)
                refusal = precheck(action, obj)
                if refusal is not None:
                    return 409, {"error": refusal, "refusedBy": "precheck"}
                outcome = send_request(self.cluster, obj, action, wait_s=wait, say=said.append)
            except PluginError as exc:
                return _refusal(exc)
        return 200, {
            "action": str(action),
            "result": _RESULTS[outcome.result],
            "requestId": outcome.request_id,
            "phase": outcome.phase,
            "message": outcome.message,
            "said": said,
            "events": [event.to_dict() for event in outcome.events],
        }

    def _in_scope(self, namespace: str) -> bool:
        return self.namespace is None or namespace == self.namespace


def _refusal(exc: PluginError) -> Answer:
    """403 when RBAC refused (the plugin's sentence names the verb and resource), 404 when absent, else 502."""
    cause = exc.__cause__
    if isinstance(cause, ApiForbidden):
        return 403, {"error": str(exc)}
    if isinstance(cause, ApiNotFound) or str(exc).startswith("no Canary or BlueGreen named"):
        return 404, {"error": str(exc)}
    return 502, {"error": str(exc)}


def _where(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
