"""The target's pod-template hash is computed once per version of the Deployment, not once per tick."""

from __future__ import annotations

from typing import Any

import pytest

from controller.kube.objects import pod_template_hash
from controller.operator import gather


def _deployment(image: str, version: str, uid: str = "u-1") -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "namespace": "ns", "uid": uid, "resourceVersion": version},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
    }


def test_the_hash_is_remembered_per_uid_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    computed: list[str] = []

    def counting(deployment: Any) -> str:
        computed.append(deployment["metadata"].get("resourceVersion", "-"))
        return pod_template_hash(deployment)

    monkeypatch.setattr(gather, "pod_template_hash", counting)
    monkeypatch.setattr(gather, "_template_hashes", {})
    first = gather._template_hash(_deployment("app:1", "7"))
    assert gather._template_hash(_deployment("app:1", "7")) == first
    assert computed == ["7"]
    changed = gather._template_hash(_deployment("app:2", "8"))  # a new version: hashed again, and different
    assert changed != first and computed == ["7", "8"]
    other = gather._template_hash(_deployment("app:1", "7", uid="u-2"))  # another object: its own entry
    assert other == first and computed == ["7", "8", "7"]
    unversioned = _deployment("app:3", "")
    gather._template_hash(unversioned)
    gather._template_hash(unversioned)
    assert computed[-2:] == ["", ""]  # without a version nothing is remembered
