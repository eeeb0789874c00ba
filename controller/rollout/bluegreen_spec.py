"""The typed BlueGreen spec, and the Canary-shaped view of it the shared operator shell works with.

Blue is ``<target>-primary`` (what users get today), green is the target Deployment (the new revision). A BlueGreen
needs exactly the cluster objects a Canary needs — the primary copy, the ``-primary``/``-canary`` Services and one
VirtualService — so :func:`canary_view` presents it as a Canary without weight steps. The router, the look builder
and the act/gather code then serve both kinds unchanged, and cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from controller.rollout.durations import format_duration, parse_duration
from controller.rollout.problems import Problem
from controller.rollout.spec import CanarySpec, parse_analysis, parse_canary_spec
from controller.rollout.validation import InvalidSpecError, _normalised_spec, validate_document

DEFAULT_SCALE_DOWN_DELAY_S = 30.0


@dataclass(frozen=True)
class AnalysisRun:
    """``prePromotionAnalysis``/``postPromotionAnalysis``: ``iterations`` passing looks, or looks for ``duration_s``."""

    iterations: int | None = None
    duration_s: float | None = None

    def done(self, looks: int, started: float | None, now: float) -> bool:
        """Whether the run is complete after ``looks`` passing looks, started at ``started``.

        A duration run needs at least one passing look as well, so a slow operator cannot "pass" a run unseen.
        """
        if self.iterations is not None:
            return looks >= self.iterations
        elapsed = 0.0 if started is None else now - started
        return looks >= 1 and elapsed >= (self.duration_s or 0.0)

    def describe(self, looks: int, started: float | None, now: float) -> str:
        """Progress for Events: ``3/10`` for iterations, ``3 (1m30s of 5m)`` for a duration."""
        if self.iterations is not None:
            return f"{looks}/{self.iterations}"
        elapsed = 0.0 if started is None else now - started
        return f"{looks} ({format_duration(elapsed)} of {format_duration(self.duration_s or 0.0)})"


@dataclass(frozen=True)
class Preview:
    """``preview``: green gets a copy of live traffic (``mirror``) and/or the requests matching ``match``."""

    mirror: bool = False
    mirror_weight: int = 100
    match: tuple[Mapping[str, Any], ...] = ()

    @property
    def routes_traffic(self) -> bool:
        return self.mirror or bool(self.match)


@dataclass(frozen=True)
class AutoPromotion:
    """``autoPromotion``: switch ``after_s`` after the pre-promotion analysis passed, or wait for a person."""

    enabled: bool = True
    after_s: float = 0.0


@dataclass(frozen=True)
class BlueGreenSpec:
    """A whole BlueGreen spec. ``canary`` is the Canary-shaped view (see module doc and :func:`canary_view`)."""

    canary: CanarySpec
    preview: Preview = Preview()
    pre_promotion: AnalysisRun | None = None
    auto_promotion: AutoPromotion = AutoPromotion()
    post_promotion: AnalysisRun | None = None
    scale_down_delay_s: float = DEFAULT_SCALE_DOWN_DELAY_S

    @property
    def target(self) -> str:
        return self.canary.target_ref.name


def canary_view(spec: BlueGreenSpec) -> CanarySpec:
    """The Canary-shaped view used by the router, the looks and the act/gather code."""
    return spec.canary


def _run(raw: Mapping[str, Any] | None) -> AnalysisRun | None:
    if raw is None:
        return None
    duration = raw.get("duration")
    iterations = raw.get("iterations")
    return AnalysisRun(
        iterations=None if iterations is None else int(iterations),
        duration_s=None if duration is None else parse_duration(str(duration)),
    )


def parse_bluegreen_spec(spec: Mapping[str, Any]) -> BlueGreenSpec:
    """Build the typed spec from a validated ``spec`` mapping, filling the CRD's defaults."""
    preview_raw = spec.get("preview") or {}
    match = tuple(preview_raw.get("match") or ())
    mirror = bool(preview_raw.get("mirror", False))
    weight = preview_raw.get("mirrorWeight")
    base = parse_canary_spec(
        {
            key: spec[key]
            for key in ("targetRef", "service", "progressDeadlineSeconds", "revertOnDeletion", "suspend", "provider")
            if key in spec
        }
        | ({"metricsServer": spec["metricsServer"]} if "metricsServer" in spec else {})
    )
    analysis = replace(
        parse_analysis(spec.get("analysis") or {}),
        match=match,
        mirror=mirror,
        mirror_weight=None if weight is None else int(weight),
    )
    auto = spec.get("autoPromotion") or {}
    return BlueGreenSpec(
        canary=replace(base, analysis=analysis),
        preview=Preview(mirror=mirror, mirror_weight=100 if weight is None else int(weight), match=match),
        pre_promotion=_run(spec.get("prePromotionAnalysis")),
        auto_promotion=AutoPromotion(
            enabled=bool(auto.get("enabled", True)), after_s=float(auto.get("afterSeconds", 0) or 0)
        ),
        post_promotion=_run(spec.get("postPromotionAnalysis")),
        scale_down_delay_s=float(spec.get("scaleDownDelaySeconds", DEFAULT_SCALE_DOWN_DELAY_S)),
    )


def parse_valid_bluegreen(document: Mapping[str, Any]) -> BlueGreenSpec:
    """Validate a BlueGreen document and return its typed spec; raise :class:`InvalidSpecError` if anything is
    wrong (every problem named), exactly as :func:`~controller.rollout.validation.parse_valid_canary` does."""
    report = validate_document(document)
    if report.kind != "BlueGreen":
        raise InvalidSpecError((Problem("kind", f"must be BlueGreen (got {document.get('kind')!r})"),))
    if report.problems:
        raise InvalidSpecError(report.problems)
    return parse_bluegreen_spec(_normalised_spec(document["spec"]))
