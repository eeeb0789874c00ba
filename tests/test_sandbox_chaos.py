"""Chaos: ``kill -9`` the real operator at random moments during sandbox rollouts (at least 20 times) and restart it.

Every rollout must still end right (healthy → Succeeded, faulty → Failed), the mesh must never give the canary more
than its current step, nothing may be promoted twice, and no Event or notification may be lost or duplicated. The
checkers themselves are tested first on records with known faults, so a clean chaos run means something.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from controller.kube.errors import ApiConflict
from controller.operator.announce import notifications_to_send, record_events, tick_origin
from controller.operator.context import OperatorConfig
from controller.rollout.decision import Event, EventType, Reason
from controller.rollout.phases import Phase
from controller.rollout.status import CanaryStatus
from e2e.sandbox import chaos, manifests
from e2e.sandbox.observe import Sample
from e2e.sandbox.prometheus import PrometheusUnavailable, ensure_installed
from e2e.sandbox.recorder import Delivery

CANARY = {"metadata": {"name": "podinfo", "namespace": "test", "uid": "u-1"}, "kind": "Canary"}
HEALTHY = manifests.Release("1.0.1", 0.005)
FAULTY = manifests.Release("1.0.2", 0.1, expect="Failed")


def sample(t: float, weight: int | None, template: str = "a") -> Sample:
    return Sample(t, "Progressing", weight or 0, weight, "", {}, template, "rev")


def event(reason: str, note: str, type_: str = "Normal") -> dict[str, Any]:
    return {"reason": reason, "note": note, "type": type_}


# -- the checkers find what they are meant to find ----------------------------------------------------------


def test_weights_must_be_steps_and_rise_one_step_at_a_time() -> None:
    assert chaos.weight_violations([sample(t, w) for t, w in enumerate([None, 0, 10, 20, 30, 40, 50, 0, 10, 0])]) == []
    (jump,) = chaos.weight_violations([sample(0, 0), sample(1, 10), sample(2, 40)])
    assert "jumped 10 → 40" in jump
    (odd,) = chaos.weight_violations([sample(0, 0), sample(1, 25)])
    assert "25 is not a step" in odd


def test_promotions_count_every_change_of_the_primary_template() -> None:
    assert chaos.promotions([sample(0, 0, "a"), sample(1, 0, "a"), sample(2, 0, "b"), sample(3, 0, "b")]) == 1
    assert chaos.promotions([sample(0, 0, "a"), sample(1, 0, "b"), sample(2, 0, "c")]) == 2
    assert chaos.promotions([sample(0, 0, "a"), sample(1, 0, "")]) == 0


def test_events_duplicated_or_missing_are_reported() -> None:
    complete = [
        event("NewRevision", "New revision detected! Scaling up podinfo"),
        *(event("Advanced", f"Advance podinfo canary weight {w}") for w in (10, 20, 30, 40, 50)),
        event("Promoting", "Copying podinfo template spec to podinfo-primary"),
        event("Succeeded", "Promotion completed!"),
    ]
    assert chaos.check_events(complete, HEALTHY) == ([], [])
    duplicates, missing = chaos.check_events([*complete[:2], complete[1], *complete[3:]], HEALTHY)
    assert duplicates == ["Advanced: Advance podinfo canary weight 10 ×2"]
    assert missing == ["Advanced to 20"]
    assert chaos.check_events(complete[:2], FAULTY) == ([], ["a rollback Event"])
    assert chaos.check_events([*complete[:2], event("RolledBack", "Rolling back", "Warning")], FAULTY) == ([], [])


def test_notifications_lost_duplicated_and_redelivered_are_told_apart() -> None:
    events = [event("NewRevision", "new"), event("Advanced", "w20"), event("Succeeded", "done")]
    one = Delivery(0.0, {"reason": "NewRevision", "id": "k1"})
    again = Delivery(1.0, {"reason": "NewRevision", "id": "k1"})
    other = Delivery(1.0, {"reason": "NewRevision", "id": "k2"})
    done = Delivery(2.0, {"reason": "Succeeded", "id": "k3"})
    assert chaos.check_notifications(events, [one, done]) == ([], [], 0)
    assert chaos.check_notifications(events, [one, again, done]) == ([], [], 1)
    duplicated, lost, _ = chaos.check_notifications(events, [one, other])
    assert duplicated == ["NewRevision: 2 messages for 1 Events"]
    assert lost == ["Succeeded: 0 messages for 1 Events"]


# -- the operator's side: a tick repeated after a crash repeats nothing -------------------------------------


class EventSink:
    """``ctx`` for :func:`record_events`: an API whose create() refuses a name it already holds, like the real one."""

    def __init__(self) -> None:
        self.config = OperatorConfig(instance="test")
        self.created: list[Mapping[str, Any]] = []
        self.api = self

    def create(self, resource: object, namespace: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        name = body["metadata"].get("name")
        if name is not None and any(e["metadata"].get("name") == name for e in self.created):
            raise ApiConflict(f"Event {name}", 409, "AlreadyExists")
        self.created.append(body)
        return body


def test_a_tick_repeated_from_the_same_stored_status_records_its_events_once() -> None:
    sink = EventSink()
    events = (
        Event(EventType.NORMAL, Reason.ADVANCED, "Advance podinfo canary weight 40"),
        Event(EventType.NORMAL, Reason.ADVANCED, "a second Advanced in the same tick is its own Event"),
    )
    stored = {"phase": "Progressing", "canaryWeight": 20, "lastTransitionTime": "2026-01-01T00:00:00Z"}
    record_events(sink, CANARY, events, origin=tick_origin(stored))  # type: ignore[arg-type]
    record_events(sink, CANARY, events, origin=tick_origin(dict(stored)))  # type: ignore[arg-type]  # after a kill
    assert [e["note"] for e in sink.created] == [e.message for e in events]
    record_events(sink, CANARY, events[:1], origin=tick_origin({**stored, "canaryWeight": 40}))  # type: ignore[arg-type]
    assert len(sink.created) == 3  # a later tick (another stored status) is a new Event


def test_a_tick_repeated_after_a_crash_computes_the_same_notification_key() -> None:
    stored = {"phase": "Progressing", "canaryWeight": 50}
    done = Event(EventType.NORMAL, Reason.SUCCEEDED, "Promotion completed!")
    first = CanaryStatus(phase=Phase.SUCCEEDED, last_applied_spec="rev", last_transition_time=1000.0)
    retried = replace(first, last_transition_time=1003.5)  # the repeated tick stamps its own clock
    (sent_first,), _ = notifications_to_send(CANARY, first, (done,), (), origin=tick_origin(stored))
    (sent_again,), _ = notifications_to_send(CANARY, retried, (done,), (), origin=tick_origin(stored))
    assert sent_first[1] == sent_again[1]
    (later,), _ = notifications_to_send(CANARY, retried, (done,), (), origin=tick_origin({**stored, "x": 1}))
    assert later[1] != sent_first[1]


# -- the chaos run ------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_twenty_kills_during_rollouts_change_nothing_a_user_can_see() -> None:
    try:
        ensure_installed(("prometheus",))
    except PrometheusUnavailable as error:
        pytest.skip(f"the sandbox needs Debian's prometheus: {error}")
    report = chaos.run_chaos(min_kills=20, min_rollouts=4, seed=20261126, echo=lambda _line: None)
    detail = "\n".join(map(str, report.rollouts))
    tally = report.tally()
    assert tally["kills"] >= 20
    assert tally["rollouts"] >= 4
    assert tally["correct outcomes"] == tally["rollouts"], detail
    assert {r.release.expect for r in report.rollouts} == {"Succeeded", "Failed"}
    assert tally["weight violations"] == 0, detail
    assert tally["wrong promotion counts"] == 0, detail
    assert tally["duplicate events"] == 0, detail
    assert tally["lost events"] == 0, detail
    assert tally["duplicate notifications"] == 0, detail
    assert tally["lost notifications"] == 0, detail
    assert tally["events checked"] >= 5 * tally["rollouts"]  # the checks saw real Events …
    assert tally["notifications checked"] >= 2 * tally["rollouts"]  # … and real messages
    assert report.operator_starts == tally["kills"] + 1
