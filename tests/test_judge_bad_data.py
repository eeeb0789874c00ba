"""Bad data from Prometheus is a failed check: never a crash (loop), never evidence, never a promotion.

Found under attack: a canary arm reading ``+Inf`` requests crashed the judge (ZeroDivisionError) on every tick, and
``1e308`` requests or ``+Inf`` errors made a look *pass, promotable*. A threshold metric of ``+Inf`` passed a
``min`` bound.
"""

from __future__ import annotations

import math
import warnings

import pytest

from analysis.judge import MAX_LOOK_COUNT, judge
from analysis.policy import JudgePolicy, RateComparison, ThresholdMetric
from analysis.samples import ArmCounts, Look, ThresholdValue
from analysis.verdict import Outcome

POLICY = JudgePolicy(error_rate=RateComparison(theta0=1.0), min_requests=10)
PRIMARY = ArmCounts(requests=1000, errors=1)


@pytest.mark.parametrize(
    "canary",
    [
        ArmCounts(requests=math.inf),
        ArmCounts(requests=100, errors=math.nan),
        ArmCounts(requests=1e308, errors=1e308),
        ArmCounts(requests=MAX_LOOK_COUNT * 10),
        ArmCounts(requests=-300),
        ArmCounts(requests=100, errors=math.inf),
        ArmCounts(requests=100, errors=-1),
        ArmCounts(requests=100, errors=200),
        ArmCounts(requests=100, slow=math.inf),
    ],
    ids=repr,
)
def test_impossible_counts_fail_the_look_and_leave_the_evidence_alone(canary: ArmCounts) -> None:
    earlier = judge(POLICY, Look(start=0, end=30, canary=ArmCounts(requests=500, errors=1), primary=PRIMARY), {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way either
        verdict = judge(POLICY, Look(start=30, end=60, canary=canary, primary=PRIMARY), earlier.state)
    assert verdict.outcome is Outcome.FAIL and not verdict.promotable
    assert "bad data from the metrics provider" in verdict.reason
    assert verdict.state == earlier.state, "bad data never becomes evidence"


def test_bad_primary_counts_are_bad_data_too() -> None:
    verdict = judge(
        POLICY, Look(start=0, end=30, canary=ArmCounts(requests=50), primary=ArmCounts(requests=math.inf)), {}
    )
    assert verdict.outcome is Outcome.FAIL and "primary requests = inf" in verdict.reason


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_a_non_finite_threshold_value_fails_instead_of_passing_a_bound(value: float) -> None:
    policy = JudgePolicy(thresholds=(ThresholdMetric("request-success-rate", minimum=99.0),))
    look = Look(start=0, end=30, thresholds={"request-success-rate": ThresholdValue(value=value)})
    verdict = judge(policy, look, {})
    assert verdict.outcome is Outcome.FAIL and "not a finite number" in verdict.reason


def test_real_counts_still_judge_as_before() -> None:
    verdict = judge(POLICY, Look(start=0, end=30, canary=ArmCounts(requests=100, errors=0), primary=PRIMARY), {})
    assert verdict.outcome is Outcome.PASS
