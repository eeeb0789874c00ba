"""Batched looks, as pure data: the queries every Canary of a namespace can share.

Flagger sends one query per metric per Canary per interval. Coalmine's operator plans the looks of a namespace so
that they ask *the same* queries, which :class:`~controller.providers.shared.SharedAnswers` then sends once:

- **Namespace-wide selectors.** The comparison counts read every request counter of the namespace
  (``istio_requests_total{reporter="destination", destination_workload_namespace="shop"}``) and each look keeps its
  own arms' series (``QuerySet.arm``); the built-in checks ask ``sum by (destination_workload) (…)`` for the whole
  namespace and each look takes its own workload's value.
- **Boundaries on a shared grid.** A look's count boundaries (``SETTLE_S`` behind its window, see
  :mod:`~controller.providers.counting`) are rounded down to a multiple of the grid, and the built-in checks are
  evaluated at the grid point at or before the look's end. Looks whose ticks fall in the same grid step (the
  operator's tick, 2 s by default) therefore ask at the same instants. Consecutive looks still share their
  boundary (both round the same instant), so no request is counted twice or lost; a look only sees its data up to
  one grid step later. The grid is never longer than the analysis interval, so a look (at least an interval long)
  always spans at least one step.

So Prometheus' load grows with namespaces and grid steps, not with Canaries (``bench/scale.py`` counts it).
MetricTemplates and inline queries are the user's own PromQL: they are sent per Canary, as before.
"""

from __future__ import annotations

import math

from controller.providers.counting import SETTLE_S
from controller.providers.queries import (
    BUCKETS_METRIC,
    REQUESTS_METRIC,
    WORKLOAD_LABEL,
    BuiltinName,
    le_matcher,
    prom_duration,
    promql_string,
    regex_escape,
)
from controller.providers.querysets import ENVOY_BUCKETS_METRIC, ENVOY_CLUSTER_LABEL, ENVOY_REQUESTS_METRIC, QuerySet
from controller.providers.querysets import QuerySetName as Name

BATCHED_BUILTINS_LABEL = WORKLOAD_LABEL
"""The label a batched built-in check's answer is split by (Istio's query set)."""


def on_grid(instant: float, grid_s: float) -> float:
    """The grid point at or before ``instant``."""
    return math.floor(instant / grid_s + 1e-9) * grid_s


def grid_for(grid_s: float, interval_s: float) -> float:
    """The grid a Canary's looks use: the operator's, never longer than its analysis interval."""
    return min(grid_s, interval_s)


def aligned_boundaries(start: float, end: float, grid_s: float, settle_s: float = SETTLE_S) -> tuple[float, float]:
    """The instants a batched look over ``(start, end]`` reads its counters at (``end - start >= grid_s``)."""
    return on_grid(start - settle_s, grid_s), on_grid(end - settle_s, grid_s)


def _istio_namespace(namespace: str, extra: str = "") -> str:
    matchers = ['reporter="destination"', f"destination_workload_namespace={promql_string(namespace)}"]
    if extra:
        matchers.append(extra)
    return "{" + ", ".join(matchers) + "}"


def _envoy_namespace(namespace: str, extra: str = "") -> str:
    cluster = regex_escape(namespace) + "_.+-(canary|primary)_[0-9a-zA-Z-]+"
    matchers = [f"{ENVOY_CLUSTER_LABEL}=~{promql_string(cluster)}"]
    if extra:
        matchers.append(extra)
    return "{" + ", ".join(matchers) + "}"


def namespace_requests_selector(queries: QuerySet, namespace: str) -> str:
    """Every request counter of the namespace's arms (all workloads, all codes)."""
    if queries.name is Name.ISTIO:
        return REQUESTS_METRIC + _istio_namespace(namespace)
    return ENVOY_REQUESTS_METRIC + _envoy_namespace(namespace)


def namespace_slow_selector(queries: QuerySet, namespace: str, threshold_ms: float) -> str:
    """The ``le="+Inf"`` and slow buckets of every workload of the namespace (ValueError for a bad threshold)."""
    le = le_matcher(threshold_ms, queries.buckets_ms)
    if queries.name is Name.ISTIO:
        return BUCKETS_METRIC + _istio_namespace(namespace, le)
    return ENVOY_BUCKETS_METRIC + _envoy_namespace(namespace, le)


def namespace_builtin(queries: QuerySet, metric: BuiltinName | str, namespace: str, interval_s: float) -> str | None:
    """Flagger's built-in check for every workload of the namespace at once (``sum by (destination_workload)``), or
    None where the data plane's labels cannot be split by workload (the Envoy set: per-Canary queries)."""
    if queries.name is not Name.ISTIO:
        return None
    name = BuiltinName(metric)
    window = prom_duration(interval_s)
    by = f"sum by ({WORKLOAD_LABEL})"
    if name is BuiltinName.REQUEST_SUCCESS_RATE:
        ok = _istio_namespace(namespace, 'response_code!~"5.*"')
        total = _istio_namespace(namespace)
        return f"{by} (rate({REQUESTS_METRIC}{ok}[{window}])) / {by} (rate({REQUESTS_METRIC}{total}[{window}])) * 100"
    selector = _istio_namespace(namespace)
    return f"histogram_quantile(0.99, sum by (le, {WORKLOAD_LABEL}) (rate({BUCKETS_METRIC}{selector}[{window}])))"
