"""A Canary's metrics as :class:`~controller.providers.plan.LookRequest` s: the one place they are rendered.

Built-ins, inline queries and MetricTemplates (rendered once per arm for a comparison) become one request per
provider, for the operator (templates read from the API, looks batched on its tick) and ``coalmine judge`` (templates
read from files) alike. Pure: the template lookup is the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from analysis.policy import JudgePolicy
from controller.providers.batching import grid_for
from controller.providers.plan import LookRequest, ThresholdQuery
from controller.providers.queries import (
    BuiltinMetric,
    BuiltinName,
    TemplateError,
    TemplateModel,
    arm_models,
    prom_duration,
    render_template,
)
from controller.providers.querysets import QuerySetName
from controller.rollout.spec import CanarySpec, MetricSpec, metrics_query_set

ProviderKey = tuple[str, str, str, bool]
"""Who serves a metric: address, provider Secret namespace and name (empty: none), ``insecureSkipVerify``."""

TemplateLookup = Callable[[MetricSpec], tuple[ProviderKey, str]]
"""A ``templateRef`` metric's provider and query template; raises ValueError (with the message the metric's error
should show) when the template cannot be had."""


@dataclass(frozen=True)
class CanaryIdentity:
    """What templates and built-in queries are rendered with: the Canary's name and namespace, target, service."""

    name: str
    namespace: str
    target: str
    service: str

    @classmethod
    def of(cls, document: Mapping[str, Any], spec: CanarySpec) -> CanaryIdentity:
        """From a Canary manifest (``metadata``) and its parsed spec."""
        metadata = document.get("metadata") or {}
        return cls(
            name=str(metadata.get("name", spec.target_ref.name)),
            namespace=str(metadata.get("namespace") or "default"),
            target=spec.target_ref.name,
            service=spec.service.name or spec.target_ref.name,
        )


@dataclass(frozen=True)
class RenderedLooks:
    """One look's requests per provider, and the metrics that could not be rendered (name → why)."""

    requests: Mapping[ProviderKey, LookRequest]
    failed: Mapping[str, str]


def render_canary_looks(
    identity: CanaryIdentity,
    spec: CanarySpec,
    policy: JudgePolicy,
    window: tuple[float, float],
    templates: TemplateLookup,
    default: ProviderKey,
    grid_s: float | None = None,
) -> RenderedLooks:
    """The requests of the look over ``window``: what ``policy`` judges, grouped by the provider serving it.

    A metric is a threshold when the policy checks it (a built-in, an inline query or a MetricTemplate rendered
    with the Canary's model) and compared when the policy compares it (its template rendered once per arm, see
    :func:`~controller.providers.queries.arm_models`). The comparison counts go to the ``default`` provider. A
    metric whose template cannot be had or rendered is in ``failed`` and in no request.
    """
    thresholds: dict[ProviderKey, dict[str, ThresholdQuery]] = {default: {}}
    compared: dict[ProviderKey, dict[str, tuple[str, str]]] = {default: {}}
    failed: dict[str, str] = {}
    threshold_names = {metric.name for metric in policy.thresholds}
    compared_names = {metric.name for metric in policy.compared}
    for metric in spec.analysis.metrics:
        if metric.name not in threshold_names and metric.name not in compared_names:
            continue
        try:
            key, query = (default, metric.query) if metric.template_ref is None else templates(metric)
        except ValueError as error:
            failed[metric.name] = str(error)
            continue
        if query is None and not metric.is_builtin:
            failed[metric.name] = f"metric {metric.name!r} has neither a templateRef nor a query"
            continue
        try:
            model = TemplateModel(
                name=identity.name,
                namespace=identity.namespace,
                target=identity.target,
                service=identity.service,
                interval=prom_duration(metric.interval_s),
                variables=dict(metric.template_variables),
            )
            if metric.name in threshold_names:
                thresholds.setdefault(key, {})[metric.name] = (
                    BuiltinMetric(BuiltinName(metric.name), metric.interval_s)
                    if query is None
                    else render_template(query, model)
                )
            if metric.name in compared_names and query is not None:
                canary, primary = arm_models(model)
                compared.setdefault(key, {})[metric.name] = (
                    render_template(query, canary),
                    render_template(query, primary),
                )
        except TemplateError as error:
            failed[metric.name] = f"MetricTemplate query: {error}"
        except ValueError as error:
            failed[metric.name] = str(error)
    counts = policy.error_rate is not None or policy.latency is not None
    slow = policy.latency.slow_threshold_ms if policy.latency is not None else None
    requests: dict[ProviderKey, LookRequest] = {}
    for key in {**thresholds, **compared}:
        wants_counts = counts and key == default
        if not (thresholds.get(key) or compared.get(key) or wants_counts):
            continue
        requests[key] = LookRequest(
            namespace=identity.namespace,
            target=identity.target,
            start=window[0],
            end=window[1],
            thresholds=thresholds.get(key, {}),
            compared=compared.get(key, {}),
            counts=wants_counts,
            slow_threshold_ms=slow if wants_counts else None,
            query_set=QuerySetName(metrics_query_set(spec) or QuerySetName.ISTIO),
            service=identity.service,
            grid_s=None if grid_s is None else grid_for(grid_s, spec.analysis.interval_s),
        )
    return RenderedLooks(requests, failed)
