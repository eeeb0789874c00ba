"""Query sets: which Prometheus metrics the built-in checks and the judge's per-arm counts read, per data plane.

The judge needs three counts per arm and look — requests, 5xx responses, requests slower than a bucket — and the
built-in checks (``request-success-rate``, ``request-duration``) need the canary's rate and p99. Where those come
from depends on who proxies the traffic:

- ``istio`` — Istio's standard metrics (``istio_requests_total``, ``istio_request_duration_milliseconds_bucket``),
  reported by the destination sidecar; an arm is a ``destination_workload`` (``<target>`` or ``<target>-primary``).
  Istio's sidecars and Istio's Gateway API implementation both report them.
- ``envoy`` — Envoy's upstream cluster statistics (``envoy_cluster_upstream_rq`` with ``envoy_response_code``,
  ``envoy_cluster_upstream_rq_time_bucket``), as Contour (and Flagger's contour/gloo observers) exports them: one
  cluster per backend Service and port, ``envoy_cluster_name="<namespace>_<service>_<port>"``; an arm is the
  ``<service>-canary`` or ``<service>-primary`` cluster. (Envoy Gateway merges the backends of one route rule into
  one cluster, so its statistics cannot tell the arms apart: with it, use the Istio set if Istio runs the data
  plane, or MetricTemplates.)

Pure string building and label classification, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from controller.providers.queries import (
    ISTIO_DURATION_BUCKETS_MS,
    PRIMARY_SUFFIX,
    WORKLOAD_LABEL,
    BuiltinName,
    _le_spellings,
    _regex_escape,
    _string,
    builtin_query,
    prom_duration,
    requests_selector,
    slow_bucket,
    slow_buckets_selector,
)

ENVOY_CLUSTER_LABEL = "envoy_cluster_name"
ENVOY_CODE_LABEL = "envoy_response_code"
ENVOY_REQUESTS_METRIC = "envoy_cluster_upstream_rq"
ENVOY_BUCKETS_METRIC = "envoy_cluster_upstream_rq_time_bucket"
#: Envoy's default histogram buckets (ms) — the same boundaries Istio's metric inherits from Envoy.
ENVOY_DURATION_BUCKETS_MS = ISTIO_DURATION_BUCKETS_MS

CANARY, PRIMARY = "canary", "primary"


class QuerySetName(StrEnum):
    """``spec.analysis.querySet``."""

    ISTIO = "istio"
    ENVOY = "envoy"


@dataclass(frozen=True)
class Arms:
    """Who the look is about: the namespace, the target workload and the apex Service (its arms' Services are
    ``<service>-canary`` and ``<service>-primary``)."""

    namespace: str
    target: str
    service: str


@dataclass(frozen=True)
class QuerySet:
    """One data plane's metric names and how a series' labels say which arm it belongs to."""

    name: QuerySetName
    buckets_metric: str
    buckets_ms: tuple[float, ...]

    def requests_selector(self, arms: Arms) -> str:
        """Every request-counter series of both arms (all codes: 5xx are told apart from the labels)."""
        if self.name is QuerySetName.ISTIO:
            return requests_selector(arms.namespace, arms.target)
        return ENVOY_REQUESTS_METRIC + _envoy_selector(arms)

    def slow_buckets_selector(self, arms: Arms, threshold_ms: float) -> str:
        """The ``le="+Inf"`` and ``le=T`` buckets of both arms, ``T`` the slow bucket of the threshold."""
        if self.name is QuerySetName.ISTIO:
            return slow_buckets_selector(arms.namespace, arms.target, threshold_ms, self.buckets_ms)
        boundary = slow_bucket(threshold_ms, self.buckets_ms)
        le = "|".join(_regex_escape(spelling) for spelling in ["+Inf", *_le_spellings(boundary)])
        return ENVOY_BUCKETS_METRIC + _envoy_selector(arms, f"le=~{_string(le)}")

    def arm(self, labels: Mapping[str, str], arms: Arms) -> str | None:
        """``canary``, ``primary`` or None (a series of neither arm)."""
        if self.name is QuerySetName.ISTIO:
            workload = labels.get(WORKLOAD_LABEL)
            if workload == arms.target:
                return CANARY
            return PRIMARY if workload == arms.target + PRIMARY_SUFFIX else None
        cluster = labels.get(ENVOY_CLUSTER_LABEL, "")
        for arm in (CANARY, PRIMARY):
            prefix = f"{arms.namespace}_{arms.service}-{arm}_"
            if cluster.startswith(prefix) and cluster[len(prefix) :]:
                return arm
        return None

    def is_server_error(self, labels: Mapping[str, str]) -> bool:
        """Flagger's ``=~"5.*"`` on the response-code label."""
        code = ENVOY_CODE_LABEL if self.name is QuerySetName.ENVOY else "response_code"
        return labels.get(code, "").startswith("5")

    def builtin(self, metric: BuiltinName | str, arms: Arms, interval_s: float) -> str:
        """Flagger's built-in check for the canary arm (success rate in percent, p99 in ms)."""
        if self.name is QuerySetName.ISTIO:
            return builtin_query(metric, arms.namespace, arms.target, interval_s)
        name = BuiltinName(metric)
        window = prom_duration(interval_s)
        canary = _envoy_canary_selector(arms)
        if name is BuiltinName.REQUEST_SUCCESS_RATE:
            ok = _envoy_canary_selector(arms, f'{ENVOY_CODE_LABEL}!~"5.*"')
            return (
                f"sum(rate({ENVOY_REQUESTS_METRIC}{ok}[{window}])) / "
                f"sum(rate({ENVOY_REQUESTS_METRIC}{canary}[{window}])) * 100"
            )
        return f"histogram_quantile(0.99, sum(rate({ENVOY_BUCKETS_METRIC}{canary}[{window}])) by (le))"


def _cluster_regex(arms: Arms, which: str) -> str:
    return f"{_regex_escape(arms.namespace)}_{_regex_escape(arms.service)}-{which}_[0-9a-zA-Z-]+"


def _envoy_selector(arms: Arms, extra: str = "") -> str:
    matchers = [f"{ENVOY_CLUSTER_LABEL}=~{_string(_cluster_regex(arms, '(canary|primary)'))}"]
    if extra:
        matchers.append(extra)
    return "{" + ", ".join(matchers) + "}"


def _envoy_canary_selector(arms: Arms, extra: str = "") -> str:
    matchers = [f"{ENVOY_CLUSTER_LABEL}=~{_string(_cluster_regex(arms, 'canary'))}"]
    if extra:
        matchers.append(extra)
    return "{" + ", ".join(matchers) + "}"


QUERY_SETS: Mapping[QuerySetName, QuerySet] = {
    QuerySetName.ISTIO: QuerySet(
        QuerySetName.ISTIO, "istio_request_duration_milliseconds_bucket", ISTIO_DURATION_BUCKETS_MS
    ),
    QuerySetName.ENVOY: QuerySet(QuerySetName.ENVOY, ENVOY_BUCKETS_METRIC, ENVOY_DURATION_BUCKETS_MS),
}


def query_set(name: str) -> QuerySet:
    """The query set called ``name`` (ValueError naming the known ones otherwise)."""
    try:
        return QUERY_SETS[QuerySetName(name)]
    except ValueError:
        known = ", ".join(item.value for item in QuerySetName)
        raise ValueError(f"unknown query set {name!r}; known: {known}") from None


__all__ = ["CANARY", "PRIMARY", "QUERY_SETS", "Arms", "QuerySet", "QuerySetName", "query_set"]
