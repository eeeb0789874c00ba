"""The operator end to end against the emulated API and a scripted Prometheus: what a user sees in the cluster.

Each test runs the real operator (kopf, the Canary handlers, the Kubernetes and Istio adapters) with 1 s looks and a
0.2 s tick, and asserts on the objects and Events the operator writes. The VirtualService weights and the phases are
read from the emulator's commit stream (``History``), so a step that lasted one tick is still seen.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    CONFIGMAPS,
    DEPLOYMENTS,
    DESTINATION_RULES,
    HPAS,
    NS,
    SERVICES,
    VIRTUAL_SERVICES,
    Counts,
    History,
    QueryKind,
    ScriptedPrometheus,
    canary,
    condition,
    deployment,
    events_of,
    image_of,
    new_image,
    operator,
    scripted_prometheus,
    status_of,
    test_config,
    validate_written,
    wait_for,
    wait_phase,
    weights_of,
)

from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import REQUEST_ANNOTATION, encode_request

pytestmark = pytest.mark.timeout(60)

STEPS = [(100, 0), (75, 25), (50, 50), (25, 75), (100, 0)]


@pytest.fixture
def prom() -> Any:
    with scripted_prometheus() as responder:
        yield responder


@pytest.fixture
def history(emulator: CoalmineEmulator) -> History:
    return History.install(emulator)


def setup(emulator: CoalmineEmulator, name: str, **canary_args: Any) -> None:
    emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
    emulator.create_object(CANARIES, canary(name, **canary_args), NS)


def reasons(emulator: CoalmineEmulator, name: str) -> list[str]:
    return [reason for reason, _ in events_of(emulator, name)]


async def wait_announced(emulator: CoalmineEmulator, name: str) -> None:
    """Wait for the Events of the transitions written so far: they go out one tick later (``status.outbox``)."""
    await wait_for(f"{name}'s outbox to be announced", lambda: not status_of(emulator, name).get("outbox"))


def looks(status: dict[str, Any]) -> int:
    """How many looks the judge's error-rate test has taken (its state lives in ``status.judge``)."""
    return int(((status.get("judge") or {}).get("error-rate") or {}).get("test", {}).get("looks", 0))


def request(emulator: CoalmineEmulator, name: str, action: ManualAction) -> str:
    """What ``kubectl coalmine <action>`` writes: the request annotation."""
    request_id, value = encode_request(action, "tester", 0.0)
    emulator.patch_object(CANARIES, NS, name, {"metadata": {"annotations": {REQUEST_ANNOTATION: value}}})
    return request_id


async def test_initialises_then_promotes_a_new_image_through_every_step(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, "podinfo")
    async with operator(emulator, test_config(prom)):
        status = await wait_phase(emulator, "podinfo", "Initialized")
        primary = emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")
        assert primary is not None and image_of(primary) == "podinfo:1"
        assert primary["spec"]["selector"]["matchLabels"] == {"app": "podinfo-primary"}
        assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 0
        services = {s["metadata"]["name"]: s for s in emulator.list_objects(SERVICES, NS)}
        assert sorted(services) == ["podinfo", "podinfo-canary", "podinfo-primary"]
        assert services["podinfo"]["spec"]["selector"] == {"app": "podinfo-primary"}
        assert services["podinfo-canary"]["spec"]["selector"] == {"app": "podinfo"}
        assert weights_of(emulator, "podinfo") == (100, 0)
        rules = sorted(r["metadata"]["name"] for r in emulator.list_objects(DESTINATION_RULES, NS))
        assert rules == ["podinfo-canary", "podinfo-primary"]
        assert condition(status, "Ready") is not None
        assert status["observedGeneration"] == 1

        new_image(emulator, "podinfo", "podinfo:2")
        status = await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
        await wait_announced(emulator, "podinfo")

    assert history.weights("podinfo") == STEPS
    assert history.phases("podinfo") == [
        "Initializing",
        "Initialized",
        "Progressing",
        "Promoting",
        "Finalising",
        "Succeeded",
    ]
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:2"
    assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 0
    assert status["canaryWeight"] == 0 and status["failedChecks"] == 0
    assert [n for r, n in events_of(emulator, "podinfo") if r == "Advanced"] == [
        "Advance podinfo canary weight 25",
        "Advance podinfo canary weight 50",
        "Advance podinfo canary weight 75",
    ]
    assert reasons(emulator, "podinfo")[-1] == "Succeeded"
    # One success-rate query per look: three steps and the promotion look (the first look runs pre-rollout hooks).
    assert len(prom.queries_for("podinfo", QueryKind.SUCCESS_RATE)) == 3
    assert validate_written(emulator) >= 8


async def test_failing_threshold_metric_rolls_back_at_the_threshold(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, "podinfo", analysis={"threshold": 2})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        prom.script("podinfo", success_rate=80.0)
        new_image(emulator, "podinfo", "podinfo:2")
        status = await wait_phase(emulator, "podinfo", "Failed", timeout=30)
        await wait_announced(emulator, "podinfo")
    assert status["failedChecks"] == 2
    assert history.weights("podinfo") == [(100, 0), (75, 25), (100, 0)]
    assert [s["failedChecks"] for s in history.statuses("podinfo") if s["phase"] == "Progressing"][-1] == 1
    assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 0
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:1"
    notes = " ".join(note for _, note in events_of(emulator, "podinfo"))
    assert "request-success-rate" in notes
    assert reasons(emulator, "podinfo")[-1] == "RolledBack"


async def test_comparison_rejection_rolls_back_at_once_with_the_reason(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    comparison = {"comparison": {"errorRate": {}, "minRequests": 100}, "threshold": 5}
    setup(emulator, "podinfo", analysis=comparison)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        prom.script("podinfo", canary=Counts(1000, 200), primary=Counts(1000, 2))
        new_image(emulator, "podinfo", "podinfo:2")
        status = await wait_phase(emulator, "podinfo", "Failed", timeout=30)
        await wait_announced(emulator, "podinfo")
    assert status["failedChecks"] == 0, "a rejection is not a failed check: it rolls back at once"
    assert history.weights("podinfo") == [(100, 0), (75, 25), (100, 0)]
    rejected = [note for reason, note in events_of(emulator, "podinfo") if reason == "ComparisonRejected"]
    assert len(rejected) == 1 and "5xx rate" in rejected[0], events_of(emulator, "podinfo")
    assert "5xx rate" in condition(status, "Ready")["message"]
    assert status["evidence"]["outcome"] == "rejected"
    # Requests and 5xx for both arms come from one counter read (a baseline and a window) per look; the rejection
    # came on the first metric look.
    assert len(prom.queries_for("podinfo", QueryKind.REQUESTS)) == 1
    assert len(prom.queries_for("podinfo", QueryKind.BASELINE)) == 1


async def test_no_data_holds_the_weight_then_rolls_back_at_the_no_data_limit(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    # A 4 s deadline and 1 s looks: the looks keep happening, so the deadline is not what ends it (Flagger's rule);
    # four no-data looks in a row are (noDataLimit).
    setup(emulator, "podinfo", progressDeadlineSeconds=4, analysis={"noDataLimit": 4})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        prom.script("podinfo", success_rate=None)
        new_image(emulator, "podinfo", "podinfo:2")
        held = await wait_for(
            "two looks without data", lambda: status_of(emulator, "podinfo").get("noDataChecks", 0) >= 2 or None
        )
        assert held and status_of(emulator, "podinfo")["phase"] == "Progressing"
        assert weights_of(emulator, "podinfo") == (75, 25), "no data never moves the weight"
        status = await wait_phase(emulator, "podinfo", "Failed", timeout=15)
        await wait_announced(emulator, "podinfo")
    assert status["failedChecks"] == 0 and status["noDataChecks"] == 4
    assert history.weights("podinfo") == [(100, 0), (75, 25), (100, 0)]
    notes = events_of(emulator, "podinfo")
    assert (
        "NoData",
        "Rolling back podinfo: no data for 4 looks in a row (noDataLimit 4): request-success-rate: no data",
    ) in notes, notes
    assert not any("deadline" in note.lower() for _, note in notes)


async def test_a_revision_change_mid_analysis_restarts_the_analysis(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, "podinfo", analysis={"comparison": {"errorRate": {}, "minRequests": 100}})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        new_image(emulator, "podinfo", "podinfo:2")
        before = await wait_for(
            "step 2 (weight 50)", lambda: (s := status_of(emulator, "podinfo"))["stepIndex"] == 2 and s
        )
        assert before["judge"], "the judge keeps state between looks"
        new_image(emulator, "podinfo", "podinfo:3")
        await wait_for("weight back to 0", lambda: weights_of(emulator, "podinfo") == (100, 0))
        restarted = await wait_for(
            "the new revision in status",
            lambda: (s := status_of(emulator, "podinfo"))["lastAppliedSpec"] != before["lastAppliedSpec"] and s,
        )
        assert restarted["phase"] == "Progressing" and restarted["stepIndex"] == 0
        assert looks(before) >= 1
        assert looks(restarted) == 0, "the judge starts over for the new revision"
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
    assert history.weights("podinfo") == [(100, 0), (75, 25), (50, 50), *STEPS]
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")) == "podinfo:3"


async def test_a_configmap_change_starts_a_rollout_and_is_copied_at_promotion(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    emulator.create_object(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"colour": "blue"}}, NS)
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1", config_map="settings"), NS)
    emulator.create_object(CANARIES, canary("podinfo", analysis={"stepWeight": 50, "maxWeight": 50}), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        copy = emulator.read_object(CONFIGMAPS, NS, "settings-primary")
        assert copy is not None and copy["data"] == {"colour": "blue"}
        primary = emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
            {"configMapRef": {"name": "settings-primary"}}
        ]
        emulator.patch_object(CONFIGMAPS, NS, "settings", {"data": {"colour": "green"}})
        await wait_phase(emulator, "podinfo", "Progressing")
        assert emulator.read_object(CONFIGMAPS, NS, "settings-primary")["data"] == {"colour": "blue"}
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
    assert emulator.read_object(CONFIGMAPS, NS, "settings-primary")["data"] == {"colour": "green"}
    assert history.weights("podinfo") == [(100, 0), (50, 50), (100, 0)]


async def test_suspend_freezes_the_rollout_and_resume_continues_it(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, "podinfo")
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_for("weight 25", lambda: weights_of(emulator, "podinfo") == (75, 25))
        emulator.patch_object(CANARIES, NS, "podinfo", {"spec": {"suspend": True}})
        await asyncio.sleep(0.6)  # a tick that was already running when the spec changed may still finish
        frozen_events, queries = len(events_of(emulator, "podinfo")), len(prom.queries)
        frozen = status_of(emulator, "podinfo")
        await asyncio.sleep(2.5)  # more than two looks' worth of time
        assert weights_of(emulator, "podinfo") == (75, 25)
        assert status_of(emulator, "podinfo")["stepIndex"] == frozen["stepIndex"]
        assert len(events_of(emulator, "podinfo")) == frozen_events, "a suspended Canary records nothing"
        assert len(prom.queries) == queries, "and takes no looks"
        emulator.patch_object(CANARIES, NS, "podinfo", {"spec": {"suspend": False}})
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
    assert history.weights("podinfo") == STEPS


async def test_hpa_gets_a_primary_copy_that_targets_the_primary(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    hpa = {
        "metadata": {"name": "podinfo"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "minReplicas": 3,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}},
                }
            ],
        },
    }
    emulator.create_object(HPAS, hpa, NS)
    ref = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "name": "podinfo"}
    setup(emulator, "podinfo", autoscalerRef=ref, analysis={"stepWeight": 50, "maxWeight": 50})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        copy = emulator.read_object(HPAS, NS, "podinfo-primary")
        assert copy is not None
        assert copy["spec"]["scaleTargetRef"]["name"] == "podinfo-primary"
        assert (copy["spec"]["minReplicas"], copy["spec"]["maxReplicas"]) == (3, 6)
        assert emulator.read_object(HPAS, NS, "podinfo")["spec"]["scaleTargetRef"]["name"] == "podinfo"
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_phase(emulator, "podinfo", "Progressing")
        await wait_for(
            "the canary scaled to the HPA minimum",
            lambda: emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 3,
        )
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
    validate_written(emulator)


async def test_deletion_with_revert_on_deletion_restores_the_target_and_the_virtual_service(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    original = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "podinfo"},
        "spec": {"hosts": ["podinfo"], "http": [{"route": [{"destination": {"host": "podinfo"}}]}]},
    }
    emulator.create_object(VIRTUAL_SERVICES, original, NS)
    setup(emulator, "podinfo", revertOnDeletion=True)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        assert weights_of(emulator, "podinfo") == (100, 0), "the existing VirtualService is taken over"
        assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 0
        emulator.delete_object(CANARIES, NS, "podinfo")
        await wait_for("the Canary to go", lambda: emulator.read_object(CANARIES, NS, "podinfo") is None)
    assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 2
    restored = emulator.read_object(VIRTUAL_SERVICES, NS, "podinfo")
    assert restored is not None and restored["spec"] == original["spec"]
    assert not any(k.startswith("coalmine.dev/") for k in (restored["metadata"].get("annotations") or {}))
    assert emulator.read_object(DESTINATION_RULES, NS, "podinfo-primary") is None


async def test_virtual_service_drift_is_put_back(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    setup(emulator, "podinfo")
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        vs = emulator.read_object(VIRTUAL_SERVICES, NS, "podinfo")
        http = copy.deepcopy(vs["spec"]["http"])  # read_object answers the stored object: edit a copy, as kubectl
        for route in http:
            for dest in route.get("route") or ():
                dest["weight"] = 50
        emulator.patch_object(VIRTUAL_SERVICES, NS, "podinfo", {"spec": {"http": http}})
        assert weights_of(emulator, "podinfo") == (50, 50)
        await wait_for("the weights put back", lambda: weights_of(emulator, "podinfo") == (100, 0), timeout=5)
        assert status_of(emulator, "podinfo")["phase"] == "Initialized"


async def test_an_invalid_canary_touches_nothing_and_is_rechecked_when_edited(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    setup(emulator, "podinfo", analysis={"stepWeight": 50, "maxWeight": 20})
    async with operator(emulator, test_config(prom)):
        status = await wait_for("a status", lambda: status_of(emulator, "podinfo") or None)
        ready = condition(status, "Ready")
        assert ready is not None and ready["status"] == "False"
        assert "spec.analysis.maxWeight" in ready["message"]
        assert any("spec.analysis.maxWeight" in note for _, note in events_of(emulator, "podinfo"))
        await asyncio.sleep(0.6)  # a few more ticks: still nothing touched
        assert emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary") is None
        assert emulator.read_object(VIRTUAL_SERVICES, NS, "podinfo") is None
        assert emulator.list_objects(SERVICES, NS) == []
        assert emulator.read_object(DEPLOYMENTS, NS, "podinfo")["spec"]["replicas"] == 2
        emulator.patch_object(CANARIES, NS, "podinfo", {"spec": {"analysis": {"maxWeight": 50}}})
        await wait_phase(emulator, "podinfo", "Initialized")
    assert emulator.read_object(DEPLOYMENTS, NS, "podinfo-primary") is not None
    assert len([r for r in reasons(emulator, "podinfo") if r == "InvalidSpec"]) == 1, "reported once, not per tick"


async def test_a_missing_target_and_a_second_canary_on_one_target_are_reported(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    setup(emulator, "podinfo")
    emulator.create_object(CANARIES, canary("ghost", target="nothere"), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        emulator.create_object(CANARIES, canary("second", target="podinfo"), NS)
        second = await wait_for("the second Canary's status", lambda: status_of(emulator, "second") or None)
        ghost = status_of(emulator, "ghost")
    ready = condition(second, "Ready")
    assert ready is not None and ready["status"] == "False"
    assert "spec.targetRef" in ready["message"] and "already managed by Canary podinfo" in ready["message"]
    assert any("spec.targetRef" in note for _, note in events_of(emulator, "second"))
    assert status_of(emulator, "podinfo")["phase"] == "Initialized", "the first Canary is unaffected"
    assert "nothere" in str(ghost.get("message", "")) or "nothere" in str(condition(ghost, "Ready"))
    assert any("nothere" in note for _, note in events_of(emulator, "ghost"))
    assert emulator.read_object(DEPLOYMENTS, NS, "nothere-primary") is None
    assert emulator.read_object(VIRTUAL_SERVICES, NS, "nothere") is None


async def test_manual_promote_past_a_pause_and_abort(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    steps = {"steps": [{"setWeight": 30}, {"pause": {}}, {"setWeight": 60}]}
    analysis = {"stepWeight": None, "maxWeight": None, **steps}
    for name in ("paused", "aborted"):
        setup(emulator, name, analysis=analysis)
    async with operator(emulator, test_config(prom)):
        for name in ("paused", "aborted"):
            await wait_phase(emulator, name, "Initialized")
            new_image(emulator, name, f"{name}:2")
        await wait_phase(emulator, "paused", "WaitingPromotion")
        await wait_phase(emulator, "aborted", "WaitingPromotion")
        assert weights_of(emulator, "paused") == (70, 30)
        request_id = request(emulator, "paused", ManualAction.PROMOTE)
        abort_id = request(emulator, "aborted", ManualAction.ABORT)
        status = await wait_phase(emulator, "paused", "Succeeded", timeout=30)
        aborted = await wait_phase(emulator, "aborted", "Failed", timeout=10)
    assert status["lastRequestId"] == request_id and aborted["lastRequestId"] == abort_id
    assert weights_of(emulator, "aborted") == (100, 0)
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "aborted-primary")) == "aborted:1"
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, "paused-primary")) == "paused:2"
