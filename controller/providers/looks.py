"""One look's observations from a metric provider: the bridge from PromQL answers to :class:`analysis.samples.Look`.

A look is a window ``(start, end]`` ending at an analysis tick. Threshold and compared metrics are evaluated at
``end``. The comparison counts difference each series' cumulative counter between the look's two boundaries
(:mod:`controller.providers.counting`: resets, new and vanished pods handled, read ``SETTLE_S`` in the past), so
consecutive looks share a boundary and never count a request twice or lose one, whatever the scrape interval; a
past window replayed by ``coalmine judge`` is read the same way as the live one the operator reads.

Failures are recorded, not raised: a threshold metric's error goes to its ``ThresholdValue.error``, a compared
metric's to ``ArmValues.error``, the comparison counts' to ``Look.counts_error``. One bad MetricTemplate therefore
never hides the others, and the judge decides what an error means (Flagger: a failed check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from analysis.samples import ArmCounts, ArmValues, Look, ThresholdValue
from controller.providers import MetricProvider, ProviderError, QueryResult
from controller.providers.counting import BASELINE_LOOKBACK_S, Series, boundaries, counts_by
from controller.providers.queries import (
    ISTIO_DURATION_BUCKETS_MS,
    PRIMARY_SUFFIX,
    BuiltinMetric,
    baseline_query,
    is_infinite_le,
    slow_bucket,
    window_query,
)
from controller.providers.querysets import CANARY, PRIMARY, Arms, QuerySetName, query_set

ThresholdQuery = str | BuiltinMetric


@dataclass(frozen=True)
class LookRequest:
    """What to read for one look.

    ``thresholds``: metric name → a rendered PromQL query (MetricTemplate or inline) or a :class:`BuiltinMetric`.
    ``compared``: metric name → (canary query, primary query), the template rendered once per arm.
    ``counts``: fetch per-arm requests and 5xx for the comparison; ``slow_threshold_ms`` (needs ``counts``): also
    the per-arm count of requests slower than the histogram bucket :func:`slow_bucket` picks for it.
    ``query_set`` names the data plane's metrics (:mod:`controller.providers.querysets`); ``service`` is the apex
    Service (default: the target's name), which the ``envoy`` set's cluster names use.
    """

    namespace: str
    target: str
    start: float
    end: float
    thresholds: Mapping[str, ThresholdQuery] = field(default_factory=dict)
    compared: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    counts: bool = False
    slow_threshold_ms: float | None = None
    buckets_ms: tuple[float, ...] = ISTIO_DURATION_BUCKETS_MS
    query_set: QuerySetName = QuerySetName.ISTIO
    service: str = ""

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"a look window must end after it starts ({self.start} .. {self.end})")
        if self.slow_threshold_ms is not None and not self.counts:
            raise ValueError("slow request counts need the request counts: set counts=True")

    @property
    def window_s(self) -> float:
        return self.end - self.start

    @property
    def primary_workload(self) -> str:
        return self.target + PRIMARY_SUFFIX

    @property
    def arms(self) -> Arms:
        return Arms(self.namespace, self.target, self.service or self.target)


def tick_windows(start: float, end: float, step_s: float) -> Iterator[tuple[float, float]]:
    """Consecutive disjoint windows ``(start, start+step], …`` up to ``end`` — the looks of a backtest.

    A trailing partial window is dropped: a live look always covers a whole interval, and a shorter one would have
    a different power than the looks around it.
    """
    if step_s <= 0:
        raise ValueError(f"the step must be positive, got {step_s} s")
    index = 1
    while start + index * step_s <= end + 1e-9:
        yield start + (index - 1) * step_s, start + index * step_s
        index += 1


def _threshold(provider: MetricProvider, request: LookRequest, query: ThresholdQuery) -> ThresholdValue:
    try:
        if isinstance(query, BuiltinMetric):
            query = query_set(request.query_set).builtin(query.name, request.arms, query.interval_s)
        result = provider.run_query(query, at=request.end)
    except (ProviderError, ValueError) as exc:
        return ThresholdValue(error=str(exc))
    return ThresholdValue(value=result.value)


def _compared(provider: MetricProvider, request: LookRequest, queries: tuple[str, str]) -> ArmValues:
    results: list[QueryResult] = []
    errors: list[str] = []
    for arm, query in zip(("canary", "primary"), queries, strict=True):
        try:
            results.append(provider.run_query(query, at=request.end))
        except ProviderError as exc:
            errors.append(f"{arm}: {exc}")
    if errors:
        return ArmValues(error="; ".join(errors))
    return ArmValues(canary=results[0].value, primary=results[1].value)


def _arm(values: Mapping[str, float], workload: str) -> float:
    """An arm's count; absent means no such series in the window, i.e. zero."""
    return max(0.0, values.get(workload, 0.0))


def _read(provider: MetricProvider, selector: str, request: LookRequest) -> tuple[list[Series], list[Series]]:
    """A signal's baseline series (at the look's start) and window samples (up to its end), see ``counting``."""
    start, end = boundaries(request.start, request.end)
    baseline = provider.run_series(baseline_query(selector, BASELINE_LOOKBACK_S), at=start)
    window = provider.run_series(window_query(selector, request.window_s), at=end)
    return baseline, window


def _counts(provider: MetricProvider, request: LookRequest) -> tuple[ArmCounts, ArmCounts]:
    """Per-arm counts, all or nothing: a partial set (say, requests without slow counts) raises."""
    queries, arms = query_set(request.query_set), request.arms

    def arm(labels: Mapping[str, str]) -> str | None:
        return queries.arm(labels, arms)

    def server_error(labels: Mapping[str, str]) -> str | None:
        return queries.arm(labels, arms) if queries.is_server_error(labels) else None

    selector = queries.requests_selector(arms)
    baseline, window = _read(provider, selector, request)
    requests = counts_by(baseline, window, arm)
    errors = counts_by(baseline, window, server_error)
    slow: Mapping[str, float] = {}
    if request.slow_threshold_ms is not None:
        boundary = slow_bucket(request.slow_threshold_ms, request.buckets_ms)
        selector = queries.slow_buckets_selector(arms, request.slow_threshold_ms)
        baseline, window = _read(provider, selector, request)

        def bucket(infinite: bool) -> Callable[[Mapping[str, str]], str | None]:
            return lambda labels: arm(labels) if is_infinite_le(labels.get("le", "")) == infinite else None

        total, fast = counts_by(baseline, window, bucket(True)), counts_by(baseline, window, bucket(False))
        names = {CANARY: request.target, PRIMARY: request.primary_workload}
        for which in (CANARY, PRIMARY):
            if _arm(requests, which) > 0 and which not in fast:
                raise ProviderError(
                    f"no {queries.buckets_metric} with le={boundary:g} for the {which} arm ({names[which]!r}) "
                    "although it served requests (custom histogram buckets?)",
                    selector,
                )
        slow = {which: total.get(which, 0.0) - fast.get(which, 0.0) for which in fast}
    canary = ArmCounts(requests=_arm(requests, CANARY), errors=_arm(errors, CANARY), slow=_arm(slow, CANARY))
    primary = ArmCounts(requests=_arm(requests, PRIMARY), errors=_arm(errors, PRIMARY), slow=_arm(slow, PRIMARY))
    return canary, primary


def collect_look(provider: MetricProvider, request: LookRequest) -> Look:
    """Read one look: at most one query per threshold metric, one per arm per compared metric, and two (baseline
    and window) per counter the comparison reads — requests and 5xx together, slow buckets — for both arms
    together. Never raises for a provider failure."""
    thresholds = {name: _threshold(provider, request, query) for name, query in request.thresholds.items()}
    compared = {name: _compared(provider, request, queries) for name, queries in request.compared.items()}
    canary, primary, counts_error = ArmCounts(), ArmCounts(), None
    if request.counts:
        try:
            canary, primary = _counts(provider, request)
        except (ProviderError, ValueError) as exc:
            counts_error = str(exc)
    return Look(
        start=request.start,
        end=request.end,
        canary=canary,
        primary=primary,
        counts_error=counts_error,
        thresholds=thresholds,
        compared=compared,
    )
