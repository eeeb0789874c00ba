"""The sandbox's picture, drawn from a synthetic run (no sandbox, no Prometheus): what a reader must be able to see.

* each release's outcome is written on the chart ("promoted", "rolled back") at its decision;
* no legend covers an outcome label (or another legend), and no label runs out of its panel — the run ends at
  the last decision, so that label sits at the right edge, next to the legends;
* an arm has one colour in every panel, and nothing else uses an arm's colour;
* the threshold lines are where the decision is taken: the judge's at log e-value ln(M/alpha), which is p-value
  alpha/M on the aligned p axis (M comparisons share alpha), and the threshold check's 5xx limit, all read from
  the sandbox's Canary.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

from e2e.sandbox import chart, manifests
from e2e.sandbox.chart import ReleaseMark, Thresholds, render
from e2e.sandbox.observe import MetricPoint, Sample

EPOCH = 1_800_000_000.0
RELEASES = (
    ReleaseMark(10.0, "6.7.1", decided_t=45.0, phase="Succeeded"),
    ReleaseMark(60.0, "6.7.2", decided_t=85.0, phase="Failed"),
)
THRESHOLDS = Thresholds.of_canary(manifests.canary("test", "podinfo", manifests.Timing()))


def weight_at(t: float) -> int:
    """10 → 50 % in 6 s steps after each release, back to 0 at the decision."""
    for mark in RELEASES:
        assert mark.decided_t is not None
        if mark.t <= t < mark.decided_t:
            return min(50, 10 * (1 + int((t - mark.t) // 6)))
    return 0


def sample_at(t: float) -> Sample:
    faulty = RELEASES[1].t <= t
    log_e = min(6.0, 0.2 * (t - RELEASES[1].t)) if faulty else 0.3
    evidence = {
        "error-rate": MetricPoint(min(1.0, math.exp(-log_e)), log_e, "rejected" if log_e >= 5.3 else "pass"),
        "latency": MetricPoint(0.8, 0.2, "pass"),
    }
    return Sample(t, "Progressing", weight_at(t) * 10 // 10, weight_at(t), "", evidence, "abc", "r1")


@pytest.fixture
def figure() -> Figure:
    samples = [sample_at(i / 2) for i in range(0, 172)]  # the sandbox stops sampling at the last decision (85 s)
    rates = {
        "podinfo": [(EPOCH + t, 0.1 if t >= 60 else 0.005) for t in range(0, 86)],
        "podinfo-primary": [(EPOCH + t, 0.005) for t in range(0, 86)],
    }
    figure = render(samples, rates, RELEASES, epoch_zero=EPOCH, thresholds=THRESHOLDS, title="test")
    figure.canvas.draw()
    return figure


def lines(figure: Figure) -> list[Line2D]:
    return [line for axis in figure.axes for line in axis.get_lines()]


def xs(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata())]


def ys(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata())]


def annotation(figure: Figure, text: str) -> Annotation:
    found = [a for axis in figure.axes for a in axis.texts if isinstance(a, Annotation) and a.get_text() == text]
    assert len(found) == 1, [a.get_text() for axis in figure.axes for a in axis.texts]
    return found[0]


def test_each_release_is_labelled_with_its_outcome_at_its_decision(figure: Figure) -> None:
    promoted, rolled_back = annotation(figure, "6.7.1 promoted"), annotation(figure, "6.7.2 rolled back")
    assert promoted.xy[0] == 45.0 and rolled_back.xy[0] == 85.0
    assert to_rgba(promoted.get_color()) != to_rgba(rolled_back.get_color())
    # and a decision line in the label's colour at each decision, in every panel
    for label, t in ((promoted, 45.0), (rolled_back, 85.0)):
        at_decision = [line for line in lines(figure) if xs(line) == [t, t]]
        assert {to_rgba(line.get_color()) for line in at_decision} == {to_rgba(label.get_color())}
        assert len(at_decision) == 3


def test_no_legend_covers_an_outcome_label_or_another_legend(figure: Figure) -> None:
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    legends = [legend for axis in figure.axes if (legend := axis.get_legend()) is not None]
    assert len(legends) == 3  # weights, error rates, evidence
    labels = [annotation(figure, "6.7.1 promoted"), annotation(figure, "6.7.2 rolled back")]
    label_boxes = [label.get_window_extent(renderer) for label in labels]
    legend_boxes = [legend.get_window_extent(renderer) for legend in legends]
    for legend_box in legend_boxes:
        assert not any(legend_box.overlaps(box) for box in label_boxes), (legend_box, label_boxes)
    for index, box in enumerate(legend_boxes):
        assert not any(box.overlaps(other) for other in legend_boxes[index + 1 :])
    assert not label_boxes[0].overlaps(label_boxes[1])
    weights = figure.axes[0].get_window_extent(renderer)
    assert all(weights.x0 <= box.x0 and box.x1 <= weights.x1 for box in label_boxes), (label_boxes, weights)
    # and every legend is inside the picture (not cut off at its right edge)
    picture = figure.bbox
    assert all(picture.x0 <= box.x0 and box.x1 <= picture.x1 for box in legend_boxes), (legend_boxes, picture)


def test_an_arm_has_one_colour_in_every_panel_and_nothing_else_uses_it(figure: Figure) -> None:
    weights, errors = figure.axes[0], figure.axes[1]
    colours: dict[str, set[tuple[float, ...]]] = {"canary": set(), "primary": set()}
    for axis in (weights, errors):
        found = {line.get_gid(): to_rgba(line.get_color()) for line in axis.get_lines() if line.get_gid()}
        for arm in colours:
            assert f"arm:{arm}" in found, (axis.get_ylabel(), found)
            colours[arm].add(found[f"arm:{arm}"])
    assert len(colours["canary"]) == 1 and len(colours["primary"]) == 1
    assert colours["canary"] != colours["primary"]
    arm_colours = colours["canary"] | colours["primary"]
    others = [line for line in lines(figure) if not str(line.get_gid() or "").startswith("arm:")]
    assert others and not [line.get_label() for line in others if to_rgba(line.get_color()) in arm_colours]


def test_the_thresholds_are_the_lines_the_sandbox_canary_decides_at(figure: Figure) -> None:
    # the sandbox's Canary: alpha 0.01 over two comparisons (error rate, latency), success rate ≥ 80 %
    assert (THRESHOLDS.alpha, THRESHOLDS.comparisons, THRESHOLDS.max_error_percent) == (0.01, 2, 20.0)
    by_gid = {line.get_gid(): line for line in lines(figure) if str(line.get_gid() or "").startswith("threshold:")}
    assert set(by_gid) == {"threshold:judge", "threshold:errors"}
    judge = by_gid["threshold:judge"]
    assert ys(judge) == pytest.approx([math.log(200)] * 2)
    assert ys(by_gid["threshold:errors"]) == pytest.approx([20.0] * 2)
    assert by_gid["threshold:errors"].axes is figure.axes[1]
    # the p-value axis is aligned so that the same line is p = 0.005 (the rollback message's "p = … < 0.005")
    evidence = figure.axes[2]
    p_axis = next(axis for axis in figure.axes[3:] if axis.get_yscale() == "log")
    assert judge.axes is evidence
    line_y = evidence.transData.transform((0, math.log(200)))[1]
    assert p_axis.transData.transform((0, 0.005))[1] == pytest.approx(line_y, abs=0.5)
    assert p_axis.transData.transform((0, math.exp(-1.0)))[1] == pytest.approx(
        evidence.transData.transform((0, 1.0))[1], abs=0.5
    )
    assert "0.005" in str(judge.get_label()) and "5.30" in str(judge.get_label())


def test_draw_writes_the_png(tmp_path: Path) -> None:
    path = chart.draw(
        tmp_path / "nested" / "sandbox.png", [sample_at(t) for t in range(100)], {}, RELEASES, epoch_zero=EPOCH
    )
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
