"""The operator process must not load scipy: ~70 MB of RSS per replica (issue #4's memory goal) that it never uses.

scipy stays a dependency for the classic Mann-Whitney comparison, the benchmarks and the tests, so nothing but an
import can tell the difference: a module-level ``from scipy...`` on the operator's import path (the judge, the policy,
the sequential tests) would pass every other test. These tests start a fresh interpreter, do what ``coalmine run``
does at start-up and at every look, and read ``sys.modules``. The numpy ``xlogy`` that replaced scipy's must give the
same numbers bit for bit, or stored judge states and benchmark results would drift (numpy's own ``np.log`` does not:
it is one ulp off on ~2 % of values near 1 on AVX-512 CPUs); this module may import scipy to check that.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from scipy.special import xlogy as scipy_xlogy

from analysis.sequential import xlogy

# Runs in a fresh interpreter; prints one JSON line with the scipy modules loaded after each stage.
PROBE = textwrap.dedent(
    """
    import json, sys

    def scipy_modules():
        return sorted(name for name in sys.modules if name == "scipy" or name.startswith("scipy."))

    stages = {}
    import controller.cli.main  # the `coalmine` entry point, with `run` and every other subcommand
    import controller.operator.runtime
    from controller.operator.context import OperatorConfig

    controller.operator.runtime.build_registry(OperatorConfig())  # registers every handler, as `run` does
    stages["start-up"] = scipy_modules()

    from analysis.classic import Direction
    from analysis.judge import judge
    from analysis.policy import ComparedMetric, JudgePolicy, RateComparison, ThresholdMetric
    from analysis.samples import ArmCounts, ArmValues, Look, ThresholdValue

    policy = JudgePolicy(
        error_rate=RateComparison(theta0=1.1),
        latency=RateComparison(theta0=1.2, slow_threshold_ms=250),
        thresholds=(ThresholdMetric("success-rate", minimum=90),),
        compared=(ComparedMetric("cpu", direction=Direction.INCREASE, min_points=5),),
    )
    state, outcomes = None, []
    for k in range(8):
        look = Look(
            start=30.0 * k,
            end=30.0 * (k + 1),
            canary=ArmCounts(3000, 30 + 10 * k, 40),
            primary=ArmCounts(3000, 15, 40),
            thresholds={"success-rate": ThresholdValue(99.0)},
            compared={"cpu": ArmValues(1.0 + 0.01 * k, 1.0)},
        )
        verdict = judge(policy, look, state)  # detail=True: bounds and detectable ratio, as the operator shows
        state = json.loads(json.dumps(verdict.state))
        outcomes.append(str(verdict.outcome))
    stages["judging"] = scipy_modules()

    from analysis.classic import mann_whitney_compare

    classic = mann_whitney_compare(
        [float(v) for v in range(10, 60)], [float(v) for v in range(50)],
        direction=Direction.INCREASE, alpha=0.01, min_points=50,
    )
    stages["classic"] = scipy_modules()
    print(json.dumps({"stages": stages, "outcomes": outcomes, "classic_regressed": classic.regressed}))
    """
)


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    """One fresh interpreter for the whole module (importing kopf, kubernetes and numpy takes about a second)."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=50, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_starting_the_operator_does_not_load_scipy(probe: dict[str, Any]) -> None:
    assert probe["stages"]["start-up"] == []


def test_judging_looks_with_the_sequential_tests_does_not_load_scipy(probe: dict[str, Any]) -> None:
    assert probe["stages"]["judging"] == []
    # The looks really ran the e-process to a decision (a canary error rate 2-7× the primary's is rejected).
    assert probe["outcomes"][-1] == "rejected"


def test_a_classic_comparison_loads_scipy_when_first_used_and_still_decides(probe: dict[str, Any]) -> None:
    assert "scipy.stats" in probe["stages"]["classic"]
    assert probe["classic_regressed"] is True


def identical(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Same shape and the same bits (so −0.0 ≠ 0.0), NaN wherever the other has NaN."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    nan = np.isnan(ours)
    return (
        ours.shape == theirs.shape
        and bool(np.array_equal(nan, np.isnan(theirs)))
        and bool(np.array_equal(ours[~nan].view(np.int64), theirs[~nan].view(np.int64)))
    )


EDGES = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.0, -1.0, 5e-324, 1e-300, 1e300, 0.5, 1 + 2**-52, 3.0])


def test_xlogy_equals_scipy_on_zeros_nans_infinities_and_negatives() -> None:
    x, y = np.meshgrid(EDGES, EDGES)
    assert identical(xlogy(x, y), scipy_xlogy(x, y))
    assert identical(xlogy(0.0, 0.0), scipy_xlogy(0.0, 0.0))  # an arm with no events at a zero rate: 0, not NaN


def test_xlogy_equals_scipy_bit_for_bit_where_numpy_log_does_not() -> None:
    rng = np.random.default_rng(7)
    near_one = np.exp(rng.uniform(-0.7, 0.7, 20_000))  # θ grids; where np.log differs most
    grid = 2.0 ** (rng.integers(-64, 65, 20_000) / 8)
    counts = rng.integers(1, 10**6, 20_000) * grid + rng.integers(0, 10**6, 20_000)  # n_C·θ + n_P
    events = rng.poisson(3, 20_000).astype(float)  # many zeros
    for y in (near_one, counts):
        assert identical(xlogy(events, y), scipy_xlogy(events, y))
        # broadcasting both ways, as the judge (scalar counts) and the simulations ((runs, 1) × grid) call it
        assert identical(xlogy(events[:500, None], y[:129]), scipy_xlogy(events[:500, None], y[:129]))
        assert identical(xlogy(y[:500, None], events[:129]), scipy_xlogy(y[:500, None], events[:129]))
        assert identical(xlogy(3.0, y), scipy_xlogy(3.0, y))
