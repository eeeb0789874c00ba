"""``coalmine run --selector``: an operator shards by label — it handles only the Canaries carrying its labels."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
import kubernetes.client
import pytest
from emulator import CoalmineEmulator, operator_settings, running_operator

from controller.handlers.common import label_filter
from controller.operator.context import OperatorConfig, parse_selector
from controller.operator.runtime import build_context, build_registry, configure_settings

NS = "default"
CANARIES = "coalmine.dev/v1alpha1/canaries"
DEPLOYMENTS = "apps/v1/deployments"


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"{name}:1", "ports": [{"containerPort": 9898}]}]},
            },
        },
    }


def canary(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": meta,
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "service": {"port": 9898},
            "analysis": {"interval": "1s", "threshold": 2, "stepWeight": 50, "maxWeight": 50},
        },
    }


def _read(emulator: CoalmineEmulator, name: str) -> dict[str, Any]:
    return dict(emulator.read_object(CANARIES, NS, name) or {})


def test_selector_items_parse_to_kopf_label_filters() -> None:
    selector = parse_selector(["shard=a", "team"])
    assert selector == (("shard", "a"), ("team", None))
    assert label_filter(selector) == {"shard": "a", "team": kopf.PRESENT}
    assert label_filter(()) is None
    for bad in (["=a"], ["shard=a", "shard=b"]):
        with pytest.raises(ValueError, match="selector"):
            parse_selector(bad)


async def test_an_operator_with_a_selector_ignores_canaries_without_its_labels(emulator: CoalmineEmulator) -> None:
    config = OperatorConfig(tick_seconds=0.2, selector=parse_selector(["shard=a"]))
    ctx = build_context(config, kubernetes.client.Configuration(host=str(emulator.url).rstrip("/")))
    settings = operator_settings()
    configure_settings(settings)
    for name, labels in (("mine", {"shard": "a"}), ("other-shard", {"shard": "b"}), ("unlabelled", None)):
        emulator.create_object(DEPLOYMENTS, deployment(name), NS)
        emulator.create_object(CANARIES, canary(name, copy.deepcopy(labels)), NS)
    async with running_operator(emulator, registry=build_registry(config), settings=settings, memo={"ctx": ctx}):
        async with asyncio.timeout(20):
            while _read(emulator, "mine").get("status", {}).get("phase") != "Initialized":
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # several more ticks: the others would have been touched by now
        for name in ("other-shard", "unlabelled"):
            ignored = _read(emulator, name)
            assert not (ignored.get("status") or {}).get("phase"), ignored.get("status")
            assert not (ignored.get("metadata") or {}).get("finalizers")
            assert emulator.read_object(DEPLOYMENTS, NS, f"{name}-primary") is None
        assert emulator.read_object(DEPLOYMENTS, NS, "mine-primary") is not None
