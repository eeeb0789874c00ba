"""``coalmine judge``'s look source: a past window of a real Prometheus, read exactly as the operator reads it live.

The engine and judge run over a simulated clock (:func:`controller.simulation.drive`); each due look is read with
:func:`controller.providers.looks.collect_look` at the look's end time, over the window the engine asked for. The
canary weights in a replay are the engine's hypothetical ones: the recorded traffic is what really happened, so the
backtest says what Coalmine *would have decided* on that data, and when.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from analysis.samples import Look
from controller.providers import MetricProvider
from controller.providers.looks import LookRequest, ThresholdQuery, collect_look
from controller.providers.queries import (
    BuiltinMetric,
    BuiltinName,
    TemplateModel,
    arm_models,
    prom_duration,
    render_template,
)
from controller.providers.querysets import QuerySetName
from controller.rollout.durations import DurationError, parse_duration
from controller.rollout.judging import policy_from_spec
from controller.rollout.spec import CanarySpec, MetricSpec, metrics_query_set
from controller.simulation import Routing

TemplateKey = tuple[str, str]  # (namespace, name)


class BacktestError(ValueError):
    """The backtest cannot run as asked (a bad time, a missing MetricTemplate, a template that does not render)."""


def parse_instant(text: str, now: float) -> float:
    """Epoch seconds for ``now``, a relative ``-30m``/``-1h30m``, unix seconds, or an RFC3339 time with a zone."""
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        try:
            return now - parse_duration(value[1:])
        except DurationError as error:
            raise BacktestError(f"{text!r}: a relative time is '-' and a duration, e.g. -30m or -1h30m") from error
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or number < 0:
            raise BacktestError(f"{text!r} is not a unix time")
        return number
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise BacktestError(
            f"{text!r} is not a time: use RFC3339 (2024-05-01T12:00:00Z), unix seconds, -30m or now"
        ) from error
    if parsed.tzinfo is None:
        raise BacktestError(f"{text!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    return parsed.timestamp()


def templates_from_documents(documents: Sequence[Mapping[str, Any]], default_namespace: str) -> dict[TemplateKey, str]:
    """The queries of the MetricTemplates among ``documents``, keyed by (namespace, name)."""
    found: dict[TemplateKey, str] = {}
    for document in documents:
        if document.get("kind") != "MetricTemplate":
            continue
        metadata = document.get("metadata") or {}
        query = (document.get("spec") or {}).get("query")
        if not metadata.get("name") or not isinstance(query, str):
            raise BacktestError(f"MetricTemplate {metadata.get('name', '?')!r} has no name or no spec.query")
        found[(str(metadata.get("namespace") or default_namespace), str(metadata["name"]))] = query
    return found


@dataclass(frozen=True)
class CanaryIdentity:
    """What templates and built-in queries are rendered with: the Canary's name and namespace, target, service."""

    name: str
    namespace: str
    target: str
    service: str

    @classmethod
    def of(cls, document: Mapping[str, Any], spec: CanarySpec) -> CanaryIdentity:
        metadata = document.get("metadata") or {}
        return cls(
            name=str(metadata.get("name", spec.target_ref.name)),
            namespace=str(metadata.get("namespace") or "default"),
            target=spec.target_ref.name,
            service=spec.service.name or spec.target_ref.name,
        )


def _model(identity: CanaryIdentity, metric: MetricSpec) -> TemplateModel:
    return TemplateModel(
        name=identity.name,
        namespace=identity.namespace,
        target=identity.target,
        service=identity.service,
        interval=prom_duration(metric.interval_s),
        variables=dict(metric.template_variables),
    )


def _template_query(metric: MetricSpec, identity: CanaryIdentity, templates: Mapping[TemplateKey, str]) -> str:
    if metric.query is not None:
        return metric.query
    ref = metric.template_ref
    if ref is None:
        raise BacktestError(f"metric {metric.name!r} has neither a templateRef nor a query")
    key = (ref.namespace or identity.namespace, ref.name)
    if key not in templates:
        raise BacktestError(
            f"metric {metric.name!r} uses MetricTemplate {key[0]}/{key[1]}, which is not in the files given "
            "(pass it with --templates FILE)"
        )
    return templates[key]


@dataclass(frozen=True)
class LookPlan:
    """The queries of every look, rendered once: threshold queries, per-arm compared queries, counts or not."""

    thresholds: Mapping[str, ThresholdQuery]
    compared: Mapping[str, tuple[str, str]]
    counts: bool
    slow_threshold_ms: float | None
    query_set: QuerySetName = QuerySetName.ISTIO


def plan_looks(spec: CanarySpec, identity: CanaryIdentity, templates: Mapping[TemplateKey, str]) -> LookPlan:
    """Render every metric's query as the operator would (raises :class:`BacktestError` for what cannot be)."""
    thresholds: dict[str, ThresholdQuery] = {}
    compared: dict[str, tuple[str, str]] = {}
    policy = policy_from_spec(spec)
    threshold_names = {metric.name for metric in policy.thresholds}
    for metric in spec.analysis.metrics:
        if metric.is_builtin:
            thresholds[metric.name] = BuiltinMetric(BuiltinName(metric.name), metric.interval_s)
            continue
        try:
            query = _template_query(metric, identity, templates)
            model = _model(identity, metric)
            if metric.name in threshold_names:
                thresholds[metric.name] = render_template(query, model)
            if metric.comparison is not None:
                canary, primary = arm_models(model)
                compared[metric.name] = (render_template(query, canary), render_template(query, primary))
        except ValueError as error:  # TemplateError and BacktestError
            raise BacktestError(f"metric {metric.name!r}: {error}") from error
    counts = policy.error_rate is not None or policy.latency is not None
    slow = policy.latency.slow_threshold_ms if policy.latency is not None else None
    return LookPlan(thresholds, compared, counts, slow, QuerySetName(metrics_query_set(spec) or QuerySetName.ISTIO))


class PrometheusLooks:
    """A :class:`~controller.simulation.LookSource` reading each look from Prometheus (blocking HTTP)."""

    def __init__(self, provider: MetricProvider, identity: CanaryIdentity, plan: LookPlan) -> None:
        self.provider = provider
        self.identity = identity
        self.plan = plan

    def advance(self, start: float, end: float, routing: Routing) -> None:
        """Recorded traffic does not follow the engine's hypothetical weights: nothing to do."""

    def look(self, window: tuple[float, float]) -> Look:
        request = LookRequest(
            namespace=self.identity.namespace,
            target=self.identity.target,
            start=window[0],
            end=window[1],
            thresholds=self.plan.thresholds,
            compared=self.plan.compared,
            counts=self.plan.counts,
            slow_threshold_ms=self.plan.slow_threshold_ms,
            query_set=self.plan.query_set,
            service=self.identity.service,
        )
        return collect_look(self.provider, request)
