"""The typed Canary spec: what a user committed to Git, parsed once into frozen records.

Parsing assumes the document already passed :mod:`controller.rollout.validation`; it fills Flagger's defaults so the
engine never has to guess. Istio pass-through fields (match, retries, trafficPolicy…) stay plain mappings because
Coalmine copies them into Istio objects without interpreting them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from controller.rollout.durations import parse_duration

BUILTIN_METRICS = frozenset({"request-success-rate", "request-duration"})


class HookType(StrEnum):
    """Flagger's webhook types; the value is the spelling used in specs."""

    CONFIRM_ROLLOUT = "confirm-rollout"
    PRE_ROLLOUT = "pre-rollout"
    ROLLOUT = "rollout"
    CONFIRM_TRAFFIC_INCREASE = "confirm-traffic-increase"
    CONFIRM_PROMOTION = "confirm-promotion"
    POST_ROLLOUT = "post-rollout"
    ROLLBACK = "rollback"
    EVENT = "event"


class Severity(StrEnum):
    """Alert severities; a provider set to ``info`` also receives warn and error (info ⊃ warn ⊃ error)."""

    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True)
class ObjectRef:
    """A reference to another object (``targetRef``, ``autoscalerRef``, ``templateRef``, ``providerRef``)."""

    name: str
    kind: str = ""
    api_version: str = ""
    namespace: str | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """``spec.service``: the ports Coalmine exposes and the Istio routing options copied into the VirtualService."""

    port: int
    name: str | None = None
    target_port: int | str | None = None
    port_name: str = "http"
    port_discovery: bool = False
    app_protocol: str | None = None
    timeout: str | None = None
    gateways: tuple[str, ...] = ("mesh",)
    gateway_refs: tuple[Mapping[str, Any], ...] = ()  # Gateway API parentRefs (gatewayapi providers)
    hosts: tuple[str, ...] = ()
    traffic_policy: Mapping[str, Any] | None = None
    match: tuple[Mapping[str, Any], ...] = ()
    rewrite: Mapping[str, Any] | None = None
    retries: Mapping[str, Any] | None = None
    headers: Mapping[str, Any] | None = None
    cors_policy: Mapping[str, Any] | None = None
    apex: Mapping[str, Any] | None = None
    primary: Mapping[str, Any] | None = None
    canary: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class MetricComparison:
    """``metrics[].comparison``: compare a custom metric canary vs primary (template rendered once per arm).

    ``method`` is ``msprt`` (always-valid test of the difference in means, for per-interval values that are roughly
    normal) or ``mann-whitney`` (Kayenta-style fixed-horizon rank test, for skewed values; decides once it has
    ``minPoints`` per arm). ``direction`` says which change is bad.
    """

    method: str = "msprt"
    direction: str = "increase"
    max_relative_increase: float = 0.0
    max_relative_decrease: float = 0.0
    min_points: int = 10


@dataclass(frozen=True)
class MetricSpec:
    """One entry of ``analysis.metrics``: a Flagger threshold check, optionally also compared with the primary."""

    name: str
    interval_s: float = 60.0
    threshold_min: float | None = None
    threshold_max: float | None = None
    template_ref: ObjectRef | None = None
    template_variables: Mapping[str, str] = field(default_factory=dict)
    query: str | None = None  # Flagger's deprecated inline query
    comparison: MetricComparison | None = None

    @property
    def is_builtin(self) -> bool:
        return self.template_ref is None and self.query is None and self.name in BUILTIN_METRICS


@dataclass(frozen=True)
class WebhookSpec:
    """One entry of ``analysis.webhooks`` (Flagger semantics; success is HTTP ≤ 202)."""

    name: str
    url: str
    type: HookType = HookType.ROLLOUT
    timeout_s: float = 10.0
    metadata: Mapping[str, str] = field(default_factory=dict)
    retries: int = 0
    mute_alert: bool = False


@dataclass(frozen=True)
class AlertSpec:
    """One entry of ``analysis.alerts``: send transitions of at least ``severity`` to an AlertProvider."""

    name: str
    provider_ref: ObjectRef
    severity: Severity = Severity.INFO


@dataclass(frozen=True)
class ErrorRatePolicy:
    """``comparison.errorRate``: H0 is canary 5xx rate ≤ (1 + maxRelativeIncrease) × primary's."""

    max_relative_increase: float = 0.0


@dataclass(frozen=True)
class LatencyPolicy:
    """``comparison.latency``: requests slower than ``slowThresholdMs`` are compared like errors."""

    slow_threshold_ms: float = 500.0
    max_relative_increase: float = 0.0


class OnInconclusive(StrEnum):
    """``analysis.comparison.onInconclusive``: what weak evidence leads to (no data at ``noDataLimit``, or
    ``maxDuration`` reached while the judge still holds for data or evidence)."""

    ROLLBACK = "rollback"
    """Flagger's and Argo's default: roll back."""
    PAUSE = "pause"
    """Hold the weight and page a person, who promotes, resumes (keeps looking) or aborts."""


@dataclass(frozen=True)
class ComparisonSpec:
    """``analysis.comparison``: the always-valid canary-vs-primary judge (see docs/judge.md)."""

    alpha: float = 0.01
    min_requests: int = 100
    error_rate: ErrorRatePolicy | None = field(default_factory=ErrorRatePolicy)
    latency: LatencyPolicy | None = None
    require_evidence: bool = False
    on_inconclusive: OnInconclusive = field(default_factory=lambda: OnInconclusive.ROLLBACK)


@dataclass(frozen=True)
class SetWeight:
    """A step that routes ``weight`` percent of traffic to the canary."""

    weight: int


@dataclass(frozen=True)
class Pause:
    """A step that holds the current weight; ``duration_s`` None waits for a human to promote."""

    duration_s: float | None = None


Step = SetWeight | Pause


@dataclass(frozen=True)
class SessionAffinity:
    """``analysis.sessionAffinity`` (Flagger's): the cookie that keeps a user who reached the canary on it, the
    optional ``primaryCookieName`` one that keeps a user who reached the primary there, and the attributes both
    cookies are set with."""

    cookie_name: str
    primary_cookie_name: str | None = None
    max_age: int = 86400
    domain: str | None = None
    path: str | None = None
    same_site: str | None = None
    secure: bool = False
    http_only: bool = False
    partitioned: bool = False


@dataclass(frozen=True)
class AnalysisSpec:
    """``spec.analysis`` (or Flagger's deprecated ``canaryAnalysis``), with Flagger's defaults filled in."""

    interval_s: float = 60.0
    threshold: int = 1
    no_data_limit: int = 1
    max_duration_s: float | None = None
    query_set: str | None = None  # analysis.querySet; None: the provider's own (istio), see metrics_query_set
    max_weight: int | None = None
    step_weight: int | None = None
    step_weights: tuple[int, ...] = ()
    step_weight_promotion: int | None = None
    iterations: int | None = None
    steps: tuple[Step, ...] = ()
    match: tuple[Mapping[str, Any], ...] = ()
    mirror: bool = False
    mirror_weight: int | None = None
    primary_ready_threshold: int = 100
    canary_ready_threshold: int = 100
    session_affinity: SessionAffinity | None = None
    metrics: tuple[MetricSpec, ...] = ()
    webhooks: tuple[WebhookSpec, ...] = ()
    alerts: tuple[AlertSpec, ...] = ()
    comparison: ComparisonSpec | None = None

    def hooks_of(self, hook_type: HookType) -> tuple[WebhookSpec, ...]:
        return tuple(hook for hook in self.webhooks if hook.type == hook_type)

    @cached_property
    def normalised_steps(self) -> tuple[Step, ...]:
        """``canary_steps`` of this analysis, computed once: the engine asks several times per tick, and
        ``coalmine simulate`` runs thousands of ticks (``stepWeight: 1`` alone is 100 steps)."""
        return _normalise_steps(self)


@dataclass(frozen=True)
class CanarySpec:
    """A whole Canary spec. ``provider`` is the mesh (only ``istio`` is routed today; validation rejects others)."""

    target_ref: ObjectRef
    service: ServiceSpec
    analysis: AnalysisSpec
    autoscaler_ref: ObjectRef | None = None
    primary_scaler_replicas: Mapping[str, int] | None = None
    progress_deadline_s: float = 600.0
    skip_analysis: bool = False
    revert_on_deletion: bool = False
    suspend: bool = False
    provider: str = "istio"
    metrics_server: str | None = None


def canary_steps(analysis: AnalysisSpec) -> tuple[Step, ...]:
    """Normalise stepWeight/maxWeight, stepWeights and steps into one list of steps, in order.

    Flagger's ``stepWeight: 10, maxWeight: 50`` becomes 10, 20, 30, 40, 50; ``stepWeights`` is taken as written;
    A/B (``iterations`` with ``match``) and blue/green (``iterations`` alone) have no weight steps.
    """
    return analysis.normalised_steps


def _normalise_steps(analysis: AnalysisSpec) -> tuple[Step, ...]:
    if analysis.steps:
        return analysis.steps
    if analysis.step_weights:
        return tuple(SetWeight(weight) for weight in analysis.step_weights)
    if analysis.step_weight:
        top = analysis.max_weight if analysis.max_weight is not None else 100
        weights = list(range(analysis.step_weight, top, analysis.step_weight))
        weights.append(top)
        return tuple(SetWeight(min(weight, top)) for weight in weights)
    return ()


def _ref(raw: Mapping[str, Any] | None) -> ObjectRef | None:
    if not raw:
        return None
    return ObjectRef(
        name=str(raw["name"]),
        kind=str(raw.get("kind", "")),
        api_version=str(raw.get("apiVersion", "")),
        namespace=raw.get("namespace"),
    )


def _seconds(raw: Any, default: float) -> float:
    return default if raw is None else parse_duration(str(raw))


def _parse_service(raw: Mapping[str, Any]) -> ServiceSpec:
    return ServiceSpec(
        port=int(raw["port"]),
        name=raw.get("name"),
        target_port=raw.get("targetPort"),
        port_name=str(raw.get("portName", "http")),
        port_discovery=bool(raw.get("portDiscovery", False)),
        app_protocol=raw.get("appProtocol"),
        timeout=raw.get("timeout"),
        gateways=tuple(raw.get("gateways") or ("mesh",)),
        gateway_refs=tuple(raw.get("gatewayRefs") or ()),
        hosts=tuple(raw.get("hosts") or ()),
        traffic_policy=raw.get("trafficPolicy"),
        match=tuple(raw.get("match") or ()),
        rewrite=raw.get("rewrite"),
        retries=raw.get("retries"),
        headers=raw.get("headers"),
        cors_policy=raw.get("corsPolicy"),
        apex=raw.get("apex"),
        primary=raw.get("primary"),
        canary=raw.get("canary"),
    )


def _parse_metric(raw: Mapping[str, Any]) -> MetricSpec:
    threshold_range = raw.get("thresholdRange") or {}
    threshold_min = threshold_range.get("min")
    threshold_max = threshold_range.get("max")
    if not threshold_range and raw.get("threshold") is not None:
        # Flagger's deprecated ``threshold``: a minimum for the success rate, a maximum for everything else.
        if raw["name"] == "request-success-rate":
            threshold_min = raw["threshold"]
        else:
            threshold_max = raw["threshold"]
    comparison_raw = raw.get("comparison")
    comparison = None
    if comparison_raw is not None:
        comparison = MetricComparison(
            method=str(comparison_raw.get("method", "msprt")),
            direction=str(comparison_raw.get("direction", "increase")),
            max_relative_increase=float(comparison_raw.get("maxRelativeIncrease", 0.0)),
            max_relative_decrease=float(comparison_raw.get("maxRelativeDecrease", 0.0)),
            min_points=int(comparison_raw.get("minPoints", 10)),
        )
    return MetricSpec(
        name=str(raw["name"]),
        interval_s=_seconds(raw.get("interval"), 60.0),
        threshold_min=None if threshold_min is None else float(threshold_min),
        threshold_max=None if threshold_max is None else float(threshold_max),
        template_ref=_ref(raw.get("templateRef")),
        template_variables={str(k): str(v) for k, v in (raw.get("templateVariables") or {}).items()},
        query=raw.get("query"),
        comparison=comparison,
    )


def _parse_webhook(raw: Mapping[str, Any]) -> WebhookSpec:
    return WebhookSpec(
        name=str(raw["name"]),
        url=str(raw["url"]),
        type=HookType(raw.get("type", "rollout")),
        timeout_s=_seconds(raw.get("timeout"), 10.0),
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
        retries=int(raw.get("retries", 0)),
        mute_alert=bool(raw.get("muteAlert", False)),
    )


def _parse_alert(raw: Mapping[str, Any]) -> AlertSpec:
    provider = _ref(raw["providerRef"])
    assert provider is not None
    return AlertSpec(name=str(raw["name"]), provider_ref=provider, severity=Severity(raw.get("severity", "info")))


def _parse_step(raw: Mapping[str, Any]) -> Step:
    if "setWeight" in raw:
        return SetWeight(int(raw["setWeight"]))
    pause = raw.get("pause") or {}
    duration = pause.get("duration")
    return Pause(None if duration is None else parse_duration(str(duration)))


def _parse_comparison(raw: Mapping[str, Any]) -> ComparisonSpec:
    error_rate = raw.get("errorRate")
    latency = raw.get("latency")
    return ComparisonSpec(
        alpha=float(raw.get("alpha", 0.01)),
        min_requests=int(raw.get("minRequests", 100)),
        error_rate=(
            ErrorRatePolicy(float(error_rate.get("maxRelativeIncrease", 0.0)))
            if error_rate is not None
            else (ErrorRatePolicy() if latency is None else None)
        ),
        latency=(
            LatencyPolicy(
                slow_threshold_ms=float(latency.get("slowThresholdMs", 500.0)),
                max_relative_increase=float(latency.get("maxRelativeIncrease", 0.0)),
            )
            if latency is not None
            else None
        ),
        require_evidence=bool(raw.get("requireEvidence", False)),
        on_inconclusive=OnInconclusive(str(raw.get("onInconclusive", OnInconclusive.ROLLBACK.value))),
    )


def _parse_session_affinity(raw: Mapping[str, Any] | None) -> SessionAffinity | None:
    if raw is None:
        return None
    return SessionAffinity(
        cookie_name=str(raw["cookieName"]),
        primary_cookie_name=raw.get("primaryCookieName"),
        max_age=int(raw.get("maxAge", 86400)),
        domain=raw.get("domain"),
        path=raw.get("path"),
        same_site=raw.get("sameSite"),
        secure=bool(raw.get("secure", False)),
        http_only=bool(raw.get("httpOnly", False)),
        partitioned=bool(raw.get("partitioned", False)),
    )


def parse_analysis(raw: Mapping[str, Any]) -> AnalysisSpec:
    """Parse ``spec.analysis``; shared with BlueGreen, whose analysis has the same meaning."""
    comparison_raw = raw.get("comparison")
    return AnalysisSpec(
        interval_s=_seconds(raw.get("interval"), 60.0),
        threshold=int(raw.get("threshold", 1)),
        # No data is its own outcome; by default it may last as many looks as failed checks may add up to.
        no_data_limit=int(raw.get("noDataLimit", raw.get("threshold", 1))),
        max_duration_s=None if raw.get("maxDuration") is None else parse_duration(str(raw["maxDuration"])),
        query_set=None if raw.get("querySet") is None else str(raw["querySet"]),
        max_weight=raw.get("maxWeight"),
        step_weight=raw.get("stepWeight"),
        step_weights=tuple(int(w) for w in raw.get("stepWeights") or ()),
        step_weight_promotion=raw.get("stepWeightPromotion"),
        iterations=raw.get("iterations"),
        steps=tuple(_parse_step(step) for step in raw.get("steps") or ()),
        match=tuple(raw.get("match") or ()),
        mirror=bool(raw.get("mirror", False)),
        mirror_weight=raw.get("mirrorWeight"),
        primary_ready_threshold=int(raw.get("primaryReadyThreshold", 100)),
        canary_ready_threshold=int(raw.get("canaryReadyThreshold", 100)),
        session_affinity=_parse_session_affinity(raw.get("sessionAffinity")),
        metrics=tuple(_parse_metric(metric) for metric in raw.get("metrics") or ()),
        webhooks=tuple(_parse_webhook(hook) for hook in raw.get("webhooks") or ()),
        alerts=tuple(_parse_alert(alert) for alert in raw.get("alerts") or ()),
        comparison=None if comparison_raw is None else _parse_comparison(comparison_raw),
    )


def parse_canary_spec(spec: Mapping[str, Any]) -> CanarySpec:
    """Build the typed spec from a validated ``spec`` mapping (``canaryAnalysis`` is read as ``analysis``)."""
    target = _ref(spec["targetRef"])
    assert target is not None
    autoscaler_raw = spec.get("autoscalerRef")
    analysis_raw = spec.get("analysis") or spec.get("canaryAnalysis") or {}
    return CanarySpec(
        target_ref=target,
        service=_parse_service(spec["service"]),
        analysis=parse_analysis(analysis_raw),
        autoscaler_ref=_ref(autoscaler_raw),
        primary_scaler_replicas=(autoscaler_raw or {}).get("primaryScalerReplicas"),
        progress_deadline_s=float(spec.get("progressDeadlineSeconds", 600)),
        skip_analysis=bool(spec.get("skipAnalysis", False)),
        revert_on_deletion=bool(spec.get("revertOnDeletion", False)),
        suspend=bool(spec.get("suspend", False)),
        provider=str(spec.get("provider", "istio")),
        metrics_server=spec.get("metricsServer"),
    )


DEFAULT_QUERY_SETS = {"istio": "istio", "gatewayapi:v1": "istio", "gatewayapi:v1beta1": "istio"}
"""A provider's metrics when ``analysis.querySet`` is unset: Istio's telemetry — for Gateway API too, as Flagger
(whose Gateway API provider reads Istio's metrics); validation warns that a Gateway API Canary should say."""


def metrics_query_set(spec: CanarySpec) -> str | None:
    """The query set the built-in checks and the judge's counts read, or None when it must be named but is not."""
    return spec.analysis.query_set or DEFAULT_QUERY_SETS.get(spec.provider)
