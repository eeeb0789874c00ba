"""Smoke: the real operator (kopf + our handlers) initialises a Canary and promotes a new image against the emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes.client
from emulator import CoalmineEmulator, operator_settings, running_operator

from controller.operator.context import OperatorConfig
from controller.operator.runtime import build_context, build_registry, configure_settings

NS = "default"


def deployment(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfo", "image": image, "ports": [{"containerPort": 9898}]}]},
            },
        },
    }


CANARY = {
    "apiVersion": "coalmine.dev/v1alpha1",
    "kind": "Canary",
    "metadata": {"name": "podinfo", "namespace": NS},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
        "service": {"port": 9898},
        "analysis": {"interval": "1s", "threshold": 2, "stepWeight": 50, "maxWeight": 50},
    },
}


async def wait_phase(emulator: CoalmineEmulator, phase: str, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            obj = emulator.read_object("coalmine.dev/v1alpha1/canaries", NS, "podinfo")
            if obj is not None and (obj.get("status") or {}).get("phase") == phase:
                return dict(obj)
            await asyncio.sleep(0.1)


async def test_initialise_and_promote(emulator: CoalmineEmulator) -> None:
    config = OperatorConfig(tick_seconds=0.2)
    configuration = kubernetes.client.Configuration(host=str(emulator.url).rstrip("/"))
    ctx = build_context(config, configuration)
    settings = operator_settings()
    configure_settings(settings)
    emulator.create_object("apps/v1/deployments", deployment("podinfo:1"), NS)
    emulator.create_object("coalmine.dev/v1alpha1/canaries", CANARY, NS)
    async with running_operator(emulator, registry=build_registry(config), settings=settings, memo={"ctx": ctx}):
        await wait_phase(emulator, "Initialized")
        primary = emulator.read_object("apps/v1/deployments", NS, "podinfo-primary")
        assert primary is not None
        emulator.patch_object(
            "apps/v1/deployments",
            NS,
            "podinfo",
            {"spec": {"template": {"spec": {"containers": [{"name": "podinfo", "image": "podinfo:2"}]}}}},
        )
        await wait_phase(emulator, "Succeeded", timeout=30)
        primary = emulator.read_object("apps/v1/deployments", NS, "podinfo-primary")
        assert primary["spec"]["template"]["spec"]["containers"][0]["image"] == "podinfo:2"
