"""A look as pure data: which queries it needs (:func:`plan_look`) and what their answers make (:func:`assemble`).

No I/O and no HTTP client here (an import contract checks it), so the blocking ``collect_look`` of ``coalmine judge``
and the operator's concurrent ``collect_look_async`` evaluate exactly the same queries and build exactly the same
:class:`~analysis.samples.Look`; they differ only in how they wait. :func:`render_canary_looks` is the one place a
Canary's metrics become :class:`LookRequest` s (built-ins, inline queries, MetricTemplates rendered once per arm),
for the operator (templates read from the API) and the backtest (templates read from files) alike.

A look is a window ``(start, end]`` ending at an analysis tick. Threshold and compared metrics are evaluated at
``end``. The comparison counts difference each series' cumulative counter between the look's two boundaries
(:mod:`controller.providers.counting`: resets, new and vanished pods handled, read ``SETTLE_S`` in the past), so
consecutive looks share a boundary and never count a request twice or lose one, whatever the scrape interval.

Failures are recorded, not raised: a threshold metric's error goes to its ``ThresholdValue.error``, a compared
metric's to ``ArmValues.error``, the comparison counts' to ``Look.counts_error`` (all or nothing). One bad query
therefore never hides the others, and the judge decides what an error means (Flagger: a failed check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from analysis.samples import ArmCounts, ArmValues, Look, ThresholdValue
from controller.providers.batching import (
    BATCHED_BUILTINS_LABEL,
    aligned_boundaries,
    namespace_builtin,
    namespace_requests_selector,
    namespace_slow_selector,
    on_grid,
)
from controller.providers.counting import BASELINE_LOOKBACK_S, Series, SharedSeries, boundaries, counts_by
from controller.providers.queries import (
    ISTIO_DURATION_BUCKETS_MS,
    PRIMARY_SUFFIX,
    WORKLOAD_LABEL,
    BuiltinMetric,
    baseline_query,
    compact,
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
    grid_s: float | None = None
    """Batched (the operator): namespace-wide queries on a shared grid of instants (:mod:`.batching`); None reads
    exactly this Canary's series at the look's own instants (``coalmine judge``)."""

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


# --- one look: the queries, and the Look their answers make -------------------------------------------------------


class QueryKind(StrEnum):
    """Which provider method answers a query: ``run_query``, ``run_vector`` or ``run_series``."""

    VALUE = "instant-value"
    VECTOR = "vector"
    SERIES = "series"


@dataclass(frozen=True)
class PlannedQuery:
    """One query of a look: ``key`` names its answer, ``at`` is its evaluation time, ``by`` the label of a vector."""

    key: str
    kind: QueryKind
    promql: str
    at: float
    by: str = ""


Answer = Any
"""A ``QueryResult`` (value), a label → value mapping (vector), a ``list[Series]`` (series), or the exception that
query ended with (a ``ProviderError``)."""

REQUESTS_BASELINE, REQUESTS_WINDOW = "counts/requests/baseline", "counts/requests/window"
SLOW_BASELINE, SLOW_WINDOW = "counts/slow/baseline", "counts/slow/window"
_REQUESTS, _SLOW = "counts/requests", "counts/slow"  # keys of the planning failures of the two count signals


def threshold_key(name: str) -> str:
    return f"threshold/{name}"


def compared_key(name: str, arm: str) -> str:
    return f"compared/{name}/{arm}"


@dataclass(frozen=True)
class LookPlan:
    """The queries of one look, and the keys that could not be planned (why, e.g. an unknown built-in)."""

    queries: tuple[PlannedQuery, ...]
    failed: Mapping[str, str]

    def answers(self, evaluated: Mapping[str, Answer]) -> dict[str, Answer]:
        """The evaluated answers with the planning failures as errors: what :func:`assemble` reads."""
        return {**{key: ValueError(why) for key, why in self.failed.items()}, **evaluated}


def _counter(key: str, selector: str, request: LookRequest) -> list[PlannedQuery]:
    """A signal's baseline series (at the look's start) and window samples (up to its end), see ``counting``."""
    if request.grid_s is None:
        start, end = boundaries(request.start, request.end)
    else:
        start, end = aligned_boundaries(request.start, request.end, request.grid_s)
    return [
        PlannedQuery(f"{key}/baseline", QueryKind.SERIES, baseline_query(selector, BASELINE_LOOKBACK_S), start),
        PlannedQuery(f"{key}/window", QueryKind.SERIES, window_query(selector, end - start), end),
    ]


def _requests_selector(request: LookRequest) -> str:
    queries = query_set(request.query_set)
    if request.grid_s is None:
        return queries.requests_selector(request.arms)
    return namespace_requests_selector(queries, request.namespace)


def _slow_selector(request: LookRequest, threshold_ms: float) -> str:
    queries = query_set(request.query_set)
    if request.grid_s is None:
        return queries.slow_buckets_selector(request.arms, threshold_ms)
    return namespace_slow_selector(queries, request.namespace, threshold_ms)


def _builtin(name: str, query: BuiltinMetric, request: LookRequest) -> PlannedQuery:
    """A built-in check: the namespace's ``sum by (destination_workload)`` on the grid when batched and the query
    set allows it, else this Canary's own query at the look's end."""
    queries = query_set(request.query_set)
    if request.grid_s is not None:
        batched = namespace_builtin(queries, query.name, request.namespace, query.interval_s)
        if batched is not None:
            at = on_grid(request.end, request.grid_s)
            return PlannedQuery(threshold_key(name), QueryKind.VECTOR, batched, at, by=BATCHED_BUILTINS_LABEL)
    promql = queries.builtin(query.name, request.arms, query.interval_s)
    return PlannedQuery(threshold_key(name), QueryKind.VALUE, promql, request.end)


def plan_look(request: LookRequest) -> LookPlan:
    """At most one query per threshold metric, one per arm per compared metric, and two (baseline and window) per
    counter the comparison reads — requests and 5xx together, slow buckets — for both arms together."""
    queries: list[PlannedQuery] = []
    failed: dict[str, str] = {}
    for name, query in request.thresholds.items():
        try:
            planned = (
                _builtin(name, query, request)
                if isinstance(query, BuiltinMetric)
                else PlannedQuery(threshold_key(name), QueryKind.VALUE, query, request.end)
            )
        except ValueError as exc:
            failed[threshold_key(name)] = str(exc)
            continue
        queries.append(planned)
    for name, arms in request.compared.items():
        for arm, query in zip((CANARY, PRIMARY), arms, strict=True):
            queries.append(PlannedQuery(compared_key(name, arm), QueryKind.VALUE, query, request.end))
    if request.counts:
        try:
            queries += _counter(_REQUESTS, _requests_selector(request), request)
        except ValueError as exc:
            failed[_REQUESTS] = str(exc)
        if request.slow_threshold_ms is not None and _REQUESTS not in failed:
            try:
                queries += _counter(_SLOW, _slow_selector(request, request.slow_threshold_ms), request)
            except ValueError as exc:
                failed[_SLOW] = str(exc)
    return LookPlan(tuple(queries), failed)


class _Failed(Exception):
    """The first error among the answers the counts need (they are all or nothing)."""


def _answer(answers: Mapping[str, Answer], key: str) -> Answer:
    found = answers.get(key, LookupError(f"no answer for {key}"))
    if isinstance(found, Exception):
        raise _Failed(str(found))
    return found


def _arm(values: Mapping[str, float], which: str) -> float:
    """An arm's count; absent means no such series in the window, i.e. zero."""
    return max(0.0, values.get(which, 0.0))


def _own(series: Sequence[Series], request: LookRequest) -> Sequence[Series]:
    """This look's arms' series of a shared, namespace-wide answer, by index (Istio's set names the workload in one
    label; other answers are classified series by series, which gives the same counts)."""
    if isinstance(series, SharedSeries) and request.query_set is QuerySetName.ISTIO:
        return series.having(WORKLOAD_LABEL, (request.target, request.primary_workload))
    return series


def _counts(request: LookRequest, answers: Mapping[str, Answer]) -> tuple[ArmCounts, ArmCounts]:
    """Per-arm counts, all or nothing (raises :class:`_Failed`); errors in the order the counts were once read."""
    if _REQUESTS in answers:
        _answer(answers, _REQUESTS)
    queries, arms = query_set(request.query_set), request.arms

    def arm(labels: Mapping[str, str]) -> str | None:
        return queries.arm(labels, arms)

    def server_error(labels: Mapping[str, str]) -> str | None:
        return queries.arm(labels, arms) if queries.is_server_error(labels) else None

    baseline: Sequence[Series] = _own(_answer(answers, REQUESTS_BASELINE), request)
    window: Sequence[Series] = _own(_answer(answers, REQUESTS_WINDOW), request)
    requests, errors = counts_by(baseline, window, arm), counts_by(baseline, window, server_error)
    slow: Mapping[str, float] = {}
    if request.slow_threshold_ms is not None:
        if _SLOW in answers:
            _answer(answers, _SLOW)
        baseline = _own(_answer(answers, SLOW_BASELINE), request)
        window = _own(_answer(answers, SLOW_WINDOW), request)
        boundary = slow_bucket(request.slow_threshold_ms, request.buckets_ms)

        def bucket(infinite: bool) -> Callable[[Mapping[str, str]], str | None]:
            return lambda labels: arm(labels) if is_infinite_le(labels.get("le", "")) == infinite else None

        total, fast = counts_by(baseline, window, bucket(True)), counts_by(baseline, window, bucket(False))
        names = {CANARY: request.target, PRIMARY: request.primary_workload}
        for which in (CANARY, PRIMARY):
            if _arm(requests, which) > 0 and which not in fast:
                selector = queries.slow_buckets_selector(arms, request.slow_threshold_ms)
                raise _Failed(
                    f"no {queries.buckets_metric} with le={boundary:g} for the {which} arm ({names[which]!r}) "
                    f"although it served requests (custom histogram buckets?) (query: {compact(selector)})"
                )
        slow = {which: total.get(which, 0.0) - fast.get(which, 0.0) for which in fast}
    canary = ArmCounts(requests=_arm(requests, CANARY), errors=_arm(errors, CANARY), slow=_arm(slow, CANARY))
    primary = ArmCounts(requests=_arm(requests, PRIMARY), errors=_arm(errors, PRIMARY), slow=_arm(slow, PRIMARY))
    return canary, primary


def assemble(request: LookRequest, answers: Mapping[str, Answer]) -> Look:
    """The :class:`~analysis.samples.Look` the answers make (``answers`` as :meth:`LookPlan.answers` gives them)."""
    thresholds: dict[str, ThresholdValue] = {}
    for name in request.thresholds:
        try:
            answer = _answer(answers, threshold_key(name))
            if isinstance(answer, Mapping):  # a batched built-in: the namespace's values by workload
                thresholds[name] = ThresholdValue(value=answer.get(request.target))
            else:
                thresholds[name] = ThresholdValue(value=answer.value)
        except _Failed as exc:
            thresholds[name] = ThresholdValue(error=str(exc))
    compared: dict[str, ArmValues] = {}
    for name in request.compared:
        values: list[float | None] = []
        errors: list[str] = []
        for arm in (CANARY, PRIMARY):
            try:
                values.append(_answer(answers, compared_key(name, arm)).value)
            except _Failed as exc:
                errors.append(f"{arm}: {exc}")
        compared[name] = ArmValues(error="; ".join(errors)) if errors else ArmValues(values[0], values[1])
    canary, primary, counts_error = ArmCounts(), ArmCounts(), None
    if request.counts:
        try:
            canary, primary = _counts(request, answers)
        except _Failed as exc:
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
