"""The sandbox's picture: each arm's weight and error rate and the judge's evidence over the run (a PNG).

Three panels on one time axis (seconds since the sandbox started). A dashed black line marks each release; a solid
line marks its decision, labelled with the outcome ("promoted" in green, "rolled back" in red):

1. the weight the mesh gives each arm (the routing object, not the status), sampled every half second;
2. each arm's 5xx ratio as the real Prometheus computed it (10 s windows), with the threshold metric's limit
   (``request-success-rate`` ≥ 80 % is 5xx ≤ 20 %);
3. the judge's running evidence for each comparison metric: the log e-value (left axis) and the always-valid
   p-value (dotted, right axis), with the line the decision is taken at. The judge splits ``alpha`` over its ``M``
   comparisons, so a metric is rejected at log e ≥ ln(M/alpha), i.e. p < alpha/M (the "p = … < 0.005" of the
   rollback message at alpha 0.01 and M = 2), not at ln(1/alpha). The p-value axis is aligned to the log e-value
   axis (p = e^−log e, small p at the top), so that one line is the threshold on both.

An arm has one colour in every panel (:data:`ARM_COLOURS`); metrics and thresholds use colours no arm uses. Every
legend sits right of its panel, outside the plotting area, so it can never cover a curve or an outcome label.
:func:`render` builds the figure (the tests inspect it); :func:`draw` writes it. Matplotlib's ``Agg`` backend: no
display needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Annotation

from e2e.sandbox.observe import Sample

ARM_COLOURS = {"canary": "tab:orange", "primary": "tab:blue"}
METRIC_COLOURS = ("tab:purple", "tab:brown", "tab:olive", "tab:cyan")
OUTCOMES = {"Succeeded": ("promoted", "tab:green"), "Failed": ("rolled back", "tab:red")}
THRESHOLD_COLOUR = "black"
LEGEND_ANCHOR = (1.09, 1.0)  # axes fraction: right of the evidence panel's second y axis and its label


@dataclass(frozen=True)
class ReleaseMark:
    """One release on the time axis: when it was released, and (once decided) when and how it ended."""

    t: float
    version: str
    decided_t: float | None = None
    phase: str = ""  # Succeeded, Failed, Timeout, or "" while undecided

    @property
    def outcome(self) -> tuple[str, str] | None:
        """The label and colour of the decision (None while undecided)."""
        if self.decided_t is None or not self.phase:
            return None
        return OUTCOMES.get(self.phase, (self.phase.lower(), "dimgrey"))


@dataclass(frozen=True)
class Thresholds:
    """The lines the Canary's decisions are taken at: the comparison's ``alpha`` shared by ``comparisons``
    metrics, and the largest 5xx share the ``request-success-rate`` check allows (None without that check)."""

    alpha: float = 0.01
    comparisons: int = 2
    max_error_percent: float | None = None

    @property
    def p_reject(self) -> float:
        """α/M: a metric is rejected when its always-valid p-value falls below this."""
        return self.alpha / max(self.comparisons, 1)

    @property
    def log_e_reject(self) -> float:
        """ln(M/α): the same decision on the log e-value scale."""
        return math.log(1.0 / self.p_reject)

    @classmethod
    def of_canary(cls, canary: Mapping[str, Any]) -> Thresholds:
        """Read the thresholds from the Canary object the sandbox applied (``spec.analysis``)."""
        analysis = (canary.get("spec") or {}).get("analysis") or {}
        comparison = analysis.get("comparison") or {}
        compared = sum(key in comparison for key in ("errorRate", "latency")) + len(comparison.get("metrics") or ())
        success = next((m for m in analysis.get("metrics") or () if m.get("name") == "request-success-rate"), None)
        lowest = ((success or {}).get("thresholdRange") or {}).get("min")
        return cls(
            alpha=float(comparison.get("alpha", 0.01)),
            comparisons=max(compared, 1),
            max_error_percent=None if lowest is None else 100.0 - float(lowest),
        )


def arm_of(workload: str) -> str:
    """``podinfo-primary`` is the primary; the target Deployment (``podinfo``) runs the canary."""
    return "primary" if workload.endswith("-primary") else "canary"


def render(
    samples: Sequence[Sample],
    rates: Mapping[str, Sequence[tuple[float, float]]],
    releases: Sequence[ReleaseMark],
    *,
    epoch_zero: float,
    thresholds: Thresholds = Thresholds(),
    title: str = "Coalmine sandbox",
) -> Figure:
    """The figure (the caller closes it). ``rates`` are in epoch seconds, shifted by ``epoch_zero`` onto the
    samples' axis; ``releases`` carry their decisions."""
    figure, (weights, errors, evidence) = plt.subplots(3, 1, figsize=(12, 9), sharex=True, layout="constrained")
    _weights(weights, samples)
    _errors(errors, rates, epoch_zero, thresholds)
    p_axis = _evidence(evidence, samples, thresholds)
    for axis in (weights, errors, evidence):
        axis.grid(alpha=0.3)
        for mark in releases:
            axis.axvline(mark.t, color="black", linestyle="--", linewidth=0.7)
            if mark.outcome is not None and mark.decided_t is not None:
                axis.axvline(mark.decided_t, color=mark.outcome[1], linewidth=1.2)
    outcome_labels = []
    for mark in releases:
        weights.annotate(
            mark.version, (mark.t, 108), xytext=(3, 0), textcoords="offset points", fontsize=8, va="center",
            gid=f"release:{mark.version}",
        )  # fmt: skip
        if mark.outcome is not None and mark.decided_t is not None:
            label, colour = mark.outcome
            outcome_labels.append(
                weights.annotate(
                    f"{mark.version} {label}", (mark.decided_t, 0.70), xycoords=("data", "axes fraction"),
                    xytext=(4, 0), textcoords="offset points", fontsize=9, fontweight="bold", color=colour,
                    bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": colour, "alpha": 0.9},
                    gid=f"outcome:{mark.version}",
                )
            )  # fmt: skip
    for axis in (weights, errors):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left", bbox_to_anchor=LEGEND_ANCHOR, fontsize=8, borderaxespad=0)
    handles, labels = evidence.get_legend_handles_labels()
    more_handles, more_labels = p_axis.get_legend_handles_labels()
    if handles or more_handles:
        evidence.legend(
            handles + more_handles, labels + more_labels, loc="upper left", bbox_to_anchor=LEGEND_ANCHOR,
            fontsize=7, borderaxespad=0,
        )  # fmt: skip
    evidence.set_xlabel("seconds since start")
    figure.suptitle(title)
    _keep_inside(figure, weights, outcome_labels)
    return figure


def _keep_inside(figure: Figure, axis: Axes, labels: Sequence[Annotation]) -> None:
    """An outcome label that would run past the panel's right edge (the last decision ends the run, so it sits at
    the edge) goes to the left of its decision line instead: it then cannot reach the legends beside the panel."""
    figure.canvas.draw()  # lays the figure out: the axes' final place and the labels' extents
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    right = axis.get_window_extent(renderer).x1
    for label in labels:
        if label.get_window_extent(renderer).x1 > right:
            label.set_horizontalalignment("right")
            label.xyann = (-4, 0)


def draw(
    path: Path,
    samples: Sequence[Sample],
    rates: Mapping[str, Sequence[tuple[float, float]]],
    releases: Sequence[ReleaseMark],
    *,
    epoch_zero: float,
    thresholds: Thresholds = Thresholds(),
    title: str = "Coalmine sandbox",
) -> Path:
    """Write :func:`render`'s figure to ``path`` as a PNG (parents created) and return ``path``."""
    figure = render(samples, rates, releases, epoch_zero=epoch_zero, thresholds=thresholds, title=title)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def _weights(axis: Axes, samples: Sequence[Sample]) -> None:
    """Each arm's share of the traffic: the canary's mesh weight and the primary's rest (before the routing
    object exists, all traffic is the primary's)."""
    times = [s.t for s in samples]
    canary = [s.mesh_weight or 0 for s in samples]
    axis.step(times, canary, where="post", color=ARM_COLOURS["canary"], label="canary", gid="arm:canary")
    axis.step(
        times, [100 - w for w in canary], where="post", color=ARM_COLOURS["primary"], label="primary",
        gid="arm:primary",
    )  # fmt: skip
    axis.set_ylabel("weight (% of traffic)")
    axis.set_ylim(-5, 115)  # 100-115: a band for the release labels, above the primary's 100 %


def _errors(
    axis: Axes, rates: Mapping[str, Sequence[tuple[float, float]]], epoch_zero: float, thresholds: Thresholds
) -> None:
    for workload, points in sorted(rates.items()):
        arm = arm_of(workload)
        axis.plot(
            [t - epoch_zero for t, _ in points], [100 * v for _, v in points], color=ARM_COLOURS[arm],
            label=f"{arm} ({workload})", gid=f"arm:{arm}",
        )  # fmt: skip
    if thresholds.max_error_percent is not None:
        limit = thresholds.max_error_percent
        axis.axhline(
            limit, color=THRESHOLD_COLOUR, linestyle="-.", linewidth=0.9, gid="threshold:errors",
            label=f"request-success-rate ≥ {100 - limit:g} %: 5xx ≤ {limit:g} %",
        )  # fmt: skip
    axis.set_ylabel("5xx (% of requests, 10 s)")


def _evidence(axis: Axes, samples: Sequence[Sample], thresholds: Thresholds) -> Axes:
    """The judge's evidence per metric and its two (equivalent) rejection lines; returns the p-value axis."""
    p_axis = axis.twinx()
    metrics = sorted({name for s in samples for name in s.evidence})
    for index, name in enumerate(metrics):
        colour = METRIC_COLOURS[index % len(METRIC_COLOURS)]
        history = [(s.t, s.evidence[name]) for s in samples if name in s.evidence]
        axis.plot(
            [t for t, _ in history],
            [p.log_e_value if p.log_e_value is not None else math.nan for _, p in history],
            color=colour,
            drawstyle="steps-post",  # evidence changes at looks; it does not drift in between
            label=f"{name}: log e-value",
        )
        p_axis.plot(
            [t for t, _ in history],
            [max(p.p_value, 1e-12) if p.p_value is not None else math.nan for _, p in history],
            color=colour,
            linestyle=":",
            drawstyle="steps-post",
            label=f"{name}: p-value",
        )
    m, alpha = thresholds.comparisons, thresholds.alpha
    axis.axhline(
        thresholds.log_e_reject, color=THRESHOLD_COLOUR, linestyle="--", linewidth=0.9, gid="threshold:judge",
        label=f"rejects at log e ≥ ln({m}/{alpha:g}) = {thresholds.log_e_reject:.2f}, i.e. p < {alpha:g}/{m} = "
        f"{thresholds.p_reject:g}",
    )  # fmt: skip
    # p = e^-log e: the same scale upside down, so a curve and the threshold mean the same on both axes
    values = [p.log_e_value for s in samples for p in s.evidence.values() if p.log_e_value is not None]
    low = min([-0.5, *(v - 0.3 for v in values)])
    high = max([thresholds.log_e_reject + 0.7, *(v + 0.3 for v in values)])
    axis.set_ylim(low, high)
    p_axis.set_yscale("log")
    p_axis.set_ylim(math.exp(-low), math.exp(-high))
    axis.set_ylabel("log e-value")
    p_axis.set_ylabel("p-value (dotted; p = e^−log e)")
    return p_axis
