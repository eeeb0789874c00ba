"""Run one look for one Canary: render its metric queries, read Prometheus, and return the judge's input.

Effectful (reads MetricTemplates, Secrets and Prometheus); run by ``ctx.blocking``. Metrics are grouped by the
provider that serves them so each look sends at most one query per metric (plus the per-arm count queries), and a
broken template or unreachable provider becomes an error on *that* metric, never an exception that hides the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analysis.policy import JudgePolicy
from analysis.samples import ArmValues, Look, ThresholdValue
from controller.kube.api import METRIC_TEMPLATES, SECRETS, KubeApi
from controller.kube.errors import KubeError
from controller.operator.context import OperatorContext
from controller.operator.credentials import check_credential_use, decode_secret, template_address
from controller.providers import ProviderError
from controller.providers.looks import LookRequest, ThresholdQuery, collect_look
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

ProviderKey = tuple[str, str, str, bool]  # address, secret namespace, secret name, insecureSkipVerify


@dataclass
class _Group:
    thresholds: dict[str, ThresholdQuery] = field(default_factory=dict)
    compared: dict[str, tuple[str, str]] = field(default_factory=dict)


def _model(canary_name: str, namespace: str, spec: CanarySpec, metric: MetricSpec) -> TemplateModel:
    return TemplateModel(
        name=canary_name,
        namespace=namespace,
        target=spec.target_ref.name,
        service=spec.service.name or spec.target_ref.name,
        interval=prom_duration(metric.interval_s),
        variables=dict(metric.template_variables),
    )


def build_look(
    ctx: OperatorContext,
    canary_name: str,
    namespace: str,
    spec: CanarySpec,
    policy: JudgePolicy,
    window: tuple[float, float],
) -> Look:
    """Read everything ``policy`` needs for the look over ``window`` (see module doc)."""
    default: ProviderKey = (spec.metrics_server or ctx.config.metrics_server, "", "", False)
    groups: dict[ProviderKey, _Group] = {default: _Group()}
    failed: dict[str, str] = {}
    threshold_names = {metric.name for metric in policy.thresholds}
    compared_names = {metric.name for metric in policy.compared}
    for metric in spec.analysis.metrics:
        try:
            key, query = _metric_source(ctx.api, namespace, metric, default)
        except (KubeError, TemplateError, ValueError) as error:
            failed[metric.name] = str(error)
            continue
        group = groups.setdefault(key, _Group())
        model = _model(canary_name, namespace, spec, metric)
        try:
            if metric.name in threshold_names:
                group.thresholds[metric.name] = (
                    BuiltinMetric(BuiltinName(metric.name), metric.interval_s)
                    if query is None
                    else render_template(query, model)
                )
            if metric.name in compared_names and query is not None:
                canary_model, primary_model = arm_models(model)
                group.compared[metric.name] = (
                    render_template(query, canary_model),
                    render_template(query, primary_model),
                )
        except TemplateError as error:
            failed[metric.name] = f"MetricTemplate query: {error}"
    counts = policy.error_rate is not None or policy.latency is not None
    slow = policy.latency.slow_threshold_ms if policy.latency is not None else None
    looks: dict[ProviderKey, Look] = {}
    for key, group in groups.items():
        wants_counts = counts and key == default
        if not (group.thresholds or group.compared or wants_counts):
            continue
        request = LookRequest(
            namespace=namespace,
            target=spec.target_ref.name,
            start=window[0],
            end=window[1],
            thresholds=group.thresholds,
            compared=group.compared,
            counts=wants_counts,
            slow_threshold_ms=slow if wants_counts else None,
            query_set=QuerySetName(metrics_query_set(spec) or QuerySetName.ISTIO),
            service=spec.service.name or spec.target_ref.name,
        )
        try:
            provider = ctx.provider(key[0], _credentials(ctx.api, key), insecure=key[3])
            looks[key] = collect_look(provider, request)
        except (ProviderError, KubeError, ValueError) as error:
            # ValueError: a missing or undecodable provider Secret. Like an unreachable provider it fails only the
            # metrics this provider serves (the look then fails its checks), instead of crashing every tick.
            for name in group.thresholds:
                failed[name] = str(error)
            for name in group.compared:
                failed[name] = str(error)
            if wants_counts:
                looks[key] = Look(start=window[0], end=window[1], counts_error=str(error))
    return _merge(window, looks.get(default), looks.values(), failed, threshold_names, compared_names)


def _metric_source(
    api: KubeApi, namespace: str, metric: MetricSpec, default: ProviderKey
) -> tuple[ProviderKey, str | None]:
    """Which provider serves ``metric`` and its query template (``None`` for a built-in metric)."""
    if metric.template_ref is None:
        return default, metric.query
    template_namespace = metric.template_ref.namespace or namespace
    template = api.get(METRIC_TEMPLATES, template_namespace, metric.template_ref.name)
    if template is None:
        raise ValueError(f"MetricTemplate {template_namespace}/{metric.template_ref.name} not found")
    check_credential_use(template, "MetricTemplate", template_namespace, namespace)
    template_spec = template.get("spec") or {}
    provider = template_spec.get("provider") or {}
    address = template_address(template, default[0])
    secret = (provider.get("secretRef") or {}).get("name", "")
    key = (str(address), template_namespace if secret else "", str(secret), bool(provider.get("insecureSkipVerify")))
    return key, str(template_spec.get("query", ""))


def _credentials(api: KubeApi, key: ProviderKey) -> dict[str, str]:
    if not key[2]:
        return {}
    secret = api.get(SECRETS, key[1], key[2])
    if secret is None:
        raise ValueError(f"Secret {key[1]}/{key[2]} (MetricTemplate provider secretRef) not found")
    try:
        return decode_secret(secret)
    except ValueError as error:
        raise ValueError(f"Secret {key[1]}/{key[2]} (MetricTemplate provider secretRef): bad data: {error}") from error


def _merge(
    window: tuple[float, float],
    base: Look | None,
    looks: Any,
    failed: Mapping[str, str],
    threshold_names: set[str],
    compared_names: set[str],
) -> Look:
    thresholds: dict[str, ThresholdValue] = {}
    compared: dict[str, ArmValues] = {}
    for look in looks:
        thresholds.update(look.thresholds)
        compared.update(look.compared)
    for name, error in failed.items():
        if name in threshold_names:
            thresholds[name] = ThresholdValue(error=error)
        if name in compared_names:
            compared[name] = ArmValues(error=error)
    if base is None:
        base = Look(start=window[0], end=window[1])
    return Look(
        start=window[0],
        end=window[1],
        canary=base.canary,
        primary=base.primary,
        counts_error=base.counts_error,
        thresholds=thresholds,
        compared=compared,
    )
