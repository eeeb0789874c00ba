"""``coalmine validate --scrape-interval``: warn about intervals the Prometheus scrape interval cannot serve.

Pure: a document and the scrape interval in, warnings (path, message) out. Only warnings, because the manifest is
valid; whether the numbers work depends on the Prometheus it will be read from, which only the user knows.

- ``spec.analysis.interval`` shorter than the scrape interval: most looks hold no new scrape, so they see no new
  requests and read as no data (the counts are never lost, only late; see docs/metrics.md).
- a built-in metric's ``interval`` shorter than two scrape intervals: Flagger's ``rate(...[interval])`` needs two
  samples in its window, so the metric has no value in most looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.rollout.durations import DurationError, format_duration, parse_duration

KINDS = ("Canary", "BlueGreen")
BUILTINS = ("request-success-rate", "request-duration")  # Flagger's rate(...[interval]) queries
DEFAULT_INTERVAL = "1m"  # Flagger's default for analysis.interval and for a metric's interval


def _seconds(value: Any) -> float | None:
    try:
        return parse_duration(value)
    except DurationError:
        return None  # the validator reports a bad duration; nothing to compare here


def scrape_interval_warnings(document: Any, scrape_s: float) -> list[dict[str, str]]:
    """Warnings for a Canary or BlueGreen whose intervals are too short for a ``scrape_s`` scrape interval."""
    if not isinstance(document, Mapping) or document.get("kind") not in KINDS:
        return []
    spec = document.get("spec")
    analysis = spec.get("analysis") if isinstance(spec, Mapping) else None
    if not isinstance(analysis, Mapping):
        return []
    scrape = format_duration(scrape_s)
    warnings: list[dict[str, str]] = []
    interval = _seconds(analysis.get("interval", DEFAULT_INTERVAL))
    if interval is not None and interval < scrape_s:
        warnings.append(
            {
                "path": "spec.analysis.interval",
                "message": f"{format_duration(interval)} is shorter than the scrape interval {scrape}: most looks "
                "will see no new scrape and read as no data; use an interval of at least the scrape interval",
            }
        )
    metrics = analysis.get("metrics")
    for index, metric in enumerate(metrics if isinstance(metrics, list) else []):
        if not isinstance(metric, Mapping) or metric.get("name") not in BUILTINS:
            continue
        if metric.get("templateRef") is not None or metric.get("query") is not None:
            continue
        window = _seconds(metric.get("interval", DEFAULT_INTERVAL))
        if window is not None and window < 2 * scrape_s:
            warnings.append(
                {
                    "path": f"spec.analysis.metrics[{index}].interval",
                    "message": f"{format_duration(window)} is shorter than two scrape intervals ({scrape} each): "
                    "rate() over it needs two samples, so the metric will often have no value",
                }
            )
    return warnings
