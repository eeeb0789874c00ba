"""The sandbox's picture: canary weight, each arm's error rate and the judge's evidence over the run (a PNG).

Three panels on one time axis (seconds since the sandbox started), with a dashed line at each release:

1. the canary weight the mesh was given (the VirtualService), sampled every half second;
2. each arm's 5xx ratio as the real Prometheus computed it (10 s windows);
3. the judge's running evidence for each comparison metric: the log e-value (rejects at ``ln(1/alpha)``) and the
   p-value (rejects below alpha).

Matplotlib's ``Agg`` backend: no display needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from e2e.sandbox.observe import Sample


def draw(
    path: Path,
    samples: Sequence[Sample],
    rates: Mapping[str, Sequence[tuple[float, float]]],
    releases: Sequence[tuple[float, str]],
    *,
    epoch_zero: float,
    alpha: float = 0.01,
    title: str = "Coalmine sandbox",
) -> Path:
    """Write the PNG to ``path`` (parents created) and return it. ``rates`` are in epoch seconds, shifted by
    ``epoch_zero`` onto the samples' axis; ``releases`` are (seconds, label)."""
    figure, (weights, errors, evidence) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    times = [s.t for s in samples]
    weights.step(times, [s.mesh_weight or 0 for s in samples], where="post", color="tab:orange", label="canary")
    weights.set_ylabel("canary weight (%)")
    weights.set_ylim(-5, 105)
    for workload, points in sorted(rates.items()):
        arm = "canary" if not workload.endswith("-primary") else "primary"
        errors.plot([t - epoch_zero for t, _ in points], [100 * v for _, v in points], label=f"{arm} ({workload})")
    errors.set_ylabel("5xx (% of requests, 10 s)")
    metrics = sorted({name for s in samples for name in s.evidence})
    p_axis = evidence.twinx()
    for index, name in enumerate(metrics):
        color = f"C{index}"
        history = [(s.t, s.evidence[name]) for s in samples if name in s.evidence]
        evidence.plot(
            [t for t, _ in history],
            [p.log_e_value if p.log_e_value is not None else math.nan for _, p in history],
            color=color,
            drawstyle="steps-post",  # evidence changes at looks; it does not drift in between
            label=f"{name}: log e-value",
        )
        p_axis.plot(
            [t for t, _ in history],
            [max(p.p_value, 1e-12) if p.p_value is not None else math.nan for _, p in history],
            color=color,
            linestyle=":",
            drawstyle="steps-post",
            label=f"{name}: p-value",
        )
    evidence.axhline(math.log(1 / alpha), color="grey", linestyle="--", linewidth=0.8, label="ln(1/alpha)")
    evidence.set_ylabel("log e-value")
    p_axis.set_yscale("log")
    p_axis.set_ylim(1e-6, 1.5)
    p_axis.set_ylabel("p-value (dotted)")
    evidence.set_xlabel("seconds since start")
    for axis in (weights, errors, evidence):
        for t, label in releases:
            axis.axvline(t, color="black", linestyle="--", linewidth=0.7)
            if axis is weights:
                axis.annotate(label, (t, 100), xytext=(3, -12), textcoords="offset points", fontsize=8)
        axis.grid(alpha=0.3)
    for axis in (weights, errors):
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="upper left", fontsize=8)
    handles, labels = evidence.get_legend_handles_labels()
    more_handles, more_labels = p_axis.get_legend_handles_labels()
    if handles or more_handles:
        evidence.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
