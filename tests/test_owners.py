"""The "one target, one Canary" index the operator keeps in memory (controller.operator.owners)."""

from __future__ import annotations

from typing import Any

from fakekube import FakeKube

from controller.handlers.canary import conflict
from controller.kube.api import CANARIES
from controller.operator.owners import TargetIndex, confirm_owner, seed


def rollout(name: str, target: str, created: str, uid: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": "test", "uid": uid or f"uid-{name}", "creationTimestamp": created},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
    }


def test_the_oldest_canary_on_a_target_owns_it_and_a_moved_target_frees_the_old_one() -> None:
    index = TargetIndex()
    old, young = rollout("old", "podinfo", "2026-01-01T00:00:00Z"), rollout("young", "podinfo", "2026-01-02T00:00:00Z")
    index.note(young)
    index.note(old)
    assert conflict(old, {"Canary": index, "BlueGreen": TargetIndex()}) is None
    found = conflict(young, {"Canary": index, "BlueGreen": TargetIndex()})
    assert found is not None and found.name == "old"
    assert "already managed by Canary old" in found.message()

    old["spec"]["targetRef"]["name"] = "other"  # the old one now targets something else
    index.note(old)
    assert conflict(young, {"Canary": index, "BlueGreen": TargetIndex()}) is None
    assert sorted(index) == [("test", "other"), ("test", "podinfo")]

    index.drop("uid-old")
    assert sorted(index) == [("test", "podinfo")]


def test_seeding_lists_every_object_so_the_owner_is_known_before_anything_ticks() -> None:
    kube = FakeKube()
    kube.create(CANARIES, "test", rollout("old", "podinfo", "2026-01-01T00:00:00Z"))
    kube.create(CANARIES, "test", rollout("young", "podinfo", "2026-01-02T00:00:00Z"))
    index = TargetIndex()
    assert seed(kube, CANARIES, ("test",), None, index) == 2
    found = conflict(rollout("young", "podinfo", "2026-01-02T00:00:00Z"), {"Canary": index, "BlueGreen": TargetIndex()})
    assert found is not None and found.name == "old"


def test_an_owner_that_is_gone_without_its_deletion_handler_stops_blocking() -> None:
    """E.g. its finalizer removed by hand: the blocked Canary checks, and the target is free again."""
    kube = FakeKube()
    index = TargetIndex()
    index.note(rollout("old", "podinfo", "2026-01-01T00:00:00Z"))
    young = rollout("young", "podinfo", "2026-01-02T00:00:00Z")
    index.note(young)
    kube.create(CANARIES, "test", young)

    found = conflict(young, {"Canary": index, "BlueGreen": TargetIndex()})
    assert found is not None
    assert confirm_owner(kube, CANARIES, found.key, found.name, index, now=0.0) is False  # "old" does not exist
    assert conflict(young, {"Canary": index, "BlueGreen": TargetIndex()}) is None

    kube.create(CANARIES, "test", rollout("older", "podinfo", "2025-12-01T00:00:00Z"))
    index.note(rollout("older", "podinfo", "2025-12-01T00:00:00Z"))
    found = conflict(young, {"Canary": index, "BlueGreen": TargetIndex()})
    assert found is not None and confirm_owner(kube, CANARIES, found.key, found.name, index, now=0.0) is True
    kube.delete(CANARIES, "test", "older")
    assert confirm_owner(kube, CANARIES, found.key, found.name, index, now=30.0) is True  # trusted for a minute
    assert confirm_owner(kube, CANARIES, found.key, found.name, index, now=61.0) is False
    assert conflict(young, {"Canary": index, "BlueGreen": TargetIndex()}) is None
