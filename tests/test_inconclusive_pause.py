"""``analysis.comparison.onInconclusive: pause``: on weak evidence the rollout holds its weight and pages a person,
who promotes (moves on), resumes (keeps looking) or aborts; a shown regression still rolls back at once."""

from __future__ import annotations

from typing import Any

from rollout_world import NO_DATA, PASS, REJECTED, Run, make_spec, request

from analysis.verdict import Outcome, Verdict
from controller.notify.message import action_commands
from controller.notify.severity import Severity, is_notable, severity_for
from controller.rollout.decision import EventType, Reason, SetWeights
from controller.rollout.machine import plan
from controller.rollout.phases import Hold, Phase
from controller.rollout.validation import validate_document

MINUTE = 60.0


def paused_on_no_data(**comparison: Any) -> Run:
    """Three steps (50, 100 → promote), noDataLimit 3; two looks pass, then no data until the limit."""
    spec = make_spec(
        {
            "interval": "1m",
            "stepWeight": 25,
            "maxWeight": 75,
            "noDataLimit": 3,
            "comparison": {"onInconclusive": "pause", **comparison},
        }
    )
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)  # first look: 25 %
    for _ in range(3):
        run.tick(verdict=NO_DATA, advance=MINUTE)
    return run


def test_no_data_at_the_limit_pauses_with_a_warning_instead_of_rolling_back() -> None:
    run = paused_on_no_data()
    status = run.status
    assert status.phase is Phase.PROGRESSING and status.paused_inconclusive
    assert status.hold is Hold.INCONCLUSIVE and status.canary_weight == 25
    last = run.decisions[-1]
    assert not any(isinstance(action, SetWeights) for action in last.actions)  # traffic stays where it was
    (event,) = [event for event in last.events if event.reason is Reason.INCONCLUSIVE_PAUSE]
    assert event.type is EventType.WARNING
    assert "no data for 3 looks in a row" in event.message and "onInconclusive: pause" in event.message
    assert is_notable(Reason.INCONCLUSIVE_PAUSE) and severity_for(Reason.INCONCLUSIVE_PAUSE) is Severity.WARN


def test_while_paused_nothing_looks_moves_or_times_out() -> None:
    run = paused_on_no_data()
    assert plan(run.spec, run.status, run.now + 10 * MINUTE).window is None  # no look is even gathered
    for _ in range(30):  # half an hour: past the progress deadline and any further no-data count
        decision = run.tick(verdict=NO_DATA, advance=MINUTE)
        assert decision.status.phase is Phase.PROGRESSING and decision.status.paused_inconclusive
        assert not decision.actions


def test_promote_moves_on_at_once_as_a_passing_look_would() -> None:
    run = paused_on_no_data()
    decision = run.tick(request=request("promote"), advance=5)
    assert not decision.status.paused_inconclusive and decision.status.hold is not Hold.INCONCLUSIVE
    assert decision.status.canary_weight == 50
    assert decision.status.no_data_checks == 0


def test_resume_keeps_looking_and_the_count_starts_again() -> None:
    run = paused_on_no_data()
    resumed = run.tick(request=request("resume"), advance=5)
    assert not resumed.status.paused_inconclusive and resumed.status.canary_weight == 25
    assert run.tick(verdict=NO_DATA, advance=MINUTE).status.no_data_checks == 1
    assert run.tick(verdict=PASS, advance=MINUTE).status.canary_weight == 50


def test_abort_rolls_back() -> None:
    run = paused_on_no_data()
    assert run.tick(request=request("abort"), advance=5).status.phase is Phase.FAILED
    assert not run.status.paused_inconclusive


def test_a_shown_regression_still_rolls_back_at_once() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 25, "comparison": {"onInconclusive": "pause"}})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    assert run.tick(verdict=REJECTED, advance=MINUTE).status.phase is Phase.FAILED


def test_max_duration_with_evidence_not_shown_pauses_but_failed_checks_do_not() -> None:
    spec = make_spec(
        {
            "interval": "1m",
            "stepWeight": 50,
            "maxDuration": "7m",
            "comparison": {"requireEvidence": True, "onInconclusive": "pause"},
        },
        progressDeadlineSeconds=300,
    )
    run = Run(spec).progressing()
    unproven = Verdict(Outcome.PASS, "ok", promotable=False, hold_reason="upper bound 1.4× > 1.0×")
    for _ in range(8):
        run.tick(verdict=unproven, advance=MINUTE)
    assert run.status.phase is Phase.PROGRESSING and run.status.hold is Hold.INCONCLUSIVE
    assert "maxDuration 7m" in run.status.message
    promoted = run.tick(request=request("promote"), advance=5)  # a person accepts the evidence so far
    assert promoted.status.phase is Phase.PROMOTING


def test_the_default_still_rolls_back_as_flagger_does() -> None:
    spec = make_spec({"interval": "1m", "stepWeight": 25, "noDataLimit": 2, "comparison": {}})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    run.tick(verdict=NO_DATA, advance=MINUTE)
    assert run.tick(verdict=NO_DATA, advance=MINUTE).status.phase is Phase.FAILED


def test_the_notification_carries_the_exact_commands() -> None:
    assert action_commands("podinfo", "shop", "Progressing", inconclusive=True) == (
        "kubectl coalmine promote podinfo -n shop",
        "kubectl coalmine resume podinfo -n shop",
        "kubectl coalmine abort podinfo -n shop",
    )


def test_the_crd_and_validate_accept_pause_and_name_the_field_for_anything_else() -> None:
    document = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "shop"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "1m", "stepWeight": 25, "comparison": {"onInconclusive": "pause"}},
        },
    }
    assert validate_document(document).valid
    document["spec"]["analysis"]["comparison"]["onInconclusive"] = "page"  # type: ignore[index]
    report = validate_document(document)
    assert not report.valid
    assert any(problem.path == "spec.analysis.comparison.onInconclusive" for problem in report.problems)
