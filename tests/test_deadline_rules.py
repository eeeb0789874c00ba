"""What ends a rollout that does not move: Flagger's progress-deadline rule, ``noDataLimit`` and ``maxDuration``.

Issue "Correct on a real cluster" items 2 and 3: the progress deadline bounds how long the canary may fail to become
ready (or the looks may stop happening), never how long a healthy analysis may take; no data ends a rollout after
``noDataLimit`` looks in a row (reason ``NoData``) instead of hanging until the deadline; ``maxDuration`` is an
opt-in bound on the whole rollout that does not count waits for a person.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rollout_world import FAIL, NO_DATA, PASS, Run, World, make_spec, request
from typer.testing import CliRunner

from analysis.verdict import Outcome, Verdict
from controller.cli.main import app
from controller.notify.severity import severity_for
from controller.rollout.decision import EventType, Reason, ScaleCanary, SetWeights
from controller.rollout.phases import Hold, Phase
from controller.rollout.spec import parse_analysis

MINUTE = 60.0
FLAGGER = Path(__file__).resolve().parent / "manifests" / "flagger"
UNPROVEN = Verdict(Outcome.PASS, "ok", promotable=False, hold_reason="upper bound 1.4× > 1.0×")


def test_no_data_limit_defaults_to_the_threshold() -> None:
    assert parse_analysis({"threshold": 4}).no_data_limit == 4
    assert parse_analysis({}).no_data_limit == 1
    assert parse_analysis({"threshold": 4, "noDataLimit": 9}).no_data_limit == 9
    assert parse_analysis({}).max_duration_s is None
    assert parse_analysis({"maxDuration": "1h30m"}).max_duration_s == 5400


def test_no_data_looks_in_a_row_roll_back_at_the_limit_with_reason_no_data() -> None:
    # A long deadline: it must not be what ends the rollout.
    spec = make_spec({"interval": "1m", "threshold": 3, "stepWeight": 50}, progressDeadlineSeconds=3600)
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)  # first look → 50 %
    for count in (1, 2):
        held = run.tick(verdict=NO_DATA, advance=MINUTE)
        assert held.status.phase is Phase.PROGRESSING and held.status.hold is Hold.NO_DATA
        assert held.status.no_data_checks == count
        assert f"no-data looks in a row {count}/3" in held.status.message
    ended = run.tick(verdict=NO_DATA, advance=MINUTE)
    assert ended.status.phase is Phase.FAILED
    assert [(e.type, e.reason) for e in ended.events] == [(EventType.WARNING, Reason.NO_DATA)]
    assert "no data for 3 looks in a row (noDataLimit 3)" in ended.events[0].message
    assert ended.actions == (SetWeights(100, 0), ScaleCanary(up=False))


def test_a_look_with_data_resets_the_no_data_count() -> None:
    spec = make_spec({"interval": "1m", "threshold": 5, "noDataLimit": 2, "stepWeight": 10})
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    for _ in range(4):
        run.tick(verdict=NO_DATA, advance=MINUTE)
        assert run.tick(verdict=PASS, advance=MINUTE).status.no_data_checks == 0
    assert run.status.phase is Phase.PROGRESSING
    run.tick(verdict=NO_DATA, advance=MINUTE)
    assert run.tick(verdict=NO_DATA, advance=MINUTE).status.phase is Phase.FAILED


def test_the_no_data_rollback_notifies_as_an_error_and_a_no_data_hold_as_a_warning() -> None:
    assert severity_for(Reason.NO_DATA, EventType.WARNING, "Failed").value == "error"
    assert severity_for(Reason.NO_DATA, EventType.WARNING, "Progressing").value == "warn"


def test_failed_checks_below_the_threshold_never_trip_the_deadline() -> None:
    """Flagger's tutorial: threshold 5, a 60 s deadline (at least two intervals), occasional failing looks."""
    spec = make_spec({"interval": "1m", "threshold": 5, "stepWeight": 10, "maxWeight": 50}, progressDeadlineSeconds=60)
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)
    for verdict in (FAIL, FAIL, FAIL, PASS, FAIL, PASS, PASS, PASS, PASS):
        run.tick(verdict=verdict, advance=MINUTE)
        assert run.status.phase is not Phase.FAILED, run.status.message
    assert run.until_phase("Succeeded").status.failed_checks == 4


def test_a_judge_still_gathering_evidence_is_not_stalled() -> None:
    spec = make_spec(
        {"interval": "1m", "stepWeight": 50, "comparison": {"requireEvidence": True}}, progressDeadlineSeconds=120
    )
    run = Run(spec).progressing()
    for _ in range(30):
        run.tick(verdict=UNPROVEN, advance=MINUTE)
    assert run.status.phase is Phase.PROGRESSING and run.status.hold is Hold.EVIDENCE
    assert run.tick(verdict=PASS, advance=MINUTE).status.phase is Phase.PROMOTING


def test_max_duration_bounds_the_whole_rollout_when_set() -> None:
    spec = make_spec(
        {"interval": "1m", "stepWeight": 50, "maxDuration": "10m", "comparison": {"requireEvidence": True}},
        progressDeadlineSeconds=120,
    )
    run = Run(spec).progressing()
    for _ in range(9):
        run.tick(verdict=UNPROVEN, advance=MINUTE)
    assert run.status.phase is Phase.PROGRESSING
    ended = run.tick(verdict=UNPROVEN, advance=2 * MINUTE)
    assert ended.status.phase is Phase.FAILED
    assert [e.reason for e in ended.events] == [Reason.MAX_DURATION_EXCEEDED]
    assert "longer than its maxDuration 10m" in ended.events[0].message
    assert severity_for(Reason.MAX_DURATION_EXCEEDED, EventType.WARNING).value == "error"


def test_max_duration_does_not_count_a_wait_for_a_person() -> None:
    spec = make_spec(
        {"interval": "1m", "maxDuration": "10m", "steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}
    )
    run = Run(spec).progressing()
    run.tick(advance=MINUTE)  # → 10 %
    run.tick(advance=MINUTE)  # → manual pause
    assert run.status.phase is Phase.WAITING_PROMOTION
    for _ in range(60):  # an hour waiting for `promote`, looks still running
        run.tick(advance=MINUTE)
    assert run.status.phase is Phase.WAITING_PROMOTION
    run.tick(request=request("promote"), advance=5)
    assert run.status.phase is Phase.PROGRESSING, run.status.message
    assert run.until_phase("Succeeded").status.phase is Phase.SUCCEEDED


def test_a_canary_that_never_becomes_ready_is_rolled_back_at_the_deadline() -> None:
    run = Run(make_spec({"interval": "1m"}, progressDeadlineSeconds=300), World()).progressing()
    run.world.canary_ready = 40
    run.tick(advance=MINUTE)
    run.tick(advance=3 * MINUTE)
    assert run.status.phase is Phase.PROGRESSING and run.status.hold is Hold.CANARY_NOT_READY
    ended = run.tick(advance=2 * MINUTE)
    assert ended.status.phase is Phase.FAILED
    assert ended.events[0].reason is Reason.PROGRESS_DEADLINE_EXCEEDED


def test_a_canary_deployment_past_its_own_progress_deadline_rolls_back_at_once() -> None:
    run = Run(make_spec({"interval": "1m"}, progressDeadlineSeconds=3600)).progressing()
    run.world.canary_ready = 30
    run.world.canary_stalled = True  # Progressing=False, reason ProgressDeadlineExceeded
    ended = run.tick(advance=5)
    assert ended.status.phase is Phase.FAILED
    assert "Deployment podinfo exceeded its progress deadline" in ended.events[0].message


def test_looks_that_stop_happening_are_stalled_progress() -> None:
    """No verdict for the deadline (the operator cannot run the analysis) is the stall the deadline is for."""
    run = Run(make_spec({"interval": "1m", "stepWeight": 20}, progressDeadlineSeconds=300)).progressing()
    run.tick(advance=MINUTE)
    for _ in range(4):
        run.tick(verdict=None, advance=MINUTE)
        assert run.status.hold is Hold.ANALYSIS_PENDING
    ended = run.tick(verdict=None, advance=2 * MINUTE)
    assert ended.status.phase is Phase.FAILED
    assert ended.events[0].reason is Reason.PROGRESS_DEADLINE_EXCEEDED


@pytest.mark.parametrize("manifest", sorted(FLAGGER.glob("*.yaml")), ids=lambda path: path.stem)
def test_healthy_releases_of_flaggers_own_canaries_are_never_ended_by_the_deadline(manifest: Path) -> None:
    """``coalmine simulate`` of Flagger's tutorial and e2e Canaries, healthy canary (same rates as the primary)."""
    result = CliRunner().invoke(app, ["simulate", "-f", str(manifest), "--runs", "60", "--json", "--rps", "20"])
    if "no Canary" in result.output or "no BlueGreen" in result.output:
        pytest.skip(f"{manifest.name} holds no rollout")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    deadline = [r for r in summary["results"] if "deadline" in str(r.get("reason", "")).lower()]
    assert deadline == []
    assert summary["promoted"] >= 0.9 * summary["runs"], summary["results"]
