"""Rules that depend on ``spec.provider``: accept only what the chosen router implements, naming the field.

The Istio router's pass-through fields are checked against Istio's schema (:mod:`controller.rollout.istio_rules`);
what an HTTPRoute cannot carry is reported by :func:`controller.rollout.gatewayapi_translate.spec_problems`. This
module holds the rules between them: parent Gateways only for Gateway API, and the query set.

Istio and Gateway API carry different things. A field one router copies into its objects and the other has no place
for must be refused, never silently dropped: a retry policy that validates and then does nothing is worse than an
error. And a Gateway API implementation does not say which data plane reports the traffic, so a Canary routed by
one that uses the built-in checks or the comparison should name its ``analysis.querySet`` (unset, it is Istio's,
as in Flagger, whose Gateway API provider reads Istio's metrics; ``coalmine validate`` warns).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from analysis.policy import ISTIO_DURATION_BUCKETS_MS
from controller.rollout.problems import Findings, is_number, items, join, mapping


class Provider(StrEnum):
    """``spec.provider``: the routers Coalmine has (:data:`controller.routers.ROUTERS`)."""

    ISTIO = "istio"
    GATEWAY_API_V1 = "gatewayapi:v1"
    GATEWAY_API_V1BETA1 = "gatewayapi:v1beta1"


ISTIO = Provider.ISTIO.value
GATEWAY_API = (Provider.GATEWAY_API_V1.value, Provider.GATEWAY_API_V1BETA1.value)
BUILTIN_METRICS = frozenset({"request-success-rate", "request-duration"})


def effective_provider(spec: Mapping[str, Any]) -> str:
    """``spec.provider``, or Istio when unset (the operator fills in its ``--default-provider`` before)."""
    provider = spec.get("provider")
    return provider if isinstance(provider, str) and provider else ISTIO


def with_default_provider(document: Mapping[str, Any], default: str) -> Mapping[str, Any]:
    """``document`` with ``spec.provider`` set to ``default`` when it has none (Flagger's ``-mesh-provider``)."""
    spec = document.get("spec")
    if not isinstance(spec, Mapping) or spec.get("provider") or default == ISTIO:
        return document
    return {**document, "spec": {**spec, "provider": default}}


def check_provider(spec: Mapping[str, Any], analysis_key: str, out: Findings) -> None:
    """The provider-dependent rules for a Canary's or BlueGreen's ``spec``."""
    provider = effective_provider(spec)
    service = mapping(spec.get("service"))
    analysis = mapping(spec.get(analysis_key))
    analysis_path = f"spec.{analysis_key}"
    _check_slow_threshold(analysis, analysis_path, out)
    if provider == ISTIO:
        if service.get("gatewayRefs"):
            out.problem(
                "spec.service.gatewayRefs",
                "only a Gateway API route has parent Gateways: set spec.provider: gatewayapi:v1 (or run the operator "
                "with --default-provider gatewayapi:v1, as Flagger's -mesh-provider)",
            )
        if analysis.get("querySet") == "envoy":
            out.problem(
                join(analysis_path, "querySet"),
                "Istio's sidecars report Istio's telemetry: use istio (envoy is for Gateway API implementations "
                "built on Envoy, such as Contour)",
            )
        return
    if provider not in GATEWAY_API:
        return  # the CRD enum refuses it, naming spec.provider
    if analysis.get("querySet") is None and _reads_builtin_metrics(analysis):
        out.warn(
            join(analysis_path, "querySet"),
            f"is not set: with provider {provider} the built-in metrics and the comparison read Istio's telemetry, "
            "as Flagger's do; set querySet: istio to say so, or envoy if Contour (Envoy) reports the traffic — "
            "otherwise every look on another data plane is no data",
        )


def _check_slow_threshold(analysis: Mapping[str, Any], analysis_path: str, out: Findings) -> None:
    """The latency comparison counts requests above a histogram bucket: a threshold above the largest finite one
    cannot be counted, so every look would fail — refused here, as the operator would refuse it at every look."""
    latency = mapping(mapping(analysis.get("comparison")).get("latency"))
    value = latency.get("slowThresholdMs")
    largest = max(ISTIO_DURATION_BUCKETS_MS)
    if is_number(value) and value > largest:
        out.problem(
            join(join(join(analysis_path, "comparison"), "latency"), "slowThresholdMs"),
            f"is above the largest latency histogram bucket ({largest:g} ms) of Istio's and Envoy's metrics "
            f"(got {value:g}): slower requests cannot be counted",
        )


def _reads_builtin_metrics(analysis: Mapping[str, Any]) -> bool:
    if analysis.get("comparison") is not None:
        return True
    for metric in items(analysis.get("metrics")):
        entry = mapping(metric)
        if entry.get("name") in BUILTIN_METRICS and not entry.get("templateRef") and not entry.get("query"):
            return True
    return False


__all__ = ["GATEWAY_API", "Provider", "check_provider", "effective_provider", "with_default_provider"]
