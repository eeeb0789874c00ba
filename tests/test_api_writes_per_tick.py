"""What a progressing rollout costs the API server: one confirmation per tick, not one per effect.

Before a tick's first effect (recording the previous tick's Events, moving traffic) the operator confirms with the
API server that its copy of the Canary is current (a no-op status patch carrying the version it decided from).
A tick that both records Events and moves traffic used to confirm twice; with nothing that can last in between
(no webhook ran) one confirmation covers both, so each status change costs at most two requests: the confirmation
and the write. At 2,000 Canaries that is the difference between about 5 and 4 API writes per progressing tick.
"""

from __future__ import annotations

from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    History,
    ScriptedPrometheus,
    canary,
    deployment,
    new_image,
    operator,
    scripted_prometheus,
    test_config,
    wait_phase,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def prom() -> Any:
    with scripted_prometheus() as responder:
        yield responder


async def test_each_status_change_costs_at_most_one_confirmation(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, canary("podinfo"), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        history = History.install(emulator)
        requests_before = emulator.writes_by.get("PATCH canaries/status", 0)
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
        requests = emulator.writes_by.get("PATCH canaries/status", 0) - requests_before
    changes = sum(1 for write in history.of("/canaries", "podinfo") if write.kind == "MODIFIED")
    assert history.weights("podinfo") == [(75, 25), (50, 50), (25, 75), (100, 0)], "the rollout did not take its steps"
    # Each committed status change: its write, and at most one confirmation before the tick's effects.
    assert changes >= 5 and requests <= 2 * changes, f"{requests} status requests for {changes} status changes"
