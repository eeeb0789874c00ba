"""The judge's behaviour as the rollout engine and the people reading the evidence see it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pytest

from analysis.classic import Direction
from analysis.judge import ERROR_RATE, LATENCY, judge
from analysis.policy import (
    ComparedMetric,
    CompareMethod,
    JudgePolicy,
    RateComparison,
    ThresholdMetric,
)
from analysis.samples import ArmCounts, ArmValues, Look, ThresholdValue
from analysis.verdict import Outcome, Verdict
from controller.rollout.judging import policy_from_spec
from controller.rollout.spec import parse_canary_spec

ERRORS_ONLY = JudgePolicy(error_rate=RateComparison())


def look(
    canary: tuple[float, float, float] = (300, 1, 0),
    primary: tuple[float, float, float] = (300, 1, 0),
    *,
    thresholds: Mapping[str, ThresholdValue] | None = None,
    compared: Mapping[str, ArmValues] | None = None,
    counts_error: str | None = None,
) -> Look:
    return Look(
        start=0.0,
        end=30.0,
        canary=ArmCounts(*canary),
        primary=ArmCounts(*primary),
        counts_error=counts_error,
        thresholds=thresholds or {},
        compared=compared or {},
    )


def run(policy: JudgePolicy, looks: Iterable[Look], state: Mapping[str, Any] | None = None) -> list[Verdict]:
    """Judge looks in order, passing the state through JSON as the operator stores it in the Canary's status."""
    verdicts = []
    for item in looks:
        verdict = judge(policy, item, state)
        state = json.loads(json.dumps(verdict.state))
        verdicts.append(verdict)
    return verdicts


def evidence(verdict: Verdict, kind: str) -> Any:
    return next(metric for metric in verdict.metrics if metric.kind == kind)


# ------------------------------------------------------------------------------------------------ thresholds


@pytest.mark.parametrize(
    ("value", "outcome"),
    [(99.5, Outcome.PASS), (98.0, Outcome.FAIL), (100.0, Outcome.PASS), (None, Outcome.NO_DATA)],
)
def test_success_rate_threshold_has_flagger_semantics(value: float | None, outcome: Outcome) -> None:
    policy = JudgePolicy(thresholds=(ThresholdMetric("request-success-rate", minimum=99.0),))
    verdict = judge(policy, look(thresholds={"request-success-rate": ThresholdValue(value)}), None)
    assert verdict.outcome is outcome


def test_threshold_above_maximum_fails_and_names_the_value() -> None:
    policy = JudgePolicy(thresholds=(ThresholdMetric("request-duration", maximum=500.0),))
    verdict = judge(policy, look(thresholds={"request-duration": ThresholdValue(730.0)}), None)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.reason == "request-duration 730 > 500"


def test_missing_threshold_metric_is_no_data_never_a_pass() -> None:
    policy = JudgePolicy(thresholds=(ThresholdMetric("request-duration", maximum=500.0),))
    assert judge(policy, look(), None).outcome is Outcome.NO_DATA


def test_provider_error_fails_the_check_with_the_error() -> None:
    policy = JudgePolicy(thresholds=(ThresholdMetric("latency-p95", maximum=1.0),))
    failed = ThresholdValue(error="query 'histogram_quantile(...)' failed: HTTP 503")
    verdict = judge(policy, look(thresholds={"latency-p95": failed}), None)
    assert verdict.outcome is Outcome.FAIL
    assert "HTTP 503" in verdict.reason


# ------------------------------------------------------------------------------------------------ comparisons


def regression_looks(ratio: float, count: int, seed: int = 1) -> list[Look]:
    rng = np.random.default_rng(seed)
    return [
        look((300, float(rng.binomial(300, 0.005 * ratio)), 0), (300, float(rng.binomial(300, 0.005)), 0))
        for _ in range(count)
    ]


def test_a_clear_regression_is_rejected_with_a_readable_reason() -> None:
    verdicts = run(ERRORS_ONLY, regression_looks(5.0, 20))
    rejected = next(v for v in verdicts if v.outcome is Outcome.REJECTED)
    pattern = r"canary 5xx rate \d+\.\d× primary, p = [\d.e-]+ < 0\.01, after [\d,]+ canary requests"
    assert re.fullmatch(pattern, rejected.reason), rejected.reason
    error_rate = evidence(rejected, "errorRate")
    assert error_rate.p_value < 0.01
    assert error_rate.lower is not None and error_rate.lower > 1.0  # the confidence sequence excludes "no change"
    assert error_rate.canary_requests == 300 * (verdicts.index(rejected) + 1)


def test_healthy_canary_passes_and_reports_what_it_could_have_detected() -> None:
    verdicts = run(ERRORS_ONLY, regression_looks(1.0, 40, seed=2))
    assert all(v.outcome is Outcome.PASS for v in verdicts)
    assert verdicts[-1].promotable
    match = re.fullmatch(r"could have detected a (\d+\.\d)× increase in the 5xx rate", verdicts[-1].detectable)
    assert match is not None and 1.0 < float(match.group(1)) < 4.0


def test_no_verdict_before_min_requests() -> None:
    policy = JudgePolicy(error_rate=RateComparison(), min_requests=1000)
    first, second, third, fourth = run(policy, [look((300, 30, 0), (300, 1, 0))] * 4)
    for seen, early in zip((300, 600, 900), (first, second, third), strict=True):
        assert early.outcome is Outcome.NO_DATA  # nothing judged the canary: not a pass that advances a step
        assert early.reason == f"no verdict yet: error-rate: waiting for 1,000 canary requests ({seen} so far)"
        assert not early.promotable
        assert "waiting for 1,000 canary requests" in early.hold_reason
    assert fourth.outcome is Outcome.REJECTED  # the evidence gathered meanwhile counts at once


def test_a_broken_canary_below_min_requests_is_no_data_not_a_pass() -> None:
    """The reviewer's probe: 5 of 5 canary requests failed, 0 of 45 primary ones, minRequests 100."""
    verdict = judge(JudgePolicy(error_rate=RateComparison(), min_requests=100), look((5, 5, 0), (45, 0, 0)), None)
    assert verdict.outcome is Outcome.NO_DATA
    assert "waiting for 100 canary requests (5 so far)" in verdict.reason
    assert "passed" not in verdict.reason and not verdict.promotable


def test_passing_thresholds_below_min_requests_pass_but_say_the_comparison_is_still_collecting() -> None:
    policy = JudgePolicy(
        thresholds=(ThresholdMetric("request-success-rate", minimum=99.0),),
        error_rate=RateComparison(),
        min_requests=100,
    )
    values = {"request-success-rate": ThresholdValue(100.0)}
    verdict = judge(policy, look((5, 0, 0), (45, 0, 0), thresholds=values), None)
    assert verdict.outcome is Outcome.PASS and not verdict.promotable
    assert verdict.reason == (
        "1 of 2 checks passed; still collecting: error-rate: waiting for 100 canary requests (5 so far)"
    )
    enough = judge(policy, look((150, 0, 0), (450, 0, 0), thresholds=values), None)
    assert enough.reason == "all 2 checks passed" and enough.promotable


def test_zero_canary_requests_is_no_data_for_a_comparison_only_policy() -> None:
    verdict = judge(ERRORS_ONLY, look((0, 0, 0), (300, 2, 0)), None)
    assert verdict.outcome is Outcome.NO_DATA
    assert not verdict.promotable


def test_nan_counts_are_no_data_and_do_not_poison_the_state() -> None:
    (before,) = run(ERRORS_ONLY, [look()])
    verdict = judge(ERRORS_ONLY, look((float("nan"), 1, 0)), before.state)
    assert verdict.outcome is Outcome.NO_DATA
    after = judge(ERRORS_ONLY, look((300, float("nan"), 0)), before.state)
    assert json.dumps(after.state, allow_nan=False)  # still strict JSON


def test_failed_count_queries_fail_the_look_and_keep_the_state() -> None:
    (before,) = run(ERRORS_ONLY, [look()])
    after = judge(ERRORS_ONLY, look(counts_error="istio_requests_total: connection refused"), before.state)
    assert after.outcome is Outcome.FAIL
    assert "connection refused" in after.reason
    assert after.state == before.state


def test_require_evidence_holds_until_the_upper_bound_is_within_tolerance() -> None:
    policy = JudgePolicy(error_rate=RateComparison(theta0=1.5), require_evidence=True)
    verdicts = run(policy, [look((3000, 15, 0), (3000, 15, 0))] * 30)
    assert not verdicts[0].promotable
    assert "no evidence yet" in verdicts[0].hold_reason
    assert verdicts[-1].promotable, verdicts[-1].hold_reason
    upper = evidence(verdicts[-1], "errorRate").upper
    assert upper is not None and upper <= 1.5
    relaxed = run(JudgePolicy(error_rate=RateComparison(theta0=1.5)), [look((3000, 15, 0), (3000, 15, 0))])
    assert relaxed[0].promotable  # without requireEvidence, minRequests is enough


def test_state_round_trip_continues_the_same_test() -> None:
    looks = regression_looks(1.6, 30, seed=5)
    straight = []
    state: Mapping[str, Any] | None = None
    for item in looks:
        verdict = judge(ERRORS_ONLY, item, state)
        state = verdict.state  # kept in memory
        straight.append(verdict)
    restarted = run(ERRORS_ONLY, looks[:12])
    restarted += run(ERRORS_ONLY, looks[12:], json.loads(json.dumps(restarted[-1].state)))
    assert [v.to_dict() for v in restarted] == [v.to_dict() for v in straight]
    assert json.loads(json.dumps(straight[-1].state)) == straight[-1].state


def test_a_changed_tolerance_restarts_the_test() -> None:
    (strict,) = run(ERRORS_ONLY, [look((300, 9, 0), (300, 1, 0))])
    tolerant = JudgePolicy(error_rate=RateComparison(theta0=1.5))
    verdict = judge(tolerant, look((300, 9, 0), (300, 1, 0)), strict.state)
    assert evidence(verdict, "errorRate").canary_requests == 300


def test_alpha_is_shared_by_all_compared_metrics() -> None:
    both = JudgePolicy(error_rate=RateComparison(), latency=RateComparison(slow_threshold_ms=500.0))
    assert both.alpha_per_comparison == pytest.approx(0.005)
    rng = np.random.default_rng(9)
    looks = [
        look(
            (300, float(rng.binomial(300, 0.01)), float(rng.binomial(300, 0.01))),
            (300, float(rng.binomial(300, 0.005)), float(rng.binomial(300, 0.005))),
        )
        for _ in range(40)
    ]
    for verdict in run(both, looks):
        for kind in ("errorRate", "latency"):
            metric = evidence(verdict, kind)
            assert (metric.outcome is Outcome.REJECTED) == (metric.p_value < 0.005)
    rejected = [v for v in run(both, looks) if v.outcome is Outcome.REJECTED]
    assert rejected and "< 0.005" in rejected[0].reason


def test_outcome_priority_is_rejected_then_fail_then_no_data() -> None:
    policy = JudgePolicy(
        error_rate=RateComparison(),
        thresholds=(ThresholdMetric("request-success-rate", minimum=99.0), ThresholdMetric("cpu", maximum=1.0)),
    )
    failing = {"request-success-rate": ThresholdValue(90.0)}
    assert judge(policy, look((300, 60, 0), (300, 1, 0), thresholds=failing), None).outcome is Outcome.REJECTED
    assert judge(policy, look(thresholds=failing), None).outcome is Outcome.FAIL
    passing = {"request-success-rate": ThresholdValue(99.9)}
    assert judge(policy, look(thresholds=passing), None).outcome is Outcome.NO_DATA  # cpu has no value
    passing["cpu"] = ThresholdValue(0.5)
    assert judge(policy, look(thresholds=passing), None).outcome is Outcome.PASS


def test_latency_compares_slow_requests() -> None:
    policy = JudgePolicy(latency=RateComparison(slow_threshold_ms=250.0))
    verdicts = run(policy, [look((300, 0, 60), (300, 0, 15))] * 5)
    rejected = next(v for v in verdicts if v.outcome is Outcome.REJECTED)
    assert "rate of requests slower than 250 ms" in rejected.reason
    assert evidence(rejected, "latency").metric == LATENCY


# ------------------------------------------------------------------------------------------------ custom metrics


def test_msprt_rejects_a_shifted_custom_metric_after_min_points() -> None:
    metric = ComparedMetric("cpu-per-request", method=CompareMethod.MSPRT, min_points=10)
    policy = JudgePolicy(compared=(metric,))
    rng = np.random.default_rng(4)
    values = [ArmValues(float(rng.normal(1.5, 0.1)), float(rng.normal(1.0, 0.1))) for _ in range(15)]
    verdicts = run(policy, [look(compared={"cpu-per-request": value}) for value in values])
    assert all(v.outcome is Outcome.PASS and not v.promotable for v in verdicts[:9])
    assert verdicts[9].outcome is Outcome.REJECTED
    assert "cpu-per-request: canary" in verdicts[9].reason


def test_msprt_passes_an_unchanged_metric() -> None:
    metric = ComparedMetric("cpu", method=CompareMethod.MSPRT, min_points=5)
    rng = np.random.default_rng(6)
    values = [ArmValues(float(rng.normal(1.0, 0.1)), float(rng.normal(1.0, 0.1))) for _ in range(30)]
    verdicts = run(JudgePolicy(compared=(metric,)), [look(compared={"cpu": value}) for value in values])
    assert all(v.outcome is Outcome.PASS for v in verdicts)
    assert verdicts[-1].promotable


def test_mann_whitney_decides_once_at_its_horizon() -> None:
    metric = ComparedMetric("p95", method=CompareMethod.MANN_WHITNEY, direction=Direction.INCREASE, min_points=20)
    rng = np.random.default_rng(8)
    values = [ArmValues(float(rng.lognormal(0.5, 0.2)), float(rng.lognormal(0.0, 0.2))) for _ in range(25)]
    verdicts = run(JudgePolicy(compared=(metric,)), [look(compared={"p95": value}) for value in values])
    assert all(v.outcome is Outcome.PASS and "p95: waiting" in v.hold_reason for v in verdicts[:19])
    assert all(v.outcome is Outcome.REJECTED for v in verdicts[19:])
    assert "mean ratio" in verdicts[19].reason


def test_custom_metric_without_values_is_no_data_and_query_errors_fail() -> None:
    policy = JudgePolicy(compared=(ComparedMetric("cpu"),))
    assert judge(policy, look(compared={"cpu": ArmValues(1.0, None)}), None).outcome is Outcome.NO_DATA
    failed = judge(policy, look(compared={"cpu": ArmValues(error="bad query")}), None)
    assert failed.outcome is Outcome.FAIL and "bad query" in failed.reason


# ------------------------------------------------------------------------------------------------ from the spec


def test_policy_from_spec_maps_comparison_thresholds_and_compared_metrics() -> None:
    spec = parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "30s",
                "metrics": [
                    {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
                    {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"},
                    {
                        "name": "cpu",
                        "templateRef": {"name": "cpu"},
                        "comparison": {"method": "mann-whitney", "direction": "increase", "minPoints": 50},
                    },
                ],
                "comparison": {
                    "alpha": 0.02,
                    "minRequests": 500,
                    "errorRate": {"maxRelativeIncrease": 0.25},
                    "latency": {"slowThresholdMs": 250, "maxRelativeIncrease": 0.1},
                    "requireEvidence": True,
                },
            },
        }
    )
    policy = policy_from_spec(spec)
    assert policy.thresholds == (
        ThresholdMetric("request-success-rate", minimum=99.0),
        ThresholdMetric("request-duration", maximum=500.0),
    )
    assert policy.error_rate == RateComparison(theta0=1.25)
    assert policy.latency == RateComparison(theta0=1.1, slow_threshold_ms=250.0)
    assert policy.compared == (ComparedMetric("cpu", CompareMethod.MANN_WHITNEY, Direction.INCREASE, min_points=50),)
    assert (policy.alpha, policy.min_requests, policy.require_evidence) == (0.02, 500, True)
    assert policy.alpha_per_comparison == pytest.approx(0.02 / 3)
    assert ERROR_RATE == "error-rate"


def test_policy_without_comparison_keeps_flagger_checks_only() -> None:
    spec = parse_canary_spec(
        {
            "targetRef": {"name": "podinfo"},
            "service": {"port": 80},
            "analysis": {"metrics": [{"name": "request-success-rate", "threshold": 99}]},
        }
    )
    policy = policy_from_spec(spec)
    assert policy.error_rate is None and policy.latency is None
    assert policy.thresholds == (ThresholdMetric("request-success-rate", minimum=99.0),)
