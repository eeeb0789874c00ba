"""Semantic rules for a Canary: what the CRD schema cannot say (one rollout mode, ordered weights, references…).

Each rule reads the raw document defensively (a field with the wrong type was already reported by the schema
check) and reports at the most specific field path, so ``coalmine validate`` points at the line to fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from controller.rollout.match_merge import combine_matches
from controller.rollout.problems import (
    Findings,
    check_duration,
    check_http_url,
    check_port_name,
    check_service_name,
    is_number,
    items,
    join,
    mapping,
)
from controller.rollout.spec import BUILTIN_METRICS

MODES = ("stepWeight", "stepWeights", "steps", "iterations")
FLAGGER_MIN_INTERVAL_S = 10.0


def check_canary(document: Mapping[str, Any], out: Findings) -> None:
    """Apply every Canary rule to ``document``; problems and deprecation warnings land in ``out``."""
    spec = mapping(document.get("spec"))
    if not spec:
        return
    _check_refs(spec, out)
    _check_service(mapping(spec.get("service")), "spec.service", out)
    check_http_url(spec.get("metricsServer"), "spec.metricsServer", out)
    if "analysis" in spec and "canaryAnalysis" in spec:
        out.problem("spec.canaryAnalysis", "set either analysis or the deprecated canaryAnalysis, not both")
    elif "canaryAnalysis" in spec:
        out.warn("spec.canaryAnalysis", "deprecated: rename canaryAnalysis to analysis (same fields)")
    elif "analysis" not in spec:
        out.problem(
            "spec.analysis",
            "is required: an interval and one of stepWeight, stepWeights, steps or iterations",
        )
        return
    key = "analysis" if "analysis" in spec else "canaryAnalysis"
    analysis = spec.get(key)
    if isinstance(analysis, Mapping):
        _check_analysis(analysis, f"spec.{key}", out)
        _check_istio_routing(mapping(spec.get("service")), analysis, f"spec.{key}", out)


def _check_refs(spec: Mapping[str, Any], out: Findings) -> None:
    target = mapping(spec.get("targetRef"))
    api_version = target.get("apiVersion")
    if isinstance(api_version, str) and api_version != "apps/v1":
        out.problem("spec.targetRef.apiVersion", f"must be apps/v1 for a Deployment (got {api_version!r})")
    scaler = mapping(spec.get("autoscalerRef"))
    api_version = scaler.get("apiVersion")
    if isinstance(api_version, str) and not api_version.startswith("autoscaling/"):
        out.problem(
            "spec.autoscalerRef.apiVersion",
            f"must be an autoscaling API version such as autoscaling/v2 (got {api_version!r})",
        )
    replicas = mapping(scaler.get("primaryScalerReplicas"))
    low, high = replicas.get("minReplicas"), replicas.get("maxReplicas")
    if is_number(low) and is_number(high) and low > high:
        out.problem(
            "spec.autoscalerRef.primaryScalerReplicas",
            f"minReplicas ({low}) must be ≤ maxReplicas ({high})",
        )


def _check_service(service: Mapping[str, Any], path: str, out: Findings) -> None:
    check_service_name(service.get("name"), join(path, "name"), out)
    target_port = service.get("targetPort")
    if isinstance(target_port, str):
        check_port_name(target_port, join(path, "targetPort"), out)
    elif is_number(target_port) and not 1 <= target_port <= 65535:
        out.problem(join(path, "targetPort"), f"must be between 1 and 65535 (got {target_port})")
    check_duration(service.get("timeout"), join(path, "timeout"), out)
    for index, gateway in enumerate(items(service.get("gateways"))):
        if gateway == "":
            out.problem(join(join(path, "gateways"), index), "must not be empty; use mesh for in-mesh traffic")
    for index, host in enumerate(items(service.get("hosts"))):
        if isinstance(host, str) and ("://" in host or "/" in host):
            out.problem(join(join(path, "hosts"), index), f"must be a host name, not a URL (got {host!r})")


def _check_analysis(analysis: Mapping[str, Any], path: str, out: Findings) -> None:
    interval = check_duration(analysis.get("interval"), join(path, "interval"), out, minimum_s=1.0)
    if interval is not None and interval < FLAGGER_MIN_INTERVAL_S:
        out.warn(
            join(path, "interval"),
            f"is below Flagger's minimum of 10s; queries over {analysis['interval']} windows are noisy",
        )
    _check_mode(analysis, path, out)
    _check_routing(analysis, path, out)
    _check_metrics(items(analysis.get("metrics")), join(path, "metrics"), out)
    _check_webhooks(items(analysis.get("webhooks")), join(path, "webhooks"), out)
    _check_unique_names(items(analysis.get("alerts")), join(path, "alerts"), "alert", out)


def _check_mode(analysis: Mapping[str, Any], path: str, out: Findings) -> None:
    modes = [mode for mode in MODES if analysis.get(mode) is not None]
    if not modes:
        out.problem(
            path,
            "needs one of stepWeight (with maxWeight), stepWeights, steps (progressive canary) or iterations "
            "(A/B testing with match, blue/green without)",
        )
    for extra in modes[1:]:
        out.problem(
            join(path, extra),
            f"cannot be combined with {modes[0]}; choose one of stepWeight, stepWeights, steps or iterations",
        )
    step_weight, max_weight = analysis.get("stepWeight"), analysis.get("maxWeight")
    if max_weight is not None and modes and modes[0] != "stepWeight":
        out.warn(join(path, "maxWeight"), f"only applies with stepWeight; it is ignored with {modes[0]}")
    if is_number(step_weight) and is_number(max_weight) and max_weight < step_weight:
        out.problem(join(path, "maxWeight"), f"must be ≥ stepWeight ({step_weight}) (got {max_weight})")
    weights = items(analysis.get("stepWeights"))
    for index in range(1, len(weights)):
        previous, current = weights[index - 1], weights[index]
        if is_number(previous) and is_number(current) and current <= previous:
            out.problem(
                join(join(path, "stepWeights"), index),
                f"must be greater than the previous weight {previous}: stepWeights are strictly increasing",
            )
            break
    _check_steps(items(analysis.get("steps")), join(path, "steps"), out)


def _check_steps(steps: Sequence[Any], path: str, out: Findings) -> None:
    if not steps:
        return
    highest: float | None = None
    for index, raw in enumerate(steps):
        step = mapping(raw)
        weight = step.get("setWeight")
        if is_number(weight):
            if highest is not None and weight < highest:
                out.problem(
                    join(join(path, index), "setWeight"),
                    f"must not be lower than an earlier setWeight ({highest}); weights only go up",
                )
            highest = weight if highest is None else max(highest, weight)
        if "pause" in step:
            pause = mapping(step.get("pause"))
            check_duration(pause.get("duration"), join(join(join(path, index), "pause"), "duration"), out)
    if highest is None and all(isinstance(step, Mapping) for step in steps):
        out.problem(path, "needs at least one {setWeight: N} step; pauses alone never shift traffic")


def _check_routing(analysis: Mapping[str, Any], path: str, out: Findings) -> None:
    match = analysis.get("match")
    if match is not None and analysis.get("iterations") is None:
        out.problem(
            join(path, "match"),
            "A/B testing (match) needs iterations, the number of looks before promotion",
        )
    if match is not None and analysis.get("mirror") is True:
        out.problem(join(path, "mirror"), "cannot be combined with match: mirroring copies all traffic")
    if analysis.get("mirrorWeight") is not None and analysis.get("mirror") is not True:
        out.warn(join(path, "mirrorWeight"), "has no effect unless mirror is true")


def _check_unique_names(entries: Sequence[Any], path: str, what: str, out: Findings) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        name = mapping(entry).get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            out.problem(
                join(join(path, index), "name"),
                f"duplicate {what} name {name!r} (also {path}[{seen[name]}]); names must be unique",
            )
        else:
            seen[name] = index


def _check_metrics(metrics: Sequence[Any], path: str, out: Findings) -> None:
    _check_unique_names(metrics, path, "metric", out)
    for index, raw in enumerate(metrics):
        if isinstance(raw, Mapping):
            _check_metric(raw, join(path, index), out)


def _check_metric(metric: Mapping[str, Any], path: str, out: Findings) -> None:
    name = metric.get("name")
    custom = metric.get("templateRef") is not None or metric.get("query") is not None
    check_duration(metric.get("interval"), join(path, "interval"), out)
    if not custom and isinstance(name, str) and name not in BUILTIN_METRICS:
        out.problem(
            join(path, "templateRef"),
            f"is required: {name!r} is not a built-in metric (request-success-rate, request-duration); "
            "point templateRef at a MetricTemplate",
        )
    if metric.get("templateRef") is not None and metric.get("query") is not None:
        out.problem(join(path, "query"), "set either templateRef or the deprecated query, not both")
    elif metric.get("query") is not None:
        out.warn(join(path, "query"), "deprecated: move the query into a MetricTemplate and use templateRef")
    if metric.get("threshold") is not None:
        if metric.get("thresholdRange") is not None:
            out.problem(join(path, "threshold"), "set either thresholdRange or the deprecated threshold, not both")
        else:
            out.warn(
                join(path, "threshold"),
                "deprecated: use thresholdRange (min for request-success-rate, max for other metrics)",
            )
    _check_threshold_range(metric, path, custom, out)
    _check_metric_comparison(metric, path, custom, out)


def _check_threshold_range(metric: Mapping[str, Any], path: str, custom: bool, out: Findings) -> None:
    if "thresholdRange" not in metric:
        if metric.get("threshold") is None and metric.get("comparison") is None:
            out.warn(path, "has no thresholdRange or comparison, so it can only fail when its query returns no data")
        return
    bounds = mapping(metric.get("thresholdRange"))
    low, high = bounds.get("min"), bounds.get("max")
    range_path = join(path, "thresholdRange")
    if low is None and high is None:
        out.problem(range_path, "needs min, max or both")
    elif is_number(low) and is_number(high) and low > high:
        out.problem(range_path, f"min ({low:g}) must be ≤ max ({high:g}); no value could pass")
    if not custom and metric.get("name") == "request-success-rate":
        for bound in ("min", "max"):
            value = bounds.get(bound)
            if is_number(value) and not 0 <= value <= 100:
                out.problem(join(range_path, bound), f"is a success-rate percentage: must be 0..100 (got {value:g})")
    if not custom and metric.get("name") == "request-duration":
        for bound in ("min", "max"):
            value = bounds.get(bound)
            if is_number(value) and value < 0:
                out.problem(join(range_path, bound), f"is a latency in milliseconds: must be ≥ 0 (got {value:g})")


def _check_metric_comparison(metric: Mapping[str, Any], path: str, custom: bool, out: Findings) -> None:
    if metric.get("comparison") is None:
        return
    comparison_path = join(path, "comparison")
    if not custom:
        out.problem(
            comparison_path,
            "only applies to templateRef metrics; built-in metrics are compared by analysis.comparison",
        )
        return
    comparison = mapping(metric.get("comparison"))
    direction = comparison.get("direction", "increase")
    if direction == "increase" and comparison.get("maxRelativeDecrease") is not None:
        out.warn(join(comparison_path, "maxRelativeDecrease"), "is ignored with direction: increase")
    if direction == "decrease" and comparison.get("maxRelativeIncrease") is not None:
        out.warn(join(comparison_path, "maxRelativeIncrease"), "is ignored with direction: decrease")


MAX_WEBHOOK_TIMEOUT_S = 900.0
"""The longest a webhook may take (the CRD caps ``retries`` at 10 likewise): long tests belong in a load tester
that answers at once, as Flagger's does."""


def _check_webhooks(webhooks: Sequence[Any], path: str, out: Findings) -> None:
    _check_unique_names(webhooks, path, "webhook", out)
    for index, raw in enumerate(webhooks):
        hook = mapping(raw)
        hook_path = join(path, index)
        check_http_url(hook.get("url"), join(hook_path, "url"), out)
        seconds = check_duration(hook.get("timeout"), join(hook_path, "timeout"), out)
        if seconds is not None and seconds > MAX_WEBHOOK_TIMEOUT_S:
            out.problem(
                join(hook_path, "timeout"),
                f"is longer than {MAX_WEBHOOK_TIMEOUT_S / 60:g}m: a tick waits for its hooks, so one slow hook would "
                f"hold the rollout (and abort) that long; run long tests asynchronously (got {hook['timeout']})",
            )


# What the Istio router writes into an HTTP route but a TCP route has no place for (spec.service fields).
_HTTP_ONLY_SERVICE_FIELDS = ("rewrite", "retries", "timeout", "headers", "corsPolicy")


def _check_istio_routing(service: Mapping[str, Any], analysis: Mapping[str, Any], path: str, out: Findings) -> None:
    """What the Istio router would otherwise drop or widen: fields a TCP route cannot carry, A/B conditions that
    cannot be ANDed with ``service.match``, and a primary cookie named like the canary's."""
    if str(service.get("appProtocol") or "").lower() == "tcp":
        _check_tcp(service, analysis, path, out)
    else:
        _check_ab_match(service, analysis, path, out)
    affinity = mapping(analysis.get("sessionAffinity"))
    _check_cookie_words(affinity, join(path, "sessionAffinity"), out)
    primary = affinity.get("primaryCookieName")
    if primary is not None and primary == affinity.get("cookieName"):
        out.problem(
            join(join(path, "sessionAffinity"), "primaryCookieName"),
            f"must differ from cookieName ({primary!r}): one cookie cannot pin users to both versions",
        )


_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 6265 token
_COOKIE_ATTRIBUTE = re.compile(r"^[^;,\s]+$")


def _check_cookie_words(affinity: Mapping[str, Any], path: str, out: Findings) -> None:
    """Cookie names and attribute values go into a Set-Cookie header as written: a ``;`` would add attributes."""
    for key in ("cookieName", "primaryCookieName"):
        value = affinity.get(key)
        if isinstance(value, str) and value and not _COOKIE_NAME.match(value):
            out.problem(join(path, key), f"must be a cookie name (letters, digits, !#$%&'*+-.^_`|~; got {value!r})")
    for key in ("domain", "path"):
        value = affinity.get(key)
        if isinstance(value, str) and value and not _COOKIE_ATTRIBUTE.match(value):
            out.problem(join(path, key), f"must not contain ';', ',' or spaces (got {value!r})")
    value = affinity.get("path")
    if isinstance(value, str) and value and not value.startswith("/"):
        out.problem(join(path, "path"), f"must start with / (got {value!r})")


def _check_tcp(service: Mapping[str, Any], analysis: Mapping[str, Any], path: str, out: Findings) -> None:
    why = "a TCP route (appProtocol: tcp) has no place for it; remove it or serve HTTP"
    for index, raw in enumerate(items(service.get("match"))):
        for key in sorted(mapping(raw)):
            if key != "port":
                out.problem(join(join(join("spec.service", "match"), index), key), f"only port applies: {why}")
    for key in _HTTP_ONLY_SERVICE_FIELDS:
        if key in service:
            out.problem(join("spec.service", key), why)
    if analysis.get("mirror") is True:
        out.problem(join(path, "mirror"), f"Istio cannot mirror TCP traffic: {why}")
    for key in ("match", "sessionAffinity"):
        if analysis.get(key) is not None:
            out.problem(join(path, key), f"needs HTTP (headers, cookies): {why}")


def _check_ab_match(service: Mapping[str, Any], analysis: Mapping[str, Any], path: str, out: Findings) -> None:
    canary = [mapping(raw) for raw in items(analysis.get("match"))]
    defaults = [mapping(raw) for raw in items(service.get("match"))]
    if not canary or not defaults:
        return
    _, conflicts = combine_matches(canary, defaults)
    for conflict in conflicts:
        out.problem(
            f"{join(join(path, 'match'), conflict.canary)}.{conflict.field}",
            f"cannot be combined with spec.service.match[{conflict.service}].{conflict.field}: {conflict.why} "
            "(the canary route ANDs each A/B condition with each service condition); drop one of them",
        )
