"""BlueGreen end to end: the real operator (kopf, the BlueGreen handlers, the Kubernetes and Istio adapters) against
the emulated API and a scripted Prometheus, with 1 s looks and a 0.2 s tick.

The VirtualService weights and the phases are read from the emulator's commit stream, so even a state that lasted
one tick is seen: "traffic never left blue" is checked on every write, not on a sample.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    DEPLOYMENTS,
    EVENTS,
    NS,
    SUCCESS_RATE,
    VIRTUAL_SERVICES,
    History,
    QueryKind,
    ScriptedPrometheus,
    deployment,
    image_of,
    new_image,
    operator,
    scripted_prometheus,
    test_config,
    validate_written,
    vs_weights,
    wait_for,
)

from controller.handlers.bluegreen import conflict as bluegreen_blocker
from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import REQUEST_ANNOTATION, encode_request

pytestmark = pytest.mark.timeout(60)

BLUEGREENS = "coalmine.dev/v1alpha1/bluegreens"
NAME = "podinfo"


def bluegreen(**spec: Any) -> dict[str, Any]:
    """A BlueGreen with short timings: 1 s looks, 50 % mirrored preview, 2 looks before and after the switch."""
    body: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
        "service": {"port": 9898},
        "progressDeadlineSeconds": 60,
        "analysis": {"interval": "1s", "threshold": 1, "metrics": [SUCCESS_RATE]},
        "preview": {"mirror": True, "mirrorWeight": 50},
        "prePromotionAnalysis": {"iterations": 2},
        "postPromotionAnalysis": {"iterations": 2},
        "scaleDownDelaySeconds": 1,
        **spec,
    }
    body = {key: value for key, value in body.items() if value is not None}  # None: leave the field out
    return {"apiVersion": "coalmine.dev/v1alpha1", "kind": "BlueGreen", "metadata": {"name": NAME}, "spec": body}


@pytest.fixture
def prom() -> Iterator[ScriptedPrometheus]:
    with scripted_prometheus() as responder:
        yield responder


@pytest.fixture
def history(emulator: CoalmineEmulator) -> History:
    return History.install(emulator)


def setup(emulator: CoalmineEmulator, **spec: Any) -> None:
    emulator.create_object(DEPLOYMENTS, deployment(NAME, f"{NAME}:1"), NS)
    emulator.create_object(BLUEGREENS, bluegreen(**spec), NS)


def status(emulator: CoalmineEmulator) -> dict[str, Any]:
    return dict((emulator.read_object(BLUEGREENS, NS, NAME) or {}).get("status") or {})


async def wait_phase(emulator: CoalmineEmulator, phase: str, timeout: float = 20.0) -> dict[str, Any]:
    found: dict[str, Any] = await wait_for(
        f"BlueGreen {NAME} to reach {phase}",
        lambda: (lambda s: s if s.get("phase") == phase else None)(status(emulator)),
        timeout,
    )
    return found


async def wait_announced(emulator: CoalmineEmulator) -> None:
    """Wait for the Events of the transitions written so far: they go out one tick later (``status.outbox``)."""
    await wait_for(f"BlueGreen {NAME}'s outbox to be announced", lambda: not status(emulator).get("outbox"))


def phases(history: History) -> list[str]:
    seen: list[str] = []
    for write in history.of("/bluegreens", NAME):
        phase = (write.obj.get("status") or {}).get("phase")
        if phase and (not seen or seen[-1] != phase):
            seen.append(phase)
    return seen


def routes(history: History) -> list[tuple[int, int, float | None]]:
    """(blue, green, mirror %) of every VirtualService write, consecutive repeats collapsed."""
    seen: list[tuple[int, int, float | None]] = []
    for write in history.of("/virtualservices", NAME):
        if write.kind == "DELETED":
            continue
        weighted = next(r for r in write.obj["spec"]["http"] if r.get("name") == "weighted")
        blue, green = (int(d["weight"]) for d in weighted["route"])  # primary first, as the router writes it
        item = (blue, green, (weighted.get("mirrorPercentage") or {}).get("value"))
        if not seen or seen[-1] != item:
            seen.append(item)
    return seen


def reasons(emulator: CoalmineEmulator) -> list[str]:
    found = [
        e
        for e in emulator.list_objects(EVENTS, NS)
        if (e.get("regarding") or {}).get("kind") == "BlueGreen" and (e.get("regarding") or {}).get("name") == NAME
    ]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [str(e.get("reason", "")) for e in found]


def replicas(emulator: CoalmineEmulator, name: str) -> int:
    return int(emulator.read_object(DEPLOYMENTS, NS, name)["spec"]["replicas"])


def request(emulator: CoalmineEmulator, action: ManualAction) -> None:
    """What ``kubectl coalmine <action>`` writes: the request annotation."""
    _, value = encode_request(action, "tester", 0.0)
    emulator.patch_object(BLUEGREENS, NS, NAME, {"metadata": {"annotations": {REQUEST_ANNOTATION: value}}})


async def test_auto_promotion_previews_switches_promotes_and_scales_green_down_after_the_delay(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, scaleDownDelaySeconds=2)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "Initialized")
        assert replicas(emulator, NAME) == 0 and replicas(emulator, f"{NAME}-primary") == 2
        new_image(emulator, NAME, f"{NAME}:2")
        await wait_phase(emulator, "Finalising", timeout=30)
        finalising_at = time.monotonic()
        assert replicas(emulator, NAME) > 0, "green stays up during the scale-down delay"
        assert image_of(emulator.read_object(DEPLOYMENTS, NS, f"{NAME}-primary")) == f"{NAME}:2"
        await wait_for("green scaled down", lambda: replicas(emulator, NAME) == 0)
        waited = time.monotonic() - finalising_at
        final = await wait_phase(emulator, "Succeeded")
        await wait_announced(emulator)
    assert waited >= 1.5, f"green went away {waited:.2f}s after Finalising; scaleDownDelaySeconds is 2"
    assert phases(history) == ["Initializing", "Initialized", "Progressing", "Promoting", "Finalising", "Succeeded"]
    # Blue only, then blue + 50 % mirrored to green, then everything to green at once, then back to (new) blue.
    assert routes(history) == [(100, 0, None), (100, 0, 50.0), (0, 100, None), (100, 0, None)]
    assert final["lastPromotedSpec"] == final["lastAppliedSpec"]
    assert [c["status"] for c in final["conditions"] if c["type"] == "Ready"] == ["True"]
    assert {"AnalysisStarted", "Promoting", "Finalising", "Succeeded"} <= set(reasons(emulator))
    # Two pre-promotion and two post-promotion looks read green's success rate; the first look ran hooks only.
    assert len(prom.queries_for(NAME, QueryKind.SUCCESS_RATE)) == 4
    assert validate_written(emulator) >= 8
    # Everything Coalmine created is owned by (and garbage-collected with) the BlueGreen, not a Canary of that name.
    for resource in (DEPLOYMENTS, "v1/services", VIRTUAL_SERVICES, "networking.istio.io/v1beta1/destinationrules"):
        for obj in emulator.list_objects(resource, NS):
            if obj["metadata"]["name"] != NAME or resource != DEPLOYMENTS:
                owners = obj["metadata"].get("ownerReferences") or []
                assert [(o["kind"], o["name"]) for o in owners] == [("BlueGreen", NAME)], obj["metadata"]


async def test_manual_promotion_waits_for_kubectl_coalmine_promote(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, autoPromotion={"enabled": False}, postPromotionAnalysis=None)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "Initialized")
        new_image(emulator, NAME, f"{NAME}:2")
        waiting = await wait_phase(emulator, "WaitingPromotion", timeout=30)
        assert waiting["hold"] == "ManualPause" and "kubectl coalmine promote" in waiting["message"]
        emulator.patch_object(BLUEGREENS, NS, NAME, {"spec": {"progressDeadlineSeconds": 2}})
        await asyncio.sleep(3)  # past the 2 s progress deadline: a person is awaited, nothing fails
        assert status(emulator)["phase"] == "WaitingPromotion"
        assert vs_weights(emulator.read_object(VIRTUAL_SERVICES, NS, NAME)) == (100, 0)
        request(emulator, ManualAction.PROMOTE)
        await wait_phase(emulator, "Succeeded", timeout=20)
        await wait_announced(emulator)
    assert routes(history) == [(100, 0, None), (100, 0, 50.0), (0, 100, None), (100, 0, None)]
    assert "PromotionApproved" in reasons(emulator)


async def test_pre_promotion_failure_fails_and_traffic_never_left_blue(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, preview={"match": [{"headers": {"x-preview": {"exact": "1"}}}]})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "Initialized")
        prom.script(NAME, success_rate=80.0)
        new_image(emulator, NAME, f"{NAME}:2")
        failed = await wait_phase(emulator, "Failed", timeout=30)
        await wait_announced(emulator)
    assert failed["failedChecks"] == 1 and "Promoting" not in phases(history)
    assert all(blue == 100 for blue, _, _ in routes(history)), routes(history)
    matched = [
        route
        for write in history.of("/virtualservices", NAME)
        for route in write.obj["spec"]["http"]
        if route.get("name") == "canary-match"
    ]
    assert any(r["route"][1]["weight"] == 100 for r in matched), "the match route sent previews to green"
    assert image_of(emulator.read_object(DEPLOYMENTS, NS, f"{NAME}-primary")) == f"{NAME}:1"
    assert replicas(emulator, NAME) == 0
    assert reasons(emulator)[-1] == "RolledBack"


async def test_post_promotion_failure_switches_traffic_back_to_blue(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, postPromotionAnalysis={"iterations": 5})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "Initialized")
        new_image(emulator, NAME, f"{NAME}:2")
        await wait_phase(emulator, "Promoting", timeout=30)
        prom.script(NAME, success_rate=80.0)
        failed = await wait_phase(emulator, "Failed", timeout=20)
        await wait_announced(emulator)
    assert routes(history) == [(100, 0, None), (100, 0, 50.0), (0, 100, None), (100, 0, None)]
    assert failed["canaryWeight"] == 0
    # Blue never took the new revision: the switch back is to the old, known-good pods.
    primary_images = {image_of(w.obj) for w in history.of("/deployments", f"{NAME}-primary") if w.kind != "DELETED"}
    assert primary_images == {f"{NAME}:1"}
    assert replicas(emulator, NAME) == 0 and reasons(emulator)[-1] == "RolledBack"


async def test_operator_restart_mid_switch_resumes_without_flipping_traffic(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus, history: History
) -> None:
    setup(emulator, postPromotionAnalysis={"iterations": 3})
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "Initialized")
        new_image(emulator, NAME, f"{NAME}:2")
        before = await wait_phase(emulator, "Promoting", timeout=30)
    # The operator is gone with all traffic on green; a new process (nothing shared but the cluster) takes over.
    assert vs_weights(emulator.read_object(VIRTUAL_SERVICES, NS, NAME)) == (0, 100)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "Succeeded", timeout=30)
    assert routes(history) == [(100, 0, None), (100, 0, 50.0), (0, 100, None), (100, 0, None)]
    assert phases(history) == ["Initializing", "Initialized", "Progressing", "Promoting", "Finalising", "Succeeded"]
    promoting = [
        w.obj["status"] for w in history.of("/bluegreens", NAME) if w.obj.get("status", {}).get("phase") == "Promoting"
    ]
    assert promoting[0]["lastTransitionTime"] == before["lastTransitionTime"]
    assert all(s["lastTransitionTime"] == before["lastTransitionTime"] for s in promoting), "no second switch"


def test_one_deployment_has_one_owner_and_a_canary_wins() -> None:
    """The handler's refusal message (shown in the BlueGreen's Ready condition) names who owns the target."""
    body = {"metadata": {"name": "b", "namespace": NS, "creationTimestamp": "2026-01-02T00:00:00Z"}}
    body["spec"] = {"targetRef": {"name": NAME}}
    key = (NS, NAME)

    def bluegreen_conflict(bluegreens: dict[Any, Any], canaries: dict[Any, Any]) -> str | None:
        found = bluegreen_blocker(body, {"BlueGreen": bluegreens, "Canary": canaries})
        return None if found is None else found.message()

    assert bluegreen_conflict({key: [("2026-01-02T00:00:00Z", "b")]}, {}) is None
    by_canary = bluegreen_conflict({key: [("2026-01-02T00:00:00Z", "b")]}, {key: [("2026-01-03", "c")]})
    assert by_canary is not None and "already managed by Canary c" in by_canary
    older = [("2026-01-01T00:00:00Z", "a"), ("2026-01-02T00:00:00Z", "b")]
    by_bluegreen = bluegreen_conflict({key: older}, {})
    assert by_bluegreen is not None and "already managed by BlueGreen a" in by_bluegreen
    assert "one Canary or BlueGreen" in by_bluegreen
