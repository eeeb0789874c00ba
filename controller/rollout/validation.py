"""Validate a Coalmine (or Flagger) document before anything acts on it: schema, unknown fields, semantic rules.

One entry point serves both users and the operator: ``coalmine validate`` prints a :class:`ValidationReport`, and
the operator calls :func:`parse_valid_canary`, which refuses an invalid spec with every problem named instead of
running a rollout on guessed values.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.rollout.bluegreen_rules import check_bluegreen
from controller.rollout.canary_rules import check_canary
from controller.rollout.gatewayapi_translate import spec_problems
from controller.rollout.istio_rules import check_istio_fields
from controller.rollout.problems import Findings, Problem, check_object_name, mapping
from controller.rollout.provider_rules import GATEWAY_API, check_provider, effective_provider
from controller.rollout.resource_rules import TEMPLATE_VARIABLES, check_alert_provider, check_metric_template
from controller.rollout.schema_check import check_schema
from controller.rollout.spec import CanarySpec, parse_canary_spec

__all__ = [
    "COALMINE_API_VERSION",
    "FLAGGER_API_VERSION",
    "KINDS",
    "TEMPLATE_VARIABLES",
    "InvalidSpecError",
    "Problem",
    "ValidationReport",
    "is_checked_document",
    "parse_valid_canary",
    "validate_document",
]

COALMINE_API_VERSION = "coalmine.dev/v1alpha1"
FLAGGER_API_VERSION = "flagger.app/v1beta1"
KINDS = ("Canary", "MetricTemplate", "AlertProvider", "BlueGreen")
_GROUPS = {"coalmine.dev": COALMINE_API_VERSION, "flagger.app": FLAGGER_API_VERSION}
_RULES: Mapping[str, Callable[[Mapping[str, Any], Findings], None]] = {
    "Canary": check_canary,
    "MetricTemplate": check_metric_template,
    "AlertProvider": check_alert_provider,
    "BlueGreen": check_bluegreen,
}


@dataclass(frozen=True)
class ValidationReport:
    """The verdict on one document. ``flagger`` is true for a ``flagger.app/v1beta1`` document Coalmine accepts."""

    kind: str
    name: str
    flagger: bool
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems


class InvalidSpecError(ValueError):
    """A document failed validation; ``problems`` names every field that is wrong."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{problem.path}: {problem.message}" for problem in problems))


def _group(document: Mapping[str, Any]) -> str:
    api_version = document.get("apiVersion")
    return api_version.split("/", 1)[0] if isinstance(api_version, str) else ""


def is_checked_document(document: Any) -> bool:
    """True for documents of the ``coalmine.dev`` or ``flagger.app`` groups; tools skip everything else."""
    return isinstance(document, Mapping) and _group(document) in _GROUPS


def validate_document(document: Mapping[str, Any]) -> ValidationReport:
    """Check one parsed manifest and report every problem found (never raises on bad input)."""
    out = Findings()
    kind = document.get("kind") if isinstance(document.get("kind"), str) else ""
    name = mapping(document.get("metadata")).get("name")
    name = name if isinstance(name, str) else ""
    api_version = document.get("apiVersion")
    group = _group(document)
    flagger = group == "flagger.app"
    if group not in _GROUPS:
        out.problem(
            "apiVersion",
            f"must be {COALMINE_API_VERSION} (or Flagger's {FLAGGER_API_VERSION}) (got {api_version!r})",
        )
    elif api_version != _GROUPS[group]:
        out.problem("apiVersion", f"must be {_GROUPS[group]} (got {api_version!r})")
    if kind not in KINDS:
        out.problem("kind", f"must be one of: {', '.join(KINDS)} (got {document.get('kind')!r})")
        return ValidationReport(str(kind), name, flagger, tuple(out.problems), tuple(out.warnings))
    check_object_name(mapping(document.get("metadata")).get("name"), "metadata.name", out)
    # The schema is checked with our apiVersion so a Flagger document is judged exactly like its Coalmine twin.
    check_schema(kind, {**document, "apiVersion": COALMINE_API_VERSION}, out)
    _RULES[kind](document, out)
    if kind in ("Canary", "BlueGreen"):  # the kinds whose fields a router copies into its objects
        spec = mapping(document.get("spec"))
        provider = effective_provider(spec)
        analysis_key = "canaryAnalysis" if "canaryAnalysis" in spec and "analysis" not in spec else "analysis"
        check_provider(spec, analysis_key, out)
        if provider in GATEWAY_API:
            if not out.problems:  # the typed spec exists only for a document that passed everything else
                out.problems.extend(_gateway_api_problems(kind, spec))
        else:
            check_istio_fields(kind, document, out)
    return ValidationReport(kind, name, flagger, tuple(out.problems), tuple(out.warnings))


def _gateway_api_problems(kind: str, spec: Mapping[str, Any]) -> list[Problem]:
    """What an HTTPRoute (Gateway API standard channel) cannot carry of this Canary's or BlueGreen's routing."""
    if kind == "BlueGreen":
        from controller.rollout.bluegreen_spec import parse_bluegreen_spec  # it imports this module

        canary = parse_bluegreen_spec(_normalised_spec(spec)).canary
    else:
        canary = parse_canary_spec(_normalised_spec(spec))
    return spec_problems(canary)


def _normalised_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Drop Flagger's empty-string enum values (``type: ""``, ``severity: ""``), which mean "the default"."""
    result = copy.deepcopy(dict(spec))
    for key in ("analysis", "canaryAnalysis"):
        analysis = result.get(key)
        if not isinstance(analysis, dict):
            continue
        for entries, field in (("webhooks", "type"), ("alerts", "severity")):
            for entry in analysis.get(entries) or ():
                if entry.get(field) == "":
                    del entry[field]
    return result


def parse_valid_canary(document: Mapping[str, Any]) -> CanarySpec:
    """Validate a Canary document and return its typed spec; raise :class:`InvalidSpecError` if anything is wrong."""
    report = validate_document(document)
    if report.kind != "Canary":
        raise InvalidSpecError((Problem("kind", f"must be Canary (got {document.get('kind')!r})"),))
    if report.problems:
        raise InvalidSpecError(report.problems)
    return parse_canary_spec(_normalised_spec(document["spec"]))
