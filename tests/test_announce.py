"""``muteAlert``: a failing webhook marked so is recorded as an Event but does not notify (Flagger semantics)."""

from __future__ import annotations

from typing import Any

import pytest
from rollout_world import PASS, Run, gates, make_spec

from analysis.verdict import Outcome, Verdict
from controller.operator.announce import notifications_to_send
from controller.rollout.decision import Decision, Event
from controller.rollout.phases import Phase
from controller.rollout.spec import HookType

CANARY = {"metadata": {"name": "podinfo", "namespace": "test", "uid": "u-1"}, "kind": "Canary"}
MINUTE = 60.0


def _hook(name: str, type_: str, mute: bool) -> dict[str, Any]:
    return {"name": name, "type": type_, "url": f"http://hooks/{name}", "muteAlert": mute}


def _failing_look(hooks: list[dict[str, Any]], failing: HookType) -> tuple[Run, Decision]:
    """Run a rollout to its first analysed look, in which the ``failing`` hooks fail."""
    spec = make_spec({"interval": "1m", "threshold": 5, "stepWeight": 20, "maxWeight": 60, "webhooks": hooks})
    run = Run(spec).progressing()
    passing = gates(True, HookType.PRE_ROLLOUT, HookType.ROLLOUT)
    if failing is HookType.ROLLOUT:
        run.tick(hooks=passing, advance=MINUTE)  # the first look runs the pre-rollout hooks
    decision = run.tick(verdict=PASS, hooks={**passing, **gates(False, failing, message="503")}, advance=MINUTE)
    return run, decision


def _halted(decision: Decision) -> Event:
    (event,) = [e for e in decision.events if e.reason.value == "Halted"]
    return event


@pytest.mark.parametrize("failing", [HookType.PRE_ROLLOUT, HookType.ROLLOUT])
@pytest.mark.parametrize(("mutes", "notified"), [((True,), False), ((False,), True), ((True, False), True)])
def test_a_failure_of_muted_webhooks_is_recorded_but_not_notified(
    failing: HookType, mutes: tuple[bool, ...], notified: bool
) -> None:
    hooks = [_hook(f"check-{i}", failing.value, mute) for i, mute in enumerate(mutes)]
    run, decision = _failing_look(hooks, failing)
    halted = _halted(decision)  # still an Event (recorded on the Canary)
    assert halted.hook is failing and "hook failed: 503" in halted.message
    assert run.status.phase is Phase.PROGRESSING and run.status.failed_checks == 1
    chosen, _ = notifications_to_send(CANARY, decision.status, decision.events, (), webhooks=run.spec.analysis.webhooks)
    assert (halted in [event for event, _ in chosen]) is notified


def test_a_muted_webhook_of_another_type_does_not_mute_a_failed_metric_check() -> None:
    spec = make_spec(
        {"interval": "1m", "threshold": 5, "stepWeight": 20, "webhooks": [_hook("load", "pre-rollout", True)]}
    )
    run = Run(spec).progressing()
    run.tick(hooks=gates(True, HookType.PRE_ROLLOUT), advance=MINUTE)
    failed = run.tick(verdict=Verdict(Outcome.FAIL, "success rate 95% < 99%"), advance=MINUTE)
    halted = _halted(failed)
    assert halted.hook is None
    chosen, _ = notifications_to_send(CANARY, failed.status, failed.events, (), webhooks=spec.analysis.webhooks)
    assert halted in [event for event, _ in chosen]
