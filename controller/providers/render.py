"""A Canary's metrics as :class:`~controller.providers.plan.LookRequest` s: the one place they are rendered.

Built-ins, inline queries and MetricTemplates (rendered once per arm for a comparison) become one request per
provider, for the operator (templates read from the API, looks batched on its tick) and ``coalmine judge`` (templates
read from files) alike. Pure: the template lookup is the caller's.

Every rendered inline or template query is confined to the Canary's namespace
(:mod:`controller.providers.confine`) before it can be in a request: a metric that could read another namespace's
series fails with a message naming the field, the selector and the fix, and is never queried. A MetricTemplate may
read other namespaces on purpose (annotation ``coalmine.dev/reads-other-namespaces: "true"``) only when it lives in
a trusted namespace, so a tenant cannot grant it to itself. The built-ins are Coalmine's own queries, not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from analysis.policy import JudgePolicy
from controller.providers.batching import grid_for
from controller.providers.confine import DEFAULT_NAMESPACE_LABELS, READS_OTHER_NAMESPACES, PromQLSyntaxError, violations
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


TemplateGrant = Callable[[MetricSpec], bool]
"""Whether a ``templateRef`` metric's MetricTemplate carries ``coalmine.dev/reads-other-namespaces: "true"``."""


def _no_grant(metric: MetricSpec) -> bool:
    return False


class ConfinementError(ValueError):
    """A query could read another namespace's series: the message names the field, the selector and the fix."""


@dataclass(frozen=True)
class Confinement:
    """How queries are confined: the namespace ``labels``, the ``trusted`` namespaces whose MetricTemplates may
    read other namespaces on purpose, and ``grants`` (which templates say they do). The default grants nothing."""

    labels: tuple[str, ...] = DEFAULT_NAMESPACE_LABELS
    trusted: frozenset[str] = frozenset()
    grants: TemplateGrant = _no_grant


CONFINED = Confinement()
"""Every inline and template query confined, no template granted: ``coalmine judge`` and ``coalmine validate``
without ``--trusted-template-namespaces``."""


def query_field(metric: MetricSpec, index: int, namespace: str) -> str:
    """Where a metric's query is written, for messages: its inline field or its MetricTemplate's ``spec.query``."""
    if metric.template_ref is None:
        return f"spec.analysis.metrics[{index}].query"
    return f"metricTemplate {metric.template_ref.namespace or namespace}/{metric.template_ref.name} spec.query"


def check_confined(
    rendered: str, metric: MetricSpec, index: int, namespace: str, confinement: Confinement = CONFINED
) -> None:
    """Raise :class:`ConfinementError` unless every selector of ``rendered`` (``metric``'s query, the ``index``-th
    metric of a Canary in ``namespace``) reads only that namespace, or its template is granted (module doc)."""
    owner = None if metric.template_ref is None else metric.template_ref.namespace or namespace
    granted = owner is not None and confinement.grants(metric)
    where = query_field(metric, index, namespace)
    confine_query(rendered, namespace, where, owner=owner, granted=granted, confinement=confinement)


def confine_query(
    rendered: str,
    namespace: str,
    where: str,
    *,
    owner: str | None = None,
    granted: bool = False,
    confinement: Confinement = CONFINED,
) -> None:
    """Raise :class:`ConfinementError` (naming ``where``, the selector and the fix) unless every selector of
    ``rendered`` reads only ``namespace``'s series, or the query is a MetricTemplate's in namespace ``owner`` that
    is ``granted`` by its annotation and ``owner`` is trusted."""
    if granted and owner in confinement.trusted:
        return
    try:
        found = violations(rendered, namespace, confinement.labels)
    except PromQLSyntaxError as error:
        raise ConfinementError(f"{where}: cannot be read to check which namespaces it reads: {error}") from None
    if not found:
        return
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    message = (
        f"{where} may read another namespace's series: selector {found[0]}{more}. Add "
        f'namespace="{{{{ namespace }}}}" to every selector, or use a MetricTemplate from a trusted namespace '
        f'annotated {READS_OTHER_NAMESPACES}: "true"'
    )
    if granted:
        message += (
            f"; the annotation {READS_OTHER_NAMESPACES} on it is ignored because namespace {owner!r} is not "
            "trusted (only the operator's own namespace and --trusted-template-namespaces are), so a team cannot "
            "grant it to itself"
        )
    raise ConfinementError(message)


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
    confinement: Confinement = CONFINED,
) -> RenderedLooks:
    """The requests of the look over ``window``: what ``policy`` judges, grouped by the provider serving it.

    A metric is a threshold when the policy checks it (a built-in, an inline query or a MetricTemplate rendered
    with the Canary's model) and compared when the policy compares it (its template rendered once per arm, see
    :func:`~controller.providers.queries.arm_models`). The comparison counts go to the ``default`` provider. A
    metric whose template cannot be had or rendered, or whose rendered query is not confined to the Canary's
    namespace (see ``confinement`` and the module doc), is in ``failed`` and in no request.
    """
    thresholds: dict[ProviderKey, dict[str, ThresholdQuery]] = {default: {}}
    compared: dict[ProviderKey, dict[str, tuple[str, str]]] = {default: {}}
    failed: dict[str, str] = {}
    threshold_names = {metric.name for metric in policy.thresholds}
    compared_names = {metric.name for metric in policy.compared}
    for index, metric in enumerate(spec.analysis.metrics):
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
            threshold: ThresholdQuery | None = None
            arms: tuple[str, str] | None = None
            if metric.name in threshold_names:
                threshold = (
                    BuiltinMetric(BuiltinName(metric.name), metric.interval_s)
                    if query is None
                    else render_template(query, model)
                )
            if metric.name in compared_names and query is not None:
                canary, primary = arm_models(model)
                arms = (render_template(query, canary), render_template(query, primary))
            for rendered in (threshold, *(arms or ())):
                if isinstance(rendered, str):  # the built-ins are Coalmine's own queries
                    check_confined(rendered, metric, index, identity.namespace, confinement)
            if threshold is not None:
                thresholds.setdefault(key, {})[metric.name] = threshold
            if arms is not None:
                compared.setdefault(key, {})[metric.name] = arms
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
