"""Rollouts over a simulated clock through the real engine and judge: ``coalmine simulate`` and ``coalmine judge``.

Pure (no I/O): :mod:`~controller.simulation.driver` runs the engine with looks from any
:class:`~controller.simulation.driver.LookSource`; :mod:`~controller.simulation.synthetic` is the synthetic one.
The Prometheus source of the backtest lives in :mod:`controller.backtest`.
"""

from controller.simulation.driver import (
    PROMOTED,
    ROLLED_BACK,
    UNDECIDED,
    DriveOptions,
    LookSource,
    Routing,
    RunResult,
    TimelineEntry,
    drive,
    evidence_line,
    summarize,
    tick_seconds,
    timeline_json,
)
from controller.simulation.synthetic import SyntheticSource, arm_shares, simulate, simulated_bluegreen, simulated_spec

__all__ = [
    "PROMOTED",
    "ROLLED_BACK",
    "UNDECIDED",
    "DriveOptions",
    "LookSource",
    "Routing",
    "RunResult",
    "SyntheticSource",
    "TimelineEntry",
    "arm_shares",
    "drive",
    "evidence_line",
    "simulate",
    "simulated_bluegreen",
    "simulated_spec",
    "summarize",
    "tick_seconds",
    "timeline_json",
]
