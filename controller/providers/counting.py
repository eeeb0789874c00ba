"""How a look counts requests: per-series differences of the scraped cumulative counters, pure arithmetic.

Why not ``increase(x[interval])``: with a 30 s scrape interval and a 30 s analysis interval most windows hold one
sample of a series, and ``increase`` over one sample is nothing. Every look then reads "no canary requests".

What a look counts instead, for each series (one pod, one response code, one ``le``):

- the **baseline** is the series' last sample at or before the look's start (``last_over_time`` over
  :data:`BASELINE_LOOKBACK_S`), and the **window samples** are its samples in ``(start, end]``;
- the count is the sum of the steps from the baseline through the window samples. A step down is a counter reset
  (the pod restarted): the new value is all new requests. A series without a baseline was born in the window
  (a new pod, a first 5xx): its first value is all new requests. A series without window samples (a pod gone, or
  idle since before the window) counts nothing.

Consecutive looks share their boundary instant, so the sample that ends one look is the baseline of the next: every
scraped increment is counted in exactly one look, the one during which it was scraped. No extrapolation, so the
counts are whole numbers of requests.

**Error bound.** Requests are attributed to the look in which they were scraped: at most one scrape interval (plus
:data:`SETTLE_S`) late, never counted twice. They are lost only in two cases: requests a pod served between its last
scrape and its end (they were never exported), and the part before a reset when a pod restarts and serves more
than once between two scrapes. A series not scraped for longer than :data:`BASELINE_LOOKBACK_S` and then seen
again is read as new (its whole value counted once).

**Boundaries are read** :data:`SETTLE_S` **in the past.** Prometheus stamps a sample with the time the scrape
*started* and makes it visible when the scrape *ends* (up to the scrape timeout, 10 s by default). A look that read
its end at the wall-clock instant could miss a sample stamped just before it, which the next look would then take
as its baseline: lost. Reading both boundaries ``SETTLE_S`` earlier keeps them consistent between looks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

Labels = Mapping[str, str]
SeriesKey = frozenset[tuple[str, str]]

SETTLE_S = 10.0
"""How far behind the look's instants its count boundaries are read (Prometheus' default scrape timeout)."""

BASELINE_LOOKBACK_S = 3600.0
"""How far before a look's start its baseline sample is searched for. A series with no sample in that hour is new."""


@dataclass(frozen=True)
class Series:
    """One series' labels (without ``__name__``) and its samples' values, oldest first."""

    labels: Labels
    values: Sequence[float]

    @property
    def key(self) -> SeriesKey:
        return series_key(self.labels)


class SharedSeries(list[Series]):
    """One answer shared by every look that asked the same batched query (:mod:`controller.providers.shared`).

    A namespace-wide answer holds every workload's series, and each look needs only its two arms': :meth:`having`
    selects them through an index by one label, built on first use, instead of each of the namespace's looks
    scanning every series. Nobody changes a shared answer.
    """

    def __init__(self, items: Iterable[Series] = ()) -> None:
        super().__init__(items)
        self._index: dict[str, dict[str, list[Series]]] = {}

    def having(self, label: str, values: Iterable[str]) -> list[Series]:
        """The series whose ``label`` is one of ``values``."""
        index = self._index.get(label)
        if index is None:
            index = self._index[label] = {}
            for series in self:
                index.setdefault(series.labels.get(label, ""), []).append(series)
        return [series for value in values for series in index.get(value, ())]


def series_key(labels: Labels) -> SeriesKey:
    """A series' identity: its labels without the metric name (``last_over_time`` drops the name)."""
    return frozenset((name, value) for name, value in labels.items() if name != "__name__")


def count_between(baseline: float | None, values: Iterable[float]) -> float:
    """New requests in one series from its baseline through its window samples (see the module doc).

    ``baseline`` None: the series was born in the window and counts from zero. A value below the previous one is a
    counter reset: the value itself is new.
    """
    previous = 0.0 if baseline is None else baseline
    total = 0.0
    for value in values:
        total += value if value < previous else value - previous
        previous = value
    return total


def counts_by(
    baselines: Iterable[Series],
    window: Iterable[Series],
    group: Callable[[Labels], str | None],
) -> dict[str, float]:
    """Per group (e.g. per ``destination_workload``), the sum of :func:`count_between` over its series.

    ``group`` maps a series' labels to its group, or None to leave the series out (e.g. non-5xx codes when
    counting errors). A group with window samples appears even when it counted zero.
    """
    known: dict[SeriesKey, float] = {}
    for series in baselines:
        if series.values:
            known[series.key] = series.values[-1]
    totals: dict[str, float] = {}
    for series in window:
        name = group(series.labels)
        if name is None:
            continue
        totals[name] = totals.get(name, 0.0) + count_between(known.get(series.key), series.values)
    return totals


def boundaries(start: float, end: float, settle_s: float = SETTLE_S) -> tuple[float, float]:
    """The instants a look over ``(start, end]`` reads its counters at."""
    return start - settle_s, end - settle_s
