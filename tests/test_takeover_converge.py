"""Taking over the user's objects, on the real operator against the emulated API (issue "Correct on a real
cluster", item 4).

- A user's LoadBalancer apex Service keeps its type, nodePort, externalTrafficPolicy, loadBalancer* fields, labels
  and annotations; only selector and ports are Coalmine's (Flagger's rule).
- Spec edits reach the Services, VirtualService and DestinationRules within one interval in every phase —
  Succeeded included — not at the next release.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    DESTINATION_RULES,
    NS,
    SERVICES,
    VIRTUAL_SERVICES,
    ScriptedPrometheus,
    canary,
    deployment,
    new_image,
    operator,
    scripted_prometheus,
    status_of,
    test_config,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.timeout(60)

USER_SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "podinfo",
        "labels": {"team": "shop"},
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
    },
    "spec": {
        "type": "LoadBalancer",
        "externalTrafficPolicy": "Local",
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
        "selector": {"app": "podinfo"},
        "ports": [{"name": "http", "protocol": "TCP", "port": 9898, "targetPort": 9898, "nodePort": 31080}],
    },
}


@pytest.fixture
def prom() -> Any:
    with scripted_prometheus() as responder:
        yield responder


def _http_route(emulator: CoalmineEmulator) -> dict[str, Any]:
    vs = emulator.read_object(VIRTUAL_SERVICES, NS, "podinfo")
    assert vs is not None
    routes: list[dict[str, Any]] = vs["spec"]["http"]
    return routes[-1]


async def test_a_load_balancer_entry_point_stays_up_when_taken_over(
    emulator: CoalmineEmulator, prom: ScriptedPrometheus
) -> None:
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(SERVICES, copy.deepcopy(USER_SERVICE), NS)
    before = emulator.read_object(SERVICES, NS, "podinfo")
    emulator.create_object(CANARIES, canary("podinfo"), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        apex = emulator.read_object(SERVICES, NS, "podinfo")
    assert apex is not None and before is not None
    assert apex["spec"]["selector"] == {"app": "podinfo-primary"}
    kept = ("type", "externalTrafficPolicy", "loadBalancerSourceRanges", "clusterIP")
    assert {k: apex["spec"].get(k) for k in kept} == {k: before["spec"].get(k) for k in kept}
    assert [p.get("nodePort") for p in apex["spec"]["ports"]] == [31080]
    assert apex["metadata"]["labels"] == {"team": "shop"}
    assert apex["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert not apex["metadata"].get("ownerReferences"), "a user's Service must never be garbage-collected with us"


async def test_spec_edits_converge_while_succeeded(emulator: CoalmineEmulator, prom: ScriptedPrometheus) -> None:
    emulator.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:1"), NS)
    emulator.create_object(CANARIES, canary("podinfo"), NS)
    async with operator(emulator, test_config(prom)):
        await wait_phase(emulator, "podinfo", "Initialized")
        new_image(emulator, "podinfo", "podinfo:2")
        await wait_phase(emulator, "podinfo", "Succeeded", timeout=30)
        edit = {
            "spec": {
                "service": {
                    "timeout": "7s",
                    "retries": {"attempts": 4, "perTryTimeout": "2s", "retryOn": "5xx"},
                    "headers": {"request": {"add": {"x-edited": "yes"}}},
                    "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
                    "apex": {"labels": {"edited": "yes"}},
                }
            }
        }
        emulator.patch_object(CANARIES, NS, "podinfo", edit)

        def converged() -> bool:
            route = _http_route(emulator)
            rule = emulator.read_object(DESTINATION_RULES, NS, "podinfo-primary") or {}
            apex = emulator.read_object(SERVICES, NS, "podinfo") or {}
            return (
                route.get("timeout") == "7s"
                and (route.get("retries") or {}).get("attempts") == 4
                and ((route.get("headers") or {}).get("request") or {}).get("add") == {"x-edited": "yes"}
                and ((rule.get("spec") or {}).get("trafficPolicy") or {}).get("tls") == {"mode": "ISTIO_MUTUAL"}
                and (apex.get("metadata") or {}).get("labels", {}).get("edited") == "yes"
            )

        def recorded() -> bool:
            generation = emulator.read_object(CANARIES, NS, "podinfo")["metadata"]["generation"]
            return bool(status_of(emulator, "podinfo").get("appliedGeneration") == generation)

        # one 1 s interval, plus a tick. The router objects are written before the status that records the applied
        # generation (separate objects, never one atomic write), so each is waited for within the same bound.
        await wait_for("the edit on the Services, VirtualService and DestinationRules", converged, timeout=3)
        await wait_for("status.appliedGeneration to record the edit", recorded, timeout=1)
        assert status_of(emulator, "podinfo")["phase"] == "Succeeded"
