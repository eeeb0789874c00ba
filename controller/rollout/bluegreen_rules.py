"""Semantic rules for a BlueGreen: what the CRD schema cannot say (one length per analysis, a preview that routes
something, promotion settings that agree), reported at the field to fix.

``analysis`` means the same as on a Canary, so its metric, webhook and service rules are the Canary's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.rollout.canary_rules import (
    FLAGGER_MIN_INTERVAL_S,
    _check_ab_match,
    _check_metrics,
    _check_refs,
    _check_service,
    _check_tcp,
    _check_unique_names,
    _check_webhooks,
)
from controller.rollout.problems import Findings, check_duration, check_http_url, is_number, items, join, mapping

PHASES = ("prePromotionAnalysis", "postPromotionAnalysis")
NOT_FOR_BLUEGREEN_HOOKS = frozenset({"confirm-traffic-increase"})


def check_bluegreen(document: Mapping[str, Any], out: Findings) -> None:
    """Apply every BlueGreen rule to ``document``; problems and warnings land in ``out``."""
    spec = mapping(document.get("spec"))
    if not spec:
        return
    _check_refs(spec, out)
    _check_service(mapping(spec.get("service")), "spec.service", out)
    check_http_url(spec.get("metricsServer"), "spec.metricsServer", out)
    analysis = mapping(spec.get("analysis"))
    interval = _check_analysis(analysis, out)
    for phase in PHASES:
        if phase in spec:
            _check_phase(mapping(spec.get(phase)), f"spec.{phase}", interval, out)
    _check_preview(mapping(spec.get("preview")), out)
    _check_preview_routing(mapping(spec.get("service")), mapping(spec.get("preview")), out)
    _check_promotion(spec, analysis, out)


def _check_preview_routing(service: Mapping[str, Any], preview: Mapping[str, Any], out: Findings) -> None:
    """The Canary's routing rules, for the preview: a TCP service cannot mirror or match (Istio has no place for
    either on a TCP route), and ``preview.match`` must AND cleanly with ``service.match`` — never widened."""
    as_analysis = {"match": preview.get("match"), "mirror": preview.get("mirror")}
    if str(service.get("appProtocol") or "").lower() == "tcp":
        _check_tcp(service, as_analysis, "spec.preview", out)
    else:
        _check_ab_match(service, as_analysis, "spec.preview", out)


def _check_analysis(analysis: Mapping[str, Any], out: Findings) -> float:
    """The shared analysis fields; returns the look interval in seconds (Flagger's default 1m when unset)."""
    path = "spec.analysis"
    interval = check_duration(analysis.get("interval"), join(path, "interval"), out, minimum_s=1.0)
    if interval is not None and interval < FLAGGER_MIN_INTERVAL_S:
        out.warn(
            join(path, "interval"),
            f"is below Flagger's minimum of 10s; queries over {analysis['interval']} windows are noisy",
        )
    _check_metrics(items(analysis.get("metrics")), join(path, "metrics"), out)
    webhooks = items(analysis.get("webhooks"))
    _check_webhooks(webhooks, join(path, "webhooks"), out)
    for index, hook in enumerate(webhooks):
        hook_type = mapping(hook).get("type")
        if hook_type in NOT_FOR_BLUEGREEN_HOOKS:
            out.problem(
                join(join(join(path, "webhooks"), index), "type"),
                f"{hook_type} does not apply to a BlueGreen: traffic switches 0→100 in one step; "
                "use confirm-promotion to gate the switch",
            )
    _check_unique_names(items(analysis.get("alerts")), join(path, "alerts"), "alert", out)
    return interval if interval is not None else 60.0


def _check_phase(phase: Mapping[str, Any], path: str, interval_s: float, out: Findings) -> None:
    iterations, duration = phase.get("iterations"), phase.get("duration")
    if iterations is None and duration is None:
        out.problem(path, "needs iterations (a number of looks) or duration (how long looks run), one of them")
        return
    if iterations is not None and duration is not None:
        out.problem(join(path, "duration"), "cannot be combined with iterations; set one of them")
        return
    if duration is not None:
        seconds = check_duration(duration, join(path, "duration"), out, minimum_s=1.0)
        if seconds is not None and seconds < interval_s:
            out.problem(
                join(path, "duration"),
                f"is shorter than spec.analysis.interval ({interval_s:g}s): not a single look would run",
            )


def _check_preview(preview: Mapping[str, Any], out: Findings) -> None:
    path = "spec.preview"
    mirror, weight = preview.get("mirror"), preview.get("mirrorWeight")
    if weight is not None and mirror is not True:
        out.problem(join(path, "mirrorWeight"), "only applies with mirror: true; set mirror: true or remove it")
    elif mirror is True and is_number(weight) and weight == 0:
        out.problem(join(path, "mirrorWeight"), "0 mirrors nothing; use mirror: false for no mirroring")
    for index, condition in enumerate(items(preview.get("match"))):
        if isinstance(condition, Mapping) and not condition:
            out.problem(
                join(join(path, "match"), index),
                "an empty match matches every request: all traffic would reach green before the switch",
            )


def _check_promotion(spec: Mapping[str, Any], analysis: Mapping[str, Any], out: Findings) -> None:
    auto = mapping(spec.get("autoPromotion"))
    after = auto.get("afterSeconds")
    if auto.get("enabled") is False and is_number(after) and after > 0:
        out.problem(
            "spec.autoPromotion.afterSeconds",
            "only applies when enabled is true; with enabled: false the switch waits for `kubectl coalmine promote`",
        )
    checks = bool(items(analysis.get("metrics"))) or analysis.get("comparison") is not None
    hooks = any(mapping(hook).get("type", "rollout") in ("", "rollout") for hook in items(analysis.get("webhooks")))
    for phase in PHASES:
        if phase in spec and not (checks or hooks):
            out.warn(f"spec.{phase}", "checks nothing: spec.analysis has no metrics, comparison or rollout webhooks")
    if "prePromotionAnalysis" not in spec and auto.get("enabled", True) is not False:
        out.warn(
            "spec.prePromotionAnalysis",
            "is not set and autoPromotion is on: all traffic switches to green as soon as it is ready",
        )
    thresholds = [m for m in items(analysis.get("metrics")) if mapping(m).get("comparison") is None]
    if "postPromotionAnalysis" in spec and analysis.get("comparison") is not None and not thresholds:
        out.warn(
            "spec.postPromotionAnalysis",
            "only runs threshold metrics: after the switch blue has no traffic to compare green with",
        )
