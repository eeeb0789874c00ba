"""People in the loop, end to end: a confirm-promotion gate holds a rollout until `kubectl coalmine promote` opens
it — across an operator restart — and the operator's own /metrics reports the rollout as it goes.

Real operator (kopf + our handlers) over HTTP against the emulated API, a real webhook receiver on 127.0.0.1 that
keeps the gate closed, and the real plugin CLI writing the request annotation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes.client
import pytest
from emulator import CoalmineEmulator, operator_settings, running_operator, write_kubeconfig
from http_recorder import Answer, Recorder, serve
from typer.testing import CliRunner

from controller.cli.plugin import app as plugin
from controller.operator.context import OperatorConfig
from controller.operator.runtime import build_context, build_registry, configure_settings

NS = "default"
CANARIES = "coalmine.dev/v1alpha1/canaries"


@pytest.fixture
def receiver() -> Iterator[Recorder]:
    yield from serve()


def deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfo", "image": image}]},
            },
        },
    }


def canary(gate_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {
                "interval": "1s",
                "threshold": 2,
                "stepWeight": 50,
                "maxWeight": 50,
                "webhooks": [{"name": "release-approval", "type": "confirm-promotion", "url": gate_url}],
            },
        },
    }


async def phase_of(emulator: CoalmineEmulator) -> str | None:
    obj = emulator.read_object(CANARIES, NS, "podinfo")
    return None if obj is None else (obj.get("status") or {}).get("phase")


async def wait_phase(emulator: CoalmineEmulator, phase: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while await phase_of(emulator) != phase:
            await asyncio.sleep(0.1)


async def test_confirm_promotion_gate_waits_for_kubectl_promote_across_a_restart(
    emulator: CoalmineEmulator, receiver: Recorder, tmp_path: Path
) -> None:
    gate = receiver.script("/gate", Answer(403, "closed"))
    config = OperatorConfig(tick_seconds=0.2)
    settings = operator_settings()
    configure_settings(settings)
    emulator.create_object("apps/v1/deployments", deployment("podinfo:1"), NS)
    emulator.create_object(CANARIES, canary(gate), NS)

    def operator() -> Any:
        ctx = build_context(config, kubernetes.client.Configuration(host=str(emulator.url).rstrip("/")))
        return ctx, running_operator(emulator, registry=build_registry(config), settings=settings, memo={"ctx": ctx})

    ctx, running = operator()
    endpoint = ctx.metrics.serve(0, addr="127.0.0.1")
    try:
        async with running:
            await wait_phase(emulator, "Initialized")
            emulator.patch_object(
                "apps/v1/deployments",
                NS,
                "podinfo",
                {"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:2"}]}}}},
            )
            await wait_phase(emulator, "WaitingPromotion")
            scrape = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{endpoint.port}/metrics")
            assert 'coalmine_canary_weight{namespace="default",workload="podinfo"} 50.0' in scrape.text
            assert 'coalmine_canary_status{kind="Canary",name="podinfo",namespace="default"} 0.0' in scrape.text
    finally:
        endpoint.close()
    asked_before_restart = len(receiver.requests_to("/gate"))
    assert asked_before_restart >= 1

    # The operator is down; nothing moves. A new operator process keeps the rollout held at the gate.
    ctx, running = operator()
    async with running:
        await asyncio.sleep(2.0)
        assert await phase_of(emulator) == "WaitingPromotion"
        assert len(receiver.requests_to("/gate")) > asked_before_restart  # still asking the gate, still closed
        status = emulator.read_object(CANARIES, NS, "podinfo")["status"]
        assert status["canaryWeight"] == 50

        kubeconfig = write_kubeconfig(str(emulator.url), tmp_path / "kubeconfig")
        result = await asyncio.to_thread(
            CliRunner().invoke,
            plugin,
            ["promote", "podinfo", "-n", NS, "--kubeconfig", str(kubeconfig), "--wait", "20s"],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        await wait_phase(emulator, "Succeeded", timeout=30)

    primary = emulator.read_object("apps/v1/deployments", NS, "podinfo-primary")
    assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:2"
    events = [e.get("reason") for e in emulator.list_objects("events.k8s.io/v1/events", NS)]
    assert "PromotionApproved" in events and "Succeeded" in events
