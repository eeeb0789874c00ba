"""Run one look for one Canary: read its MetricTemplates and Secrets, query Prometheus, return the judge's input.

A coroutine on the operator's event loop. The Kubernetes reads (the blocking ``KubeApi``) run through
``ctx.blocking``; the queries go through the cached :class:`~controller.providers.AsyncMetricProvider` of each
provider, every provider's queries concurrently. The rendering is the pure
:func:`~controller.providers.plan.render_canary_looks` the backtest uses too: metrics are grouped by the provider
that serves them, so each look sends at most one query per metric (plus the per-arm count queries), and a broken
template, Secret or unreachable provider becomes an error on *that* provider's metrics, never an exception that
hides the rest. A query that could read another namespace's series fails its metric before anything is sent
(:mod:`controller.providers.confine`); the grant annotation counts only on templates in a trusted namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from analysis.policy import JudgePolicy
from analysis.samples import ArmValues, Look, ThresholdValue
from controller.kube.api import METRIC_TEMPLATES, SECRETS, KubeApi
from controller.kube.errors import KubeError
from controller.operator.context import OperatorContext
from controller.operator.credentials import check_credential_use, decode_secret, template_address
from controller.providers import ProviderError
from controller.providers.confine import DEFAULT_NAMESPACE_LABELS, READS_OTHER_NAMESPACES
from controller.providers.looks import LookRequest, collect_look_async
from controller.providers.render import CanaryIdentity, Confinement, ProviderKey, render_canary_looks
from controller.rollout.spec import CanarySpec, MetricSpec

__all__ = ["ProviderKey", "build_look"]

_Source = tuple[ProviderKey, str, bool] | ValueError
"""A template's provider, query and whether it says it reads other namespaces; or why it cannot be had."""


async def build_look(
    ctx: OperatorContext,
    canary_name: str,
    namespace: str,
    spec: CanarySpec,
    policy: JudgePolicy,
    window: tuple[float, float],
) -> Look:
    """Read everything ``policy`` needs for the look over ``window`` (see module doc)."""
    default: ProviderKey = (spec.metrics_server or ctx.config.metrics_server, "", "", False)
    templated = [metric for metric in spec.analysis.metrics if metric.template_ref is not None]
    found = await asyncio.gather(*(_source(ctx, namespace, metric, default) for metric in templated))
    sources: dict[str, _Source] = {metric.name: source for metric, source in zip(templated, found, strict=True)}

    def template(metric: MetricSpec) -> tuple[ProviderKey, str]:
        source = sources[metric.name]
        if isinstance(source, ValueError):
            raise source
        return source[0], source[1]

    def granted(metric: MetricSpec) -> bool:
        source = sources.get(metric.name)
        return not isinstance(source, ValueError) and source is not None and source[2]

    identity = CanaryIdentity(canary_name, namespace, spec.target_ref.name, spec.service.name or spec.target_ref.name)
    grid = ctx.config.tick_seconds if ctx.config.batch_looks else None
    labels = tuple(dict.fromkeys((*DEFAULT_NAMESPACE_LABELS, *ctx.config.namespace_labels)))
    confinement = Confinement(labels, frozenset(ctx.config.trusted_template_namespaces), granted)
    rendered = render_canary_looks(identity, spec, policy, window, template, default, grid, confinement)
    keys = list(rendered.requests)
    read = await asyncio.gather(*(_read(ctx, key, rendered.requests[key]) for key in keys))
    failed = dict(rendered.failed)
    looks: dict[ProviderKey, Look] = {}
    for key, (look, error) in zip(keys, read, strict=True):
        request = rendered.requests[key]
        if error is None and look is not None:
            looks[key] = look
            continue
        # Like an unreachable provider, a missing or undecodable provider Secret fails only the metrics this
        # provider serves (the look then fails its checks), instead of crashing every tick.
        failed.update({name: str(error) for name in (*request.thresholds, *request.compared)})
        if request.counts:
            looks[key] = Look(start=window[0], end=window[1], counts_error=str(error))
    threshold_names = {metric.name for metric in policy.thresholds}
    compared_names = {metric.name for metric in policy.compared}
    return _merge(window, looks.get(default), looks.values(), failed, threshold_names, compared_names)


async def _source(ctx: OperatorContext, namespace: str, metric: MetricSpec, default: ProviderKey) -> _Source:
    """A templated metric's provider and query, or the error its look records (as a ValueError with its text)."""
    try:
        return await ctx.blocking(_metric_source, ctx.api, namespace, metric, default)
    except (KubeError, ValueError) as error:  # ValueError includes TemplateError
        return error if isinstance(error, ValueError) else ValueError(str(error))


async def _read(
    ctx: OperatorContext, key: ProviderKey, request: LookRequest
) -> tuple[Look | None, ProviderError | KubeError | ValueError | None]:
    """One provider's part of the look, or why it could not be read at all."""
    try:
        credentials = await ctx.blocking(_credentials, ctx.api, key)
        provider = ctx.provider(key[0], credentials, insecure=key[3])
        return await collect_look_async(provider, request), None
    except (ProviderError, KubeError, ValueError) as error:
        return None, error


def _metric_source(
    api: KubeApi, namespace: str, metric: MetricSpec, default: ProviderKey
) -> tuple[ProviderKey, str, bool]:
    """Which provider serves a ``templateRef`` metric, its query template, and whether it carries the
    reads-other-namespaces annotation (blocking: reads the API)."""
    assert metric.template_ref is not None
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
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    reads_other = str(annotations.get(READS_OTHER_NAMESPACES, "")).strip().lower() == "true"
    return key, str(template_spec.get("query", "")), reads_other


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
    looks: Iterable[Look],
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
