"""Watch a rollout from the outside: what the API says each fraction of a second, and what Prometheus saw.

:class:`Sampler` is a background thread that reads the Canary, its routing object (the VirtualService, or with
``provider="gatewayapi"`` the HTTPRoute) and the primary Deployment every ``period_s`` and keeps a :class:`Sample`
each time: phase, the weight the *mesh* is given (the routing object, not the status), the judge's evidence per
metric and the primary's pod template digest (a promotion is a change of it). It only reads; it starts no process,
so it may run on any thread. :func:`error_rates` asks the real Prometheus for each arm's 5xx ratio over the run,
the series the chart draws.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.kube.api import CANARIES, DEPLOYMENTS, VIRTUAL_SERVICES, KubeApi
from controller.routers.gatewayapi_build import HTTPROUTES
from e2e.sandbox.stack import query_prometheus


@dataclass(frozen=True)
class MetricPoint:
    """One comparison metric's evidence at one moment (``status.evidence.metrics[]``)."""

    p_value: float | None
    log_e_value: float | None
    outcome: str


@dataclass(frozen=True)
class Sample:
    """What the API said at ``t`` (seconds since the sampler started)."""

    t: float
    phase: str
    status_weight: int
    mesh_weight: int | None
    message: str
    evidence: Mapping[str, MetricPoint]
    primary_template: str
    revision: str


def template_digest(deployment: Mapping[str, Any] | None) -> str:
    """A digest of a Deployment's pod template ("" when there is no Deployment)."""
    if deployment is None:
        return ""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:12]


def mesh_weight(virtual_service: Mapping[str, Any] | None, canary_host: str) -> int | None:
    """The largest weight any route of the VirtualService gives ``canary_host`` (None before it exists)."""
    if virtual_service is None:
        return None
    weights = [
        int(destination.get("weight") or 0)
        for route in (virtual_service.get("spec") or {}).get("http") or ()
        for destination in route.get("route") or ()
        if (destination.get("destination") or {}).get("host") == canary_host
    ]
    return max(weights, default=0)


def http_route_weight(route: Mapping[str, Any] | None, canary: str) -> int | None:
    """The largest share (in %) any rule of the HTTPRoute gives the Service ``canary`` (None before it exists).
    Gateway API weights are relative (default 1), so a share is the weight over its rule's total."""
    if route is None:
        return None
    shares = []
    for rule in (route.get("spec") or {}).get("rules") or ():
        refs = rule.get("backendRefs") or ()
        total = sum(int(ref.get("weight", 1)) for ref in refs)
        for ref in refs:
            if ref.get("name") == canary and total > 0:
                shares.append(round(100 * int(ref.get("weight", 1)) / total))
    return max(shares, default=0)


def evidence_points(evidence: Mapping[str, Any] | None) -> dict[str, MetricPoint]:
    points: dict[str, MetricPoint] = {}
    for metric in (evidence or {}).get("metrics") or ():
        if metric.get("pValue") is None and metric.get("logEValue") is None:
            continue
        points[str(metric.get("metric"))] = MetricPoint(
            metric.get("pValue"), metric.get("logEValue"), str(metric.get("outcome", ""))
        )
    return points


@dataclass
class Sampler:
    """Samples the rollout of ``name`` every ``period_s`` on a daemon thread until :meth:`stop`; ``provider``
    (``istio`` or ``gatewayapi``) says which routing object carries the mesh weight."""

    api: KubeApi
    namespace: str
    name: str
    period_s: float = 0.5
    provider: str = "istio"
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def now(self) -> float:
        return time.monotonic() - self.started

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sandbox-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def sample(self) -> Sample:
        """Read once (the Canary first: the weight it reports can only be older than the mesh's)."""
        canary = self.api.get(CANARIES, self.namespace, self.name) or {}
        canary_host = f"{self.name}-canary"
        if self.provider == "gatewayapi":
            weight = http_route_weight(self.api.get(HTTPROUTES, self.namespace, self.name), canary_host)
        else:
            weight = mesh_weight(self.api.get(VIRTUAL_SERVICES, self.namespace, self.name), canary_host)
        primary = self.api.get(DEPLOYMENTS, self.namespace, f"{self.name}-primary")
        status = canary.get("status") or {}
        return Sample(
            t=self.now(),
            phase=str(status.get("phase") or ""),
            status_weight=int(status.get("canaryWeight") or 0),
            mesh_weight=weight,
            message=str(status.get("message") or ""),
            evidence=evidence_points(status.get("evidence")),
            primary_template=template_digest(primary),
            revision=str(status.get("lastAppliedSpec") or ""),
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.sample())
            except Exception:
                self.errors += 1
            self._stop.wait(self.period_s)


def error_rates(prometheus_url: str, namespace: str, start: float, end: float) -> dict[str, list[tuple[float, float]]]:
    """Each workload's 5xx ratio over a 10 s window, every second from ``start`` to ``end`` (epoch seconds)."""
    selector = f'reporter="destination",destination_workload_namespace="{namespace}"'
    total = f"sum by (destination_workload) (rate(istio_requests_total{{{selector}}}[10s]))"
    failed = f'sum by (destination_workload) (rate(istio_requests_total{{{selector},response_code=~"5.."}}[10s]))'
    query = f"({failed} or {total} * 0) / {total}"  # "or": an arm without a single 5xx has no series of its own
    params = {"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1s"}
    series: dict[str, list[tuple[float, float]]] = {}
    with contextlib.suppress(OSError, RuntimeError, ValueError, KeyError):
        for result in query_prometheus(prometheus_url, "/api/v1/query_range", params, timeout_s=20)["result"]:
            workload = str(result["metric"].get("destination_workload", "?"))
            series[workload] = [(float(t), float(v)) for t, v in result["values"] if v not in ("NaN", "+Inf")]
    return series
