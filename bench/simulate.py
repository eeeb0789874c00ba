"""Benchmark: how fast ``coalmine simulate`` runs rollouts through the real engine and judge.

The target (issue 3): 1,000 runs of a 30-minute rollout with a 30 s interval in ≤ 30 s on one core. Each scenario
runs N seeded rollouts of a healthy release (so every run lasts the whole 30 minutes: the slowest case) and reports
wall and CPU time (the CPU time of this one process: what one core spends, even on a busy machine), per run and
per look. Prints a Markdown table (paste it into docs/simulate.md).

    .venv/bin/python bench/simulate.py              # 1,000 runs per scenario
    .venv/bin/python bench/simulate.py --runs 200   # a quicker look
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from analysis.synthetic import TrafficModel
from controller.rollout.validation import parse_valid_canary
from controller.simulation import DriveOptions, simulate

COMPARE_ERRORS = {"alpha": 0.01, "minRequests": 100, "errorRate": {"maxRelativeIncrease": 0.1}}
COMPARE_BOTH = {**COMPARE_ERRORS, "latency": {"slowThresholdMs": 250, "maxRelativeIncrease": 0.2}}
THRESHOLDS = [
    {"name": "request-success-rate", "interval": "1m", "thresholdRange": {"min": 90}},
    {"name": "request-duration", "interval": "1m", "thresholdRange": {"max": 2000}},
]
PAUSED_STEPS = [
    {"setWeight": 10},
    {"pause": {"duration": "10m"}},
    {"setWeight": 30},
    {"pause": {"duration": "10m"}},
    {"setWeight": 60},
    {"pause": {"duration": "9m"}},
]


@dataclass(frozen=True)
class Scenario:
    name: str
    analysis: dict[str, Any]


SCENARIOS = (
    Scenario(
        "stepWeight 1 → 60, error-rate comparison", {"stepWeight": 1, "maxWeight": 60, "comparison": COMPARE_ERRORS}
    ),
    Scenario(
        "stepWeight 1 → 60, errors + latency + 2 thresholds",
        {"stepWeight": 1, "maxWeight": 60, "comparison": COMPARE_BOTH, "metrics": THRESHOLDS},
    ),
    Scenario(
        "steps with 10m pauses, errors + latency + 2 thresholds",
        {"steps": PAUSED_STEPS, "comparison": COMPARE_BOTH, "metrics": THRESHOLDS},
    ),
)


def canary(analysis: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "bench"},
            "service": {"port": 80},
            "progressDeadlineSeconds": 600,
            "analysis": {"interval": "30s", "threshold": 5, **analysis},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rps", type=float, default=100.0)
    args = parser.parse_args()
    traffic = TrafficModel(rps=args.rps)
    options = DriveOptions(max_duration_s=3600, record=False)
    print(f"{args.runs} runs per scenario, healthy release, {args.rps:g} rps, 30 s interval, one core\n")
    print("| scenario | looks/run | promoted | wall time | CPU time | CPU per run | CPU per look |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        spec = parse_valid_canary(canary(scenario.analysis))
        simulate(spec, traffic, runs=3, seed=10_000, options=options)  # warm caches and imports
        started, cpu_started = time.perf_counter(), time.process_time()
        results = simulate(spec, traffic, runs=args.runs, seed=0, options=options)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        decided = [r.decision_seconds for r in results if r.decision_seconds is not None]
        looks = (sum(decided) / len(decided)) / 30 if decided else float("nan")
        promoted = sum(r.result == "promoted" for r in results)
        print(
            f"| {scenario.name} | {looks:.0f} | {promoted}/{args.runs} | {elapsed:.1f} s | {cpu:.1f} s | "
            f"{1000 * cpu / args.runs:.1f} ms | {1e6 * cpu / args.runs / looks:.0f} µs |"
        )


if __name__ == "__main__":
    main()
