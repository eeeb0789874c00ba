"""One look read from a metric provider: evaluate the pure plan (:mod:`controller.providers.plan`), then assemble.

:func:`collect_look` (blocking, ``coalmine judge``) sends the plan's queries one after the other;
:func:`collect_look_async` (the operator) sends them concurrently on the event loop. Both hand every answer, or the
error a query ended with, to :func:`~controller.providers.plan.assemble`, so they build the same
:class:`~analysis.samples.Look` from the same answers and never raise for a provider failure.
"""

from __future__ import annotations

import asyncio

from analysis.samples import Look
from controller.providers import AsyncMetricProvider, MetricProvider, ProviderError
from controller.providers.plan import (
    Answer,
    LookRequest,
    PlannedQuery,
    QueryKind,
    ThresholdQuery,
    assemble,
    plan_look,
    tick_windows,
)

__all__ = ["LookRequest", "ThresholdQuery", "collect_look", "collect_look_async", "tick_windows"]


def _evaluate(provider: MetricProvider, query: PlannedQuery) -> Answer:
    try:
        if query.kind is QueryKind.SERIES:
            return provider.run_series(query.promql, at=query.at)
        if query.kind is QueryKind.VECTOR:
            return provider.run_vector(query.promql, query.by, at=query.at)
        return provider.run_query(query.promql, at=query.at)
    except (ProviderError, ValueError) as exc:
        return exc


async def _evaluate_async(provider: AsyncMetricProvider, query: PlannedQuery) -> Answer:
    try:
        if query.kind is QueryKind.SERIES:
            return await provider.run_series(query.promql, at=query.at)
        if query.kind is QueryKind.VECTOR:
            return await provider.run_vector(query.promql, query.by, at=query.at)
        return await provider.run_query(query.promql, at=query.at)
    except (ProviderError, ValueError) as exc:
        return exc


def collect_look(provider: MetricProvider, request: LookRequest) -> Look:
    """Read one look through a blocking provider (see :func:`~controller.providers.plan.plan_look`)."""
    plan = plan_look(request)
    return assemble(request, plan.answers({query.key: _evaluate(provider, query) for query in plan.queries}))


async def collect_look_async(provider: AsyncMetricProvider, request: LookRequest) -> Look:
    """Read one look through an event-loop provider, all its queries in flight together."""
    plan = plan_look(request)
    answers = await asyncio.gather(*(_evaluate_async(provider, query) for query in plan.queries))
    return assemble(request, plan.answers(dict(zip((query.key for query in plan.queries), answers, strict=True))))
