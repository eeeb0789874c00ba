"""The operator survives being restarted in every phase and a flaky API server, and still ends rollouts correctly.

Restarts: each phase is held deterministically (the emulator's deployments stop "rolling out", or writes to
Deployments fail) so the operator is stopped *in* that phase, not near it; a new operator (fresh context, nothing
carried over but the cluster) must resume without skipping or repeating a step and without losing the judge's
state, which lives in ``status.judge``.

Faults: 10 % of all API calls — the operator's and kopf's own — answer 500, 409 or a timeout (the emulator's
:class:`~emulator.FaultPolicy`), and every rollout must still end the way it would without them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from emulator import CoalmineEmulator, FaultInjector, FaultKind, FaultPolicy
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    Counts,
    History,
    OperatorRun,
    QueryKind,
    ScriptedPrometheus,
    canary,
    deployment,
    events_of,
    image_of,
    new_image,
    scripted_prometheus,
    settle,
    status_of,
    test_config,
    wait_for,
    wait_phase,
    weights_of,
)

from controller.operator.context import OperatorConfig

COMPARISON = {"comparison": {"errorRate": {}, "minRequests": 100}}
STEPS = [(100, 0), (75, 25), (50, 50), (25, 75), (100, 0)]


@pytest.fixture
def prom() -> Any:
    with scripted_prometheus() as responder:
        yield responder


def looks(status: dict[str, Any]) -> int:
    return int(((status.get("judge") or {}).get("error-rate") or {}).get("test", {}).get("looks", 0))


def deployment_writes_fail(emulator: CoalmineEmulator, on: bool) -> None:
    policy = FaultPolicy(
        rate=1.0, kinds=(FaultKind.SERVER_ERROR,), include_reads=False, plurals=frozenset({"deployments"})
    )
    emulator.faults = FaultInjector(policy if on else FaultPolicy())


@pytest.mark.timeout(90)
async def test_restarted_in_every_phase_resumes_without_skipping_repeating_or_forgetting(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    history = History.install(emulator)
    run = OperatorRun(emulator, test_config(prom, tick_seconds=0.25))
    restarted: list[str] = []

    async def restart_in(phase: str, step: int | None = None) -> dict[str, Any]:
        def there() -> dict[str, Any] | None:
            status = status_of(emulator, "podinfo")
            held = status.get("phase") == phase and (step is None or status.get("stepIndex") == step)
            return status if held else None

        await wait_for(f"{phase} (step {step})", there, timeout=20)
        await run.stop()
        before = status_of(emulator, "podinfo")
        held = before["phase"] == phase and (step is None or before["stepIndex"] == step)
        assert held, f"the operator moved on to {before['phase']}/{before['stepIndex']} while stopping"
        before["weights"] = weights_of(emulator, "podinfo")  # as the stopped operator left them
        await asyncio.sleep(0.3)  # the operator is down for a while
        await run.start()
        restarted.append(phase if step is None else f"{phase}/{step}")
        return before

    emulator.store.behaviour.deployments_ready = False  # the primary will not become ready: Initializing holds
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    settle(emulator, "podinfo")
    # Looks every 4 s: a stop that lets a half-way tick finish stays well inside one step, even on a loaded machine.
    emulator.create_object(CANARIES, canary("podinfo", analysis={**COMPARISON, "interval": "4s"}), NS)
    await run.start()
    try:
        await wait_for("the primary", lambda: emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary"))
        await restart_in("Initializing")
        emulator.store.behaviour.deployments_ready = True
        settle(emulator, "podinfo-primary")
        await restart_in("Initialized")

        new_image(emulator, "podinfo", "podinfo:2")
        judged = []
        for step in range(4):  # weight 0 (before the first look), 25, 50, 75
            before = await restart_in("Progressing", step)
            judged.append(looks(before))
            assert before["weights"] == STEPS[step]
        assert judged == [0, 0, 1, 2], "one judged look per step after the first move, none lost in restarts"

        emulator.store.behaviour.deployments_ready = False  # the promoted primary will not be ready: Promoting holds
        before = await restart_in("Promoting")
        assert looks(before) == 3
        deployment_writes_fail(emulator, True)  # scaling the canary down fails: Finalising holds
        settle(emulator, "podinfo-primary")
        await restart_in("Finalising")
        deployment_writes_fail(emulator, False)
        emulator.store.behaviour.deployments_ready = True
        await wait_phase(emulator, "podinfo", "Succeeded")
        await asyncio.sleep(0.6)  # the tick after Succeeded closes the post-rollout gate
        final = await restart_in("Succeeded")
        await asyncio.sleep(1.0)  # a restarted operator leaves a finished rollout alone
        assert {**status_of(emulator, "podinfo"), "weights": weights_of(emulator, "podinfo")} == final
    finally:
        await run.stop()

    assert restarted == [
        "Initializing",
        "Initialized",
        "Progressing/0",
        "Progressing/1",
        "Progressing/2",
        "Progressing/3",
        "Promoting",
        "Finalising",
        "Succeeded",
    ]
    assert history.weights("podinfo") == STEPS, "every step once, none skipped"
    assert history.phases("podinfo") == [
        "Initializing",
        "Initialized",
        "Progressing",
        "Promoting",
        "Finalising",
        "Succeeded",
    ]
    advanced = [note for reason, note in events_of(emulator, "podinfo") if reason == "Advanced"]
    assert advanced == [f"Advance podinfo canary weight {w}" for w in (25, 50, 75)], "no step repeated"
    # The judge's state survived every restart: it counted each look's requests exactly once.
    assert looks(final) == len(prom.queries_for("podinfo", QueryKind.REQUESTS)) == 3
    assert final["judge"]["error-rate"]["test"]["canaryRequests"] == 3 * 1000
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:2"
    assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 0


FAULTS = FaultPolicy(rate=0.1, seed=11, timeout_delay=0.3)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault_policy", [FAULTS], ids=["10%-faults"])
async def test_rollouts_end_correctly_while_ten_percent_of_api_calls_fail(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, fault_policy: FaultPolicy
) -> None:
    outcomes = {"good": "Succeeded", "flaky": "Failed", "worse": "Failed"}
    for name in outcomes:
        emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
        analysis = {"stepWeight": 50, "maxWeight": 50, **COMPARISON, "threshold": 2}
        emulator.create_object(CANARIES, canary(name, analysis=analysis), NS)
    prom.script("flaky", success_rate=50.0)  # fails its threshold metric
    prom.script("worse", canary=Counts(1000, 300), primary=Counts(1000, 1))  # the comparison rejects it
    config: OperatorConfig = test_config(prom, kubernetes_timeout_s=2.0)
    run = OperatorRun(emulator, config)
    await run.start()
    try:
        for name in outcomes:
            await wait_phase(emulator, name, "Initialized", timeout=30)
        for name in outcomes:
            new_image(emulator, name, f"{name}:2")
        for name, phase in outcomes.items():
            await wait_phase(emulator, name, phase, timeout=45)
        await wait_for(
            "the failed canaries scaled down",
            lambda: all(emulator.read_object(DEPLOYMENTS, NS, n)["spec"]["replicas"] == 0 for n in outcomes),
            timeout=15,
        )
    finally:
        await run.stop()

    injected = emulator.faults.injected
    # 409s are drawn only for writes with a resourceVersion precondition (the router's PUTs), so they are rarer.
    assert emulator.faults.total_injected >= 10, injected
    assert {FaultKind.SERVER_ERROR, FaultKind.TIMEOUT} <= set(injected), injected
    assert 0.05 <= emulator.faults.total_injected / emulator.faults.eligible <= 0.15
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "good-primary")) == "good:2"
    for name in ("flaky", "worse"):
        assert image_of(emulator.read_object(DEPLOYMENTS, NS, f"{name}-primary")) == f"{name}:1"
    for name in outcomes:
        assert weights_of(emulator, name) == (100, 0), name
    assert status_of(emulator, "flaky")["failedChecks"] == 2
    assert status_of(emulator, "worse")["evidence"]["outcome"] == "rejected"
