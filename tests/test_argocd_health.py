"""The Argo CD health check, run in Lua 5.1 (the dialect of Argo CD's gopher-lua) against the status the operator
really writes: every phase's status is built with the engine's own status model and condition derivation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import lupa.lua51 as lua51
import pytest
import yaml

from controller.rollout.conditions import derive_conditions
from controller.rollout.phases import Hold, Phase
from controller.rollout.status import CanaryStatus, Condition

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / "gitops" / "argocd" / "health.lua").read_text()
NOW = 1_790_000_000.0

EXPECTED = {
    Phase.INITIALIZING: "Progressing",
    Phase.INITIALIZED: "Healthy",
    Phase.WAITING: "Progressing",
    Phase.PROGRESSING: "Progressing",
    Phase.WAITING_PROMOTION: "Suspended",
    Phase.PROMOTING: "Progressing",
    Phase.FINALISING: "Progressing",
    Phase.SUCCEEDED: "Healthy",
    Phase.FAILED: "Degraded",
    Phase.TERMINATING: "Progressing",
    Phase.TERMINATED: "Progressing",
}


def health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the script as Argo CD does: ``obj`` is the live object as a Lua table, the chunk returns ``hs``."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(SCRIPT)
    assert result is not None, "the script must return hs"
    return {str(k): str(v) for k, v in result.items()}


def canary(status: CanaryStatus | None, generation: int = 3, kind: str = "Canary") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "podinfo", "namespace": "test", "generation": generation},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}},
    }
    if status is not None:
        obj["status"] = status.to_dict()
    return obj


def written(phase: Phase, generation: int = 3, **fields: Any) -> CanaryStatus:
    """The status the operator writes in ``phase``: conditions derived by the engine, generation observed."""
    status = CanaryStatus(phase=phase, observed_generation=generation, **fields)
    return replace(status, conditions=derive_conditions(status, NOW, generation))


def test_every_phase_has_an_expected_health() -> None:
    assert set(EXPECTED) == set(Phase), "a new phase needs a decision in health.lua and here"


@pytest.mark.parametrize("kind", ["Canary", "BlueGreen"])
@pytest.mark.parametrize("phase", list(Phase))
def test_each_phase_maps_to_an_argo_cd_health(phase: Phase, kind: str) -> None:
    result = health(canary(written(phase, canary_weight=20), kind=kind))
    assert result["status"] == EXPECTED[phase]
    assert result["message"]


def test_progressing_shows_the_weight_and_what_the_operator_says() -> None:
    result = health(canary(written(Phase.PROGRESSING, canary_weight=30)))
    assert result == {
        "status": "Progressing",
        "message": "Progressing at canary weight 30%: New revision detected, progressing canary analysis.",
    }


def test_a_failed_rollout_is_degraded_with_the_reason() -> None:
    status = written(Phase.FAILED, failed_checks=2, message="Failed checks threshold reached 2")
    assert health(canary(status)) == {"status": "Degraded", "message": "Failed checks threshold reached 2"}


def test_a_spec_the_controller_has_not_seen_yet_is_progressing_even_if_the_last_rollout_succeeded() -> None:
    result = health(canary(written(Phase.SUCCEEDED, generation=3), generation=4))
    assert result == {"status": "Progressing", "message": "Waiting for Coalmine to observe generation 4"}


def test_an_object_without_status_is_progressing() -> None:
    assert health(canary(None))["status"] == "Progressing"


def test_an_invalid_spec_is_degraded() -> None:
    invalid = CanaryStatus(
        phase=Phase.INITIALIZING,
        observed_generation=3,
        conditions=(
            Condition(
                type="Ready",
                status="False",
                reason="InvalidSpec",
                message="spec.analysis.interval: must be at least 10s",
                observed_generation=3,
            ),
        ),
    )
    assert health(canary(invalid)) == {
        "status": "Degraded",
        "message": "Invalid spec: spec.analysis.interval: must be at least 10s",
    }


@pytest.mark.parametrize(
    "fields",
    [{"paused_by_user": True}, {"hold": Hold.USER_PAUSE}, {"hold": Hold.MANUAL_PAUSE}],
    ids=["pausedByUser", "UserPause", "ManualPause"],
)
def test_a_rollout_waiting_for_a_person_is_suspended(fields: dict[str, Any]) -> None:
    result = health(canary(written(Phase.PROGRESSING, canary_weight=40, **fields)))
    assert result["status"] == "Suspended"
    assert result["message"].startswith("Paused at canary weight 40%")


def test_an_automated_hold_keeps_progressing() -> None:
    result = health(canary(written(Phase.PROGRESSING, canary_weight=10, hold=Hold.NO_DATA)))
    assert result["status"] == "Progressing"


def test_a_phase_the_script_does_not_know_is_never_healthy() -> None:
    obj = canary(written(Phase.SUCCEEDED))
    obj["status"]["phase"] = "Verifying"
    assert health(obj)["status"] == "Unknown"


def test_the_argocd_cm_snippet_installs_this_very_script_for_both_kinds() -> None:
    snippet = yaml.safe_load((ROOT / "gitops" / "argocd" / "argocd-cm-snippet.yaml").read_text())
    assert snippet["metadata"] == {
        "name": "argocd-cm",
        "namespace": "argocd",
        "labels": {"app.kubernetes.io/name": "argocd-cm", "app.kubernetes.io/part-of": "argocd"},
    }
    data = snippet["data"]
    assert data["resource.customizations.health.coalmine.dev_Canary"] == SCRIPT
    assert data["resource.customizations.health.coalmine.dev_BlueGreen"] == SCRIPT
    assert data["application.resourceTrackingMethod"] == "annotation"


def test_the_argocd_application_example_respects_what_the_operator_owns() -> None:
    app = yaml.safe_load((ROOT / "gitops" / "argocd" / "application.yaml").read_text())
    ignored = {(d["kind"], d["name"], p) for d in app["spec"]["ignoreDifferences"] for p in d["jsonPointers"]}
    assert ("Deployment", "podinfo", "/spec/replicas") in ignored
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_the_flux_example_waits_on_the_canary_and_leaves_replicas_to_the_operator() -> None:
    docs = list(yaml.safe_load_all((ROOT / "gitops" / "flux" / "kustomization.yaml").read_text()))
    kustomization = next(d for d in docs if d["kind"] == "Kustomization")
    assert {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "name": "podinfo", "namespace": "test"} in (
        kustomization["spec"]["healthChecks"]
    )
    target = yaml.safe_load((ROOT / "gitops" / "flux" / "podinfo-deployment.yaml").read_text())
    assert "replicas" not in target["spec"]
