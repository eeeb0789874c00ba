"""The operator's own Prometheus metrics: what Flagger users already chart and alert on, under ``coalmine_``.

Flagger's names (``flagger_canary_status``, ``flagger_canary_weight``, …) keep their meaning and labels so existing
dashboards and alerts port by renaming the prefix; Coalmine adds the judge's evidence (e-value and always-valid
p-value per metric), the failed and no-data check counts, and tick/reconcile latency histograms.

Everything per rollout is derived from the object's ``.status`` dict, the same record the operator writes, so the
metrics cannot disagree with ``kubectl get canaries``. Labels never carry revision hashes or other values that grow
without bound: one series set per (kind, namespace, name), removed again by :meth:`OperatorMetrics.forget`.

The metrics live on their own :class:`~prometheus_client.CollectorRegistry` (not the process-global default), so
two operators in one test process, or a library importing this module, never collide on registration.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

__all__ = ["MetricsEndpoint", "OperatorMetrics", "StatusCode", "status_code"]

FAILED_PHASES = frozenset({"Failed"})
STEADY_PHASES = frozenset({"Initialized", "Succeeded", "Terminated"})
ROLLOUT_PHASES = frozenset({"Waiting", "Progressing", "WaitingPromotion", "Promoting", "Finalising"})
"""Phases in which a revision is being rolled out: a rollout's duration runs from entering one to its end."""

# Rollouts take minutes to hours; ticks and reconciles milliseconds to seconds.
_ROLLOUT_BUCKETS = (60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
_LOOP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_MAX_LOG_E = 700.0  # exp(700) is still a finite float; an e-value that large is "overwhelming" either way


class StatusCode:
    """Values of ``coalmine_canary_status``, Flagger's encoding (alert on ``coalmine_canary_status > 1``)."""

    PROGRESSING = 0
    SUCCEEDED = 1
    FAILED = 2


def status_code(phase: str) -> int:
    """Flagger's 0/1/2 for a phase: failed is 2, steady (nothing in flight) is 1, anything in flight is 0.

    Flagger reports 0 only for ``Progressing``; Coalmine reports 0 for every phase with work in flight (waiting at a
    gate, promoting, …), so ``== 0`` reliably means "busy" and ``== 2`` "needs attention", as Flagger's alerts use it.
    """
    if phase in FAILED_PHASES:
        return StatusCode.FAILED
    if phase in STEADY_PHASES:
        return StatusCode.SUCCEEDED
    return StatusCode.PROGRESSING


def _version() -> str:
    try:
        return metadata.version("coalmine")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


@dataclass(frozen=True)
class _Seen:
    """What the metrics remember about one rollout object between observations (never persisted)."""

    phase: str
    workload: str
    started: float | None  # clock() when the current rollout began, if we saw it begin
    analysed: frozenset[str] = frozenset()  # metric labels set on coalmine_canary_metric_analysis
    judged: frozenset[str] = frozenset()  # metric labels set on the evidence gauges
    observed: tuple[Any, ...] = ()  # the status fields the series were last set from (see observe_status)


@dataclass(frozen=True)
class MetricsEndpoint:
    """A running ``/metrics`` HTTP endpoint; :meth:`close` stops it and frees the port."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _float(raw: Any) -> float | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _evidence_rows(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    evidence = status.get("evidence") or {}
    rows = evidence.get("metrics") if isinstance(evidence, Mapping) else None
    return [row for row in rows or () if isinstance(row, Mapping) and row.get("metric")]


class OperatorMetrics:
    """The operator's metrics. Thread-safe: kopf runs sync handlers in threads and they all report here.

    The operator calls :meth:`observe_status` after every status write (or read, on resume), :meth:`forget` when a
    Canary or BlueGreen is deleted, :meth:`observe_tick` / :meth:`observe_reconcile` with handler latencies, and
    :meth:`notification_failed` when an alert could not be delivered. ``clock`` is injectable for tests.
    """

    def __init__(self, version: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        r = self.registry
        obj = ("name", "namespace", "kind")
        self.info = Gauge("coalmine_info", "Coalmine version (always 1).", ["version"], registry=r)
        self.canary_total = Gauge(
            "coalmine_canary_total", "Canaries and BlueGreens the operator tracks.", ["namespace"], registry=r
        )
        self.canary_status = Gauge(
            "coalmine_canary_status", "Rollout status: 0 progressing, 1 succeeded/steady, 2 failed.", obj, registry=r
        )
        self.canary_phase = Gauge(
            "coalmine_canary_phase",
            "1 for the object's current phase (one series per object).",
            [*obj, "phase"],
            registry=r,
        )
        self.canary_weight = Gauge(
            "coalmine_canary_weight",
            "Traffic weight (percent): <target> is the canary, <target>-primary the primary.",
            ["workload", "namespace"],
            registry=r,
        )
        self.failed_checks = Gauge(
            "coalmine_canary_failed_checks",
            "Failed checks of the current rollout (status.failedChecks).",
            obj,
            registry=r,
        )
        self.no_data_checks = Gauge(
            "coalmine_canary_no_data_checks",
            "Checks without data in the current rollout (status.noDataChecks).",
            obj,
            registry=r,
        )
        self.metric_analysis = Gauge(
            "coalmine_canary_metric_analysis",
            "Last value of each threshold metric the analysis looked at.",
            ["name", "namespace", "metric"],
            registry=r,
        )
        self.e_value = Gauge(
            "coalmine_canary_evidence_e_value",
            "The judge's e-value against 'no regression' per compared metric (reject at 1/alpha).",
            [*obj, "metric"],
            registry=r,
        )
        self.p_value = Gauge(
            "coalmine_canary_evidence_p_value",
            "The judge's always-valid p-value per compared metric (reject at alpha).",
            [*obj, "metric"],
            registry=r,
        )
        self.duration = Histogram(
            "coalmine_canary_duration_seconds",
            "Duration of a whole rollout, from the first analysis phase to Succeeded or Failed.",
            ["namespace", "kind", "outcome"],
            buckets=_ROLLOUT_BUCKETS,
            registry=r,
        )
        self.successes = Counter("coalmine_canary_successes", "Rollouts that ended Succeeded.", obj, registry=r)
        self.failures = Counter("coalmine_canary_failures", "Rollouts that ended Failed.", obj, registry=r)
        self.tick = Histogram(
            "coalmine_tick_duration_seconds", "Duration of one analysis tick.", buckets=_LOOP_BUCKETS, registry=r
        )
        self.reconcile = Histogram(
            "coalmine_reconcile_duration_seconds",
            "Duration of one reconcile (create/update/resume/delete handler).",
            ["kind"],
            buckets=_LOOP_BUCKETS,
            registry=r,
        )
        self.notifications_failed = Counter(
            "coalmine_notifications_failed", "Notifications that could not be delivered.", ["provider"], registry=r
        )
        self.info.labels(version=version or _version()).set(1)

    # -- what the operator calls -----------------------------------------------------------------------------

    def observe_status(
        self, kind: str, name: str, namespace: str, status: Mapping[str, Any] | None, *, workload: str | None = None
    ) -> None:
        """Update every per-object series from ``status`` (the dict stored as ``.status``).

        ``workload`` is the target Deployment's name (Flagger's ``workload`` label); it defaults to ``name``.
        Successes, failures and the rollout duration count only transitions this process saw happen, so a restarted
        operator that reads an old ``Failed`` status does not count that failure again.
        """
        status = status or {}
        phase = str(status.get("phase") or "Initializing")
        key = (kind, namespace, name)
        labels = {"name": name, "namespace": namespace, "kind": kind}
        evidence = status.get("evidence")
        observed = (
            phase,
            workload or name,
            status.get("canaryWeight"),
            status.get("failedChecks"),
            status.get("noDataChecks"),
            evidence.get("metrics") if isinstance(evidence, Mapping) else None,
        )
        with self._lock:
            before = self._seen.get(key)
            if before is not None and before.observed == observed:
                return  # most ticks change none of it: every series already says this
            seen = self._transition(before, phase, workload or name, labels)
            self.canary_status.labels(**labels).set(status_code(phase))
            if before is not None and before.phase != phase:
                self.canary_phase.remove(name, namespace, kind, before.phase)
            self.canary_phase.labels(**labels, phase=phase).set(1)
            if before is not None and before.workload != seen.workload:
                self._remove_weights(before.workload, namespace)
            canary_weight = _float(status.get("canaryWeight")) or 0.0
            self.canary_weight.labels(workload=seen.workload, namespace=namespace).set(canary_weight)
            self.canary_weight.labels(workload=f"{seen.workload}-primary", namespace=namespace).set(
                100.0 - canary_weight
            )
            self.failed_checks.labels(**labels).set(_float(status.get("failedChecks")) or 0.0)
            self.no_data_checks.labels(**labels).set(_float(status.get("noDataChecks")) or 0.0)
            seen = self._observe_evidence(seen, labels, _evidence_rows(status))
            self._seen[key] = replace(seen, observed=observed)
            if before is None:
                self._count_namespace(namespace)

    def forget(self, kind: str, name: str, namespace: str) -> None:
        """Drop every series of a deleted object so dashboards stop showing it."""
        key = (kind, namespace, name)
        with self._lock:
            seen = self._seen.pop(key, None)
            if seen is None:
                return
            for gauge in (self.canary_status, self.failed_checks, self.no_data_checks):
                gauge.remove(name, namespace, kind)
            for counter in (self.successes, self.failures):
                _remove_quietly(counter, name, namespace, kind)
            self.canary_phase.remove(name, namespace, kind, seen.phase)
            self._remove_weights(seen.workload, namespace)
            for metric in seen.analysed:
                self.metric_analysis.remove(name, namespace, metric)
            for metric in seen.judged:
                self.e_value.remove(name, namespace, kind, metric)
                self.p_value.remove(name, namespace, kind, metric)
            self._count_namespace(namespace)

    def observe_tick(self, seconds: float) -> None:
        """Record how long one analysis tick took (gather, decide, act)."""
        self.tick.observe(seconds)

    def observe_reconcile(self, seconds: float, kind: str = "Canary") -> None:
        """Record how long one create/update/resume/delete handler took."""
        self.reconcile.labels(kind=kind).observe(seconds)

    def notification_failed(self, provider: str) -> None:
        """Count a notification that could not be delivered; ``provider`` is the type (slack, msteams, …)."""
        self.notifications_failed.labels(provider=provider).inc()

    def serve(self, port: int, addr: str = "0.0.0.0") -> MetricsEndpoint:
        """Start the ``/metrics`` endpoint in a daemon thread; port 0 picks a free one (see ``.port``)."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        return MetricsEndpoint(server, thread)

    def render(self) -> str:
        """The exposition text a scrape would return (for ``coalmine`` subcommands and tests)."""
        return generate_latest(self.registry).decode()

    # -- internals -------------------------------------------------------------------------------------------

    def _transition(self, before: _Seen | None, phase: str, workload: str, labels: Mapping[str, str]) -> _Seen:
        """Count an ended rollout and track when the current one began; only transitions we saw count."""
        now = self._clock()
        if before is None:
            return _Seen(phase=phase, workload=workload, started=None)
        started = before.started
        if phase != before.phase:
            if phase in ROLLOUT_PHASES and before.phase not in ROLLOUT_PHASES:
                started = now
            elif phase in ("Succeeded", "Failed"):
                outcome = "succeeded" if phase == "Succeeded" else "failed"
                (self.successes if phase == "Succeeded" else self.failures).labels(**labels).inc()
                if started is not None:
                    self.duration.labels(namespace=labels["namespace"], kind=labels["kind"], outcome=outcome).observe(
                        max(0.0, now - started)
                    )
                started = None
            elif phase not in ROLLOUT_PHASES:
                started = None
        return replace(before, phase=phase, workload=workload, started=started)

    def _observe_evidence(self, seen: _Seen, labels: Mapping[str, str], rows: Iterable[Mapping[str, Any]]) -> _Seen:
        name, namespace, kind = labels["name"], labels["namespace"], labels["kind"]
        analysed: set[str] = set()
        judged: set[str] = set()
        for row in rows:
            metric = str(row["metric"])
            value = _float(row.get("value"))
            if value is not None:
                self.metric_analysis.labels(name=name, namespace=namespace, metric=metric).set(value)
                analysed.add(metric)
            log_e = _float(row.get("logEValue"))
            p_value = _float(row.get("pValue"))
            if log_e is not None or p_value is not None:
                judged.add(metric)
                e_value = math.exp(min(log_e, _MAX_LOG_E)) if log_e is not None else math.nan
                self.e_value.labels(**labels, metric=metric).set(e_value)
                self.p_value.labels(**labels, metric=metric).set(math.nan if p_value is None else p_value)
        for metric in seen.analysed - analysed:
            self.metric_analysis.remove(name, namespace, metric)
        for metric in seen.judged - judged:
            self.e_value.remove(name, namespace, kind, metric)
            self.p_value.remove(name, namespace, kind, metric)
        return replace(seen, analysed=frozenset(analysed), judged=frozenset(judged))

    def _remove_weights(self, workload: str, namespace: str) -> None:
        self.canary_weight.remove(workload, namespace)
        self.canary_weight.remove(f"{workload}-primary", namespace)

    def _count_namespace(self, namespace: str) -> None:
        count = sum(1 for (_, ns, _) in self._seen if ns == namespace)
        self.canary_total.labels(namespace=namespace).set(count)


def _remove_quietly(counter: Counter, *labels: str) -> None:
    """Remove a counter's child if it was ever created (counters only exist after their first increment)."""
    with contextlib.suppress(KeyError):
        counter.remove(*labels)
