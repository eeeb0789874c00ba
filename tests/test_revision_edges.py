"""Real-world edges around revisions and messages (issue "Correct on a real cluster", item 6).

- Reverting the target to the promoted revision mid-rollout rolls back at once: no analysis of what the primary
  already runs.
- ``status.message`` (and so every condition message) is bounded: one copy of a failing query, at most 1 KB; the
  Event keeps the full text, and the Event's ``note`` is cut to the API server's 1 KB limit with the full text
  logged.
- ``kubectl wait --for=condition=Ready`` never sees the previous revision's Ready: the reconcile that notices a new
  revision writes Ready=False, including a revision that arrived while the primary was being promoted.
"""

from __future__ import annotations

import logging
from typing import Any

from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    History,
    canary,
    deployment,
    new_image,
    operator,
    scripted_prometheus,
    test_config,
    wait_phase,
)
from rollout_world import FAIL, PASS, Run, make_spec

from analysis.verdict import Outcome, Verdict
from controller.operator.announce import record_event
from controller.rollout.decision import Event, EventType, Reason, ScaleCanary, SetWeights
from controller.rollout.messages import MESSAGE_LIMIT, bounded
from controller.rollout.phases import Phase

MINUTE = 60.0


def _ready(run: Run) -> str:
    condition = run.status.condition("Ready")
    assert condition is not None
    return condition.status


def test_a_revert_to_the_promoted_revision_mid_rollout_rolls_back_at_once() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 20, "threshold": 3})).progressing("v2")
    run.tick(advance=MINUTE)
    run.tick(verdict=PASS, advance=MINUTE)
    assert run.status.canary_weight == 40
    run.world.revision = "v1"  # `kubectl rollout undo`: back to what the primary runs
    decision = run.tick(advance=5)
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.canary_weight == 0
    assert SetWeights(100, 0) in decision.actions and ScaleCanary(up=False) in decision.actions
    assert [(e.type, e.reason) for e in decision.events] == [(EventType.WARNING, Reason.REVERT_DETECTED)]
    assert "no analysis" in decision.events[0].message
    assert run.world.routes is not None and run.world.routes.canary == 0
    assert _ready(run) == "True"  # the primary runs the target's revision: nothing is in flight
    # nothing more happens: no look, no restarted analysis
    later = run.tick(advance=MINUTE)
    assert later.status.phase is Phase.SUCCEEDED and not later.actions


def test_a_new_revision_that_is_not_a_revert_still_restarts_the_analysis() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 20})).progressing("v2")
    run.tick(advance=MINUTE)
    run.world.revision = "v3"
    assert run.tick(advance=5).events[0].reason is Reason.ANALYSIS_RESTARTED


def test_a_revision_that_arrives_while_promoting_starts_in_the_tick_that_finishes_the_promotion() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 100})).progressing("v2")
    run.tick(advance=MINUTE)
    run.tick(verdict=PASS, advance=MINUTE)
    assert run.status.phase is Phase.PROMOTING
    run.world.revision = "v3"  # pushed while v2 is being copied to the primary
    for _ in range(5):
        run.tick(advance=5)
        assert not (run.status.phase is Phase.SUCCEEDED and _ready(run) == "True"), "Ready for v2 while v3 waits"
        if run.status.last_applied_spec == "v3":
            break
    assert run.status.phase is Phase.PROGRESSING and run.status.last_applied_spec == "v3"
    assert run.status.last_promoted_spec == "v2"
    assert _ready(run) == "False"


def test_ready_goes_false_in_the_tick_that_notices_a_new_revision() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 50})).initialized()
    assert _ready(run) == "True"
    run.world.revision = "v2"
    run.tick(advance=5)
    condition = run.status.condition("Ready")
    assert condition is not None and (condition.status, condition.reason) == ("False", "Progressing")


LONG_ERROR = "bad_data: parse error at char 41: " + "x" * 3000


def test_status_message_keeps_one_copy_of_a_failing_query_and_at_most_a_kilobyte() -> None:
    run = Run(make_spec({"interval": "1m", "stepWeight": 20, "threshold": 3})).progressing()
    run.tick(advance=MINUTE)
    reason = f"error-rate: comparison query failed: {LONG_ERROR}; latency: comparison query failed: {LONG_ERROR}"
    decision = run.tick(verdict=Verdict(Outcome.FAIL, reason), advance=MINUTE)
    message = decision.status.message
    assert len(message.encode()) <= MESSAGE_LIMIT
    assert message.count("parse error at char 41") == 1
    assert "the full text is in the operator log" in message
    for condition in decision.status.conditions:
        assert len(condition.message.encode()) <= MESSAGE_LIMIT
    assert decision.events[0].message.count("parse error at char 41") == 2, "the Event keeps the full text"
    assert run.tick(verdict=FAIL, advance=MINUTE).status.phase is Phase.PROGRESSING


def test_bounded_leaves_short_messages_alone_and_cuts_at_a_character_boundary() -> None:
    assert bounded("Advance podinfo canary weight 20") == "Advance podinfo canary weight 20"
    cut = bounded("é" * 2000)
    assert len(cut.encode()) <= MESSAGE_LIMIT and cut.startswith("é" * 100)
    same = "a: query failed: " + "boom " * 10 + "; b: query failed: " + "boom " * 10
    assert bounded(same) == "a: query failed: " + "boom " * 10 + "; b: query failed: (same error as above)"


class _Api:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, resource: Any, namespace: str, body: dict[str, Any]) -> None:
        self.created.append(body)


class _Ctx:
    def __init__(self) -> None:
        self.api = _Api()
        self.config = type("Config", (), {"instance": "test"})()


def test_an_event_note_is_cut_to_the_api_servers_limit_and_the_full_text_is_logged(caplog: Any) -> None:
    ctx = _Ctx()
    canary = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": "test", "uid": "u1"},
    }
    event = Event(EventType.WARNING, Reason.HALTED, f"Halt podinfo advancement: {LONG_ERROR}")
    with caplog.at_level(logging.WARNING):
        assert record_event(ctx, canary, event)  # type: ignore[arg-type]
    (body,) = ctx.api.created
    assert len(body["note"].encode()) <= MESSAGE_LIMIT
    assert LONG_ERROR in caplog.text


async def test_the_write_that_records_a_new_revision_already_says_ready_false(emulator: Any) -> None:
    """On the real operator: no Canary write ever pairs the new revision with the previous revision's Ready."""
    history = History.install(emulator)
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, canary("podinfo"), NS)
    with scripted_prometheus() as prom:
        async with operator(emulator, test_config(prom)):
            first = await wait_phase(emulator, "podinfo", "Initialized")
            new_image(emulator, "podinfo", "podinfo:2")
            await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
    statuses = [w.obj.get("status") or {} for w in history.of("/canaries", "podinfo")]
    changed = [s for s in statuses if s.get("lastAppliedSpec") and s["lastAppliedSpec"] != first["lastAppliedSpec"]]
    assert changed, "the new revision was never recorded"
    ready = next(c for c in changed[0]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Progressing")
    for status in statuses:
        ready_now = {c["type"]: c["status"] for c in status.get("conditions") or ()}.get("Ready")
        if ready_now == "True":
            assert status["lastAppliedSpec"] == status["lastPromotedSpec"], status
