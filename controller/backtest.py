"""``coalmine judge``'s look source: a past window of a real Prometheus, read exactly as the operator reads it live.

The engine and judge run over a simulated clock (:func:`controller.simulation.drive`); each due look is read with
:func:`controller.providers.looks.collect_look` at the look's end time, over the window the engine asked for. The
canary weights in a replay are the engine's hypothetical ones: the recorded traffic is what really happened, so the
backtest says what Coalmine *would have decided* on that data, and when.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from analysis.samples import Look
from controller.providers import MetricProvider
from controller.providers.confine import DEFAULT_NAMESPACE_LABELS, READS_OTHER_NAMESPACES
from controller.providers.looks import LookRequest, collect_look
from controller.providers.render import CanaryIdentity, Confinement, ProviderKey, render_canary_looks
from controller.rollout.durations import DurationError, parse_duration
from controller.rollout.judging import policy_from_spec
from controller.rollout.spec import CanarySpec, MetricSpec
from controller.simulation import Routing

__all__ = [
    "BacktestError",
    "CanaryIdentity",
    "LookPlan",
    "PrometheusLooks",
    "parse_instant",
    "plan_looks",
    "templates_from_documents",
]

TemplateKey = tuple[str, str]  # (namespace, name)


class BacktestError(ValueError):
    """The backtest cannot run as asked (a bad time, a missing MetricTemplate, a template that does not render)."""


def parse_instant(text: str, now: float) -> float:
    """Epoch seconds for ``now``, a relative ``-30m``/``-1h30m``, unix seconds, or an RFC3339 time with a zone."""
    value = text.strip()
    if value == "now":
        return now
    if value.startswith("-"):
        try:
            return now - parse_duration(value[1:])
        except DurationError as error:
            raise BacktestError(f"{text!r}: a relative time is '-' and a duration, e.g. -30m or -1h30m") from error
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(number) or number < 0:
            raise BacktestError(f"{text!r} is not a unix time")
        return number
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise BacktestError(
            f"{text!r} is not a time: use RFC3339 (2024-05-01T12:00:00Z), unix seconds, -30m or now"
        ) from error
    if parsed.tzinfo is None:
        raise BacktestError(f"{text!r} has no time zone: add Z (UTC) or an offset such as +02:00")
    return parsed.timestamp()


def templates_from_documents(documents: Sequence[Mapping[str, Any]], default_namespace: str) -> dict[TemplateKey, str]:
    """The queries of the MetricTemplates among ``documents``, keyed by (namespace, name)."""
    found: dict[TemplateKey, str] = {}
    for document in documents:
        if document.get("kind") != "MetricTemplate":
            continue
        metadata = document.get("metadata") or {}
        query = (document.get("spec") or {}).get("query")
        if not metadata.get("name") or not isinstance(query, str):
            raise BacktestError(f"MetricTemplate {metadata.get('name', '?')!r} has no name or no spec.query")
        found[(str(metadata.get("namespace") or default_namespace), str(metadata["name"]))] = query
    return found


LookPlan = LookRequest
"""Every look's request, rendered once; its window is replaced by each look's (``dataclasses.replace``)."""

_ONLY: ProviderKey = ("", "", "", False)  # a backtest reads one Prometheus: every metric is its


def granted_templates(documents: Sequence[Mapping[str, Any]], default_namespace: str) -> frozenset[TemplateKey]:
    """The MetricTemplates among ``documents`` that say they read other namespaces on purpose (the
    ``coalmine.dev/reads-other-namespaces: "true"`` annotation; honoured only for trusted namespaces)."""
    found: set[TemplateKey] = set()
    for document in documents:
        metadata = document.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        if (
            document.get("kind") == "MetricTemplate"
            and isinstance(annotations, Mapping)
            and str(annotations.get(READS_OTHER_NAMESPACES, "")).strip().lower() == "true"
        ):
            found.add((str(metadata.get("namespace") or default_namespace), str(metadata.get("name"))))
    return frozenset(found)


def plan_looks(
    spec: CanarySpec,
    identity: CanaryIdentity,
    templates: Mapping[TemplateKey, str],
    *,
    trusted: frozenset[str] = frozenset(),
    granted: frozenset[TemplateKey] = frozenset(),
    namespace_labels: Sequence[str] = (),
) -> LookPlan:
    """Render every metric's query as the operator would (:func:`~controller.providers.plan.render_canary_looks`),
    MetricTemplates from ``templates``; raises :class:`BacktestError` for a metric that cannot be rendered.

    Queries are confined to the Canary's namespace as in the operator: a template in ``granted`` may read other
    namespaces only when its namespace is in ``trusted`` (the operator's own and its
    ``--trusted-template-namespaces``)."""

    def grants(metric: MetricSpec) -> bool:
        ref = metric.template_ref
        return ref is not None and (ref.namespace or identity.namespace, ref.name) in granted

    labels = tuple(dict.fromkeys((*DEFAULT_NAMESPACE_LABELS, *namespace_labels)))
    confinement = Confinement(labels, trusted, grants)

    def template(metric: MetricSpec) -> tuple[ProviderKey, str]:
        assert metric.template_ref is not None
        key = (metric.template_ref.namespace or identity.namespace, metric.template_ref.name)
        if key not in templates:
            raise BacktestError(
                f"metric {metric.name!r} uses MetricTemplate {key[0]}/{key[1]}, which is not in the files given "
                "(pass it with --templates FILE)"
            )
        return _ONLY, templates[key]

    rendered = render_canary_looks(
        identity, spec, policy_from_spec(spec), (0.0, 1.0), template, _ONLY, confinement=confinement
    )
    if rendered.failed:
        name, error = next(iter(rendered.failed.items()))
        raise BacktestError(f"metric {name!r}: {error}")
    return rendered.requests.get(_ONLY) or LookRequest(identity.namespace, identity.target, 0.0, 1.0)


class PrometheusLooks:
    """A :class:`~controller.simulation.LookSource` reading each look from Prometheus (blocking HTTP)."""

    def __init__(self, provider: MetricProvider, identity: CanaryIdentity, plan: LookPlan) -> None:
        self.provider = provider
        self.identity = identity
        self.plan = plan

    def advance(self, start: float, end: float, routing: Routing) -> None:
        """Recorded traffic does not follow the engine's hypothetical weights: nothing to do."""

    def look(self, window: tuple[float, float]) -> Look:
        return collect_look(self.provider, dataclasses.replace(self.plan, start=window[0], end=window[1]))
