"""Semantic rules for MetricTemplate and AlertProvider: reachable URLs and a query template that will render."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from analysis.template_render import TemplateError, placeholders
from controller.rollout.problems import Findings, check_http_url, mapping

# What a MetricTemplate query may contain between {{ }}, exactly what the Prometheus provider renders (Flagger's
# syntax): anything else would fail at query time, mid-rollout, so it is rejected here.
TEMPLATE_VARIABLES = frozenset({"name", "namespace", "target", "service", "interval"})
_VARIABLE = re.compile(r"variables\.[A-Za-z_][A-Za-z0-9_]*")


def check_metric_template(document: Mapping[str, Any], out: Findings) -> None:
    """A MetricTemplate needs a reachable provider address (if given) and a query whose placeholders are known."""
    spec = mapping(document.get("spec"))
    provider = mapping(spec.get("provider"))
    address = provider.get("address")
    check_http_url(address, "spec.provider.address", out)
    if provider.get("secretRef") is not None and not address:
        out.problem(
            "spec.provider.address",
            "is required when secretRef is set: the credentials are only sent to the address configured beside "
            "them, never to a Canary's metricsServer",
        )
    if provider.get("insecureSkipVerify") is True and isinstance(address, str) and address.startswith("http://"):
        out.warn("spec.provider.insecureSkipVerify", "has no effect on an http:// address")
    query = spec.get("query")
    if isinstance(query, str):
        _check_query(query, out)


def _check_query(query: str, out: Findings) -> None:
    try:
        expressions = placeholders(query)  # one linear scan: a hostile query cannot stall validate
    except TemplateError:
        out.problem("spec.query", "has an unclosed {{; each placeholder is written {{ name }}")
        return
    for expression in expressions:
        if expression not in TEMPLATE_VARIABLES and not _VARIABLE.fullmatch(expression):
            allowed = ", ".join(sorted(TEMPLATE_VARIABLES))
            shown = expression if len(expression) <= 60 else expression[:59] + "…"
            out.problem(
                "spec.query",
                f"unsupported placeholder {{{{ {shown} }}}}; use {allowed} or variables.NAME "
                "(set by the Canary metric's templateVariables)",
            )
            return


def check_alert_provider(document: Mapping[str, Any], out: Findings) -> None:
    """An AlertProvider must know where to post: an address, or a Secret holding one."""
    spec = mapping(document.get("spec"))
    check_http_url(spec.get("address"), "spec.address", out)
    check_http_url(spec.get("proxy"), "spec.proxy", out)
    if spec and spec.get("address") is None and spec.get("secretRef") is None:
        out.problem("spec.address", "is required unless secretRef names a Secret with an address key")
