"""`kubectl coalmine` as people and CI pipelines use it, against the emulated API server over real HTTP.

The operator's half of the request protocol (read the annotation, record ``status.lastRequestId``, emit an Event)
is played by a background thread in these tests, using the same codec the operator imports.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import pytest
import yaml
from emulator import CoalmineEmulator, ThreadedEmulator, write_kubeconfig
from typer.testing import CliRunner

from controller.cli.plugin import app
from controller.kube.objects import pod_template_hash
from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import REQUEST_ANNOTATION, decode_request

CANARIES = "coalmine.dev/v1alpha1/canaries"
BLUEGREENS = "coalmine.dev/v1alpha1/bluegreens"
EVENTS = "events.k8s.io/v1/events"
DEPLOYMENTS = "apps/v1/deployments"
NS = "default"

SPEC: dict[str, Any] = {
    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
    "service": {"port": 9898},
    "analysis": {
        "interval": "1m",
        "threshold": 3,
        "stepWeight": 20,
        "maxWeight": 100,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
    },
}
EVIDENCE = {
    "outcome": "pass",
    "reason": "all 2 checks passed",
    "promotable": False,
    "holdReason": "errorRate: 310 of 500 canary requests needed",
    "detectable": "could have detected a 2.4× error-rate increase",
    "metrics": [
        {
            "metric": "request-success-rate",
            "kind": "threshold",
            "outcome": "pass",
            "reason": "99.6 ≥ 99",
            "value": 99.6,
        },
        {
            "metric": "errorRate",
            "kind": "errorRate",
            "outcome": "pass",
            "reason": "canary 5xx 1.1× primary (95% CI 0.4–2.9), p = 0.71",
            "estimate": 1.1,
            "pValue": 0.71,
            "lower": 0.4,
            "upper": 2.9,
            "canaryRequests": 310,
            "primaryRequests": 2900,
        },
    ],
}
JUDGE = {
    "version": 1,
    "errorRate": {
        "theta0": 1.0,
        "test": {
            "canaryRequests": 310.0,
            "canaryEvents": 2.0,
            "primaryRequests": 2900.0,
            "primaryEvents": 17.0,
            "looks": 4,
            "maxLogE": 0.5,
            "loglik": [0.1, 0.2],
        },
    },
}


# -- helpers ------------------------------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    """Run the plugin like a shell would; a wide terminal so table cells are not wrapped."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)


def add_rollout(
    emu: ThreadedEmulator,
    name: str = "podinfo",
    *,
    namespace: str = NS,
    resource: str = CANARIES,
    spec: dict[str, Any] | None = None,
    **status: Any,
) -> dict[str, Any]:
    kind = "BlueGreen" if resource == BLUEGREENS else "Canary"
    body = {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec if spec is not None else {**SPEC, "targetRef": {**SPEC["targetRef"], "name": name}},
    }
    emu.create_object(resource, body, namespace)
    if status:
        set_status(emu, name, namespace=namespace, resource=resource, **status)
    return emu.read_object(resource, namespace, name)  # type: ignore[no-any-return]


def set_status(
    emu: ThreadedEmulator, name: str = "podinfo", *, namespace: str = NS, resource: str = CANARIES, **status: Any
) -> None:
    emu.patch_object(resource, namespace, name, {"status": status}, subresource="status")


def add_event(emu: ThreadedEmulator, name: str, reason: str, note: str, *, type_: str = "Normal", at: float) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(at))
    emu.create_object(
        EVENTS,
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.{reason.lower()}.{int(at * 1000)}", "namespace": NS},
            "eventTime": stamp,
            "reportingController": "coalmine.dev/operator",
            "reportingInstance": "test",
            "action": "Reconcile",
            "reason": reason,
            "note": note,
            "type": type_,
            "regarding": {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "name": name, "namespace": NS},
        },
        NS,
    )


def annotations(emu: ThreadedEmulator, name: str = "podinfo") -> dict[str, str]:
    return dict(emu.read_object(CANARIES, NS, name)["metadata"].get("annotations") or {})


class FakeOperator:
    """The operator's half of a manual request: ``answer(request)`` returns (new status fields, ignore reason)."""

    def __init__(self, emu: ThreadedEmulator, answer: Callable[[ManualAction], tuple[dict[str, Any], str]]) -> None:
        self.emu, self.answer, self.handled = emu, answer, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeOperator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            obj = self.emu.read_object(CANARIES, NS, "podinfo")
            request = decode_request((obj["metadata"].get("annotations") or {}).get(REQUEST_ANNOTATION))
            if request is None or request.id == (obj.get("status") or {}).get("lastRequestId"):
                continue
            fields, ignore = self.answer(request.action)
            phase = obj["status"]["phase"]
            if ignore:  # like the operator: the Event names the id, then the status records it as handled
                message = f"Ignored {request.action} request {request.id} in phase {phase}: {ignore}"
                add_event(self.emu, "podinfo", "ManualRequestIgnored", message, type_="Warning", at=time.time())
            else:
                add_event(self.emu, "podinfo", "PromotionApproved", "Promotion of podinfo approved", at=time.time())
            set_status(self.emu, lastRequestId=request.id, **fields)
            self.handled += 1


@pytest.fixture
def emu(threaded_emulator: ThreadedEmulator, kubeconfig: Path) -> ThreadedEmulator:
    """The emulated API with ``KUBECONFIG`` pointing at it (context namespace ``default``, user ``emulator``)."""
    return threaded_emulator


# -- get ----------------------------------------------------------------------------------------------------------


def test_get_lists_the_namespace_and_all_namespaces(emu: ThreadedEmulator) -> None:
    add_rollout(emu, "podinfo", phase="Progressing", canaryWeight=40, stepIndex=2, failedChecks=1)
    add_rollout(emu, "backend", phase="Succeeded")
    add_rollout(emu, "other", namespace="kube-system", phase="Failed", failedChecks=3, noDataChecks=2)
    bluegreen = {"targetRef": {"kind": "Deployment", "name": "blue"}, "service": {"port": 80}}
    add_rollout(emu, "blue", resource=BLUEGREENS, spec=bluegreen, phase="Initialized")

    result = invoke("get")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "KIND", "PHASE", "WEIGHT", "STEP", "FAILED", "NODATA", "AGE"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert set(rows) == {"podinfo", "backend", "blue"}
    assert rows["podinfo"][2:8] == ["Canary", "Progressing", "40%", "2/5", "1", "0"]
    assert rows["blue"][2:4] == ["BlueGreen", "Initialized"]

    everywhere = invoke("get", "-A")
    assert {line.split()[1] for line in everywhere.output.splitlines()[1:]} == {"podinfo", "backend", "blue", "other"}
    other = next(line.split() for line in everywhere.output.splitlines() if " other " in line)
    assert other[0] == "kube-system" and other[6:8] == ["3", "2"]

    only_system = invoke("get", "-n", "kube-system", "-o", "json")
    assert [row["name"] for row in json.loads(only_system.output)["items"]] == ["other"]


def test_get_json_and_yaml_carry_the_same_rows(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1, noDataChecks=1)
    as_json = json.loads(invoke("get", "-o", "json").output)
    as_yaml = yaml.safe_load(invoke("get", "-o", "yaml").output)
    row = as_json["items"][0]
    assert row | {"age": None} == as_yaml["items"][0] | {"age": None}
    assert (row["phase"], row["weight"], row["step"], row["steps"], row["noDataChecks"]) == (
        "Progressing",
        20,
        1,
        5,
        1,
    )


def test_get_name_shows_paused_when_a_user_paused_it(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing", canaryWeight=40, stepIndex=2, pausedByUser=True)
    result = invoke("get", "podinfo")
    assert result.exit_code == 0, result.output
    [phase_line] = [line for line in result.output.splitlines() if line.lstrip().startswith("Phase")]
    assert "Progressing" in phase_line and "Paused" in phase_line


def test_get_says_so_when_there_is_nothing(emu: ThreadedEmulator) -> None:
    result = invoke("get")
    assert result.exit_code == 0
    assert "No Canaries or BlueGreens found in namespace default" in result.output


def test_get_name_shows_progress_evidence_conditions_and_events(emu: ThreadedEmulator) -> None:
    add_rollout(
        emu,
        phase="Progressing",
        canaryWeight=40,
        stepIndex=2,
        failedChecks=1,
        message="Advance podinfo canary weight 40",
        evidence=EVIDENCE,
        conditions=[{"type": "Promoted", "status": "Unknown", "reason": "Progressing", "message": "in progress"}],
    )
    add_event(emu, "podinfo", "Synced", "Advance podinfo canary weight 40", at=time.time() - 5)
    add_event(emu, "other", "Synced", "not about podinfo", at=time.time())

    result = invoke("get", "podinfo")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "default/podinfo (Canary" in out
    assert "40% canary / 60% primary" in out
    assert "1 failed (rolls back at 3)" in out  # threshold 3: the third failed check rolls back
    assert "2/5" in out and "✔ weight 20%" in out and "▶ weight 40%" in out and "· weight 100%" in out
    assert "canary 5xx 1.1× primary (95% CI 0.4–2.9), p = 0.71" in out
    assert "310/2,900" in out
    assert "Promoted" in out and "in progress" in out
    assert "Advance podinfo canary weight 40" in out
    assert "not about podinfo" not in out

    data = json.loads(invoke("get", "podinfo", "-o", "json").output)
    assert data["stepList"][:2] == ["weight 20%", "weight 40%"]
    assert data["evidence"]["metrics"][1]["pValue"] == 0.71
    assert [e["reason"] for e in data["events"]] == ["Synced"]


def test_get_name_still_shows_an_unreadable_spec(emu: ThreadedEmulator) -> None:
    bluegreen = {"targetRef": {"kind": "Deployment", "name": "blue"}, "service": {"port": 80}}
    add_rollout(emu, "blue", resource=BLUEGREENS, spec=bluegreen, phase="Failed", message="broken")

    def lose_target_ref() -> None:  # stored under an older schema: the API server no longer admits it
        stored = emu.emulator.store.get(emu.emulator.spec(BLUEGREENS), NS, "blue")
        assert stored is not None
        del stored["spec"]["targetRef"]

    emu.call(lose_target_ref)
    result = invoke("get", "blue")
    assert result.exit_code == 0, result.output
    assert "spec not readable" in result.output and "broken" in result.output


def test_get_watch_prints_each_change(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1)
    timer = threading.Timer(0.5, lambda: set_status(emu, phase="Succeeded", canaryWeight=0))
    timer.start()
    try:
        result = invoke("get", "-w", "--timeout", "4500ms")  # snapshots at 0 s, 2 s and 4 s
    finally:
        timer.cancel()
    assert result.exit_code == 0, result.output
    assert result.output.count("NAMESPACE") == 2  # the unchanged third snapshot is not printed again
    assert result.output.index("Progressing") < result.output.index("Succeeded")


def test_missing_canary_is_a_clear_error(emu: ThreadedEmulator) -> None:
    for args in (("get", "nope"), ("explain", "nope"), ("abort", "nope"), ("status", "nope", "--timeout", "1s")):
        result = invoke(*args)
        assert result.exit_code == 1, args
        assert 'error: no Canary or BlueGreen named "nope" in namespace "default"' in result.output


# -- actions --------------------------------------------------------------------------------------------------------


def test_promote_writes_only_the_annotation_and_waits_for_the_operator(emu: ThreadedEmulator) -> None:
    before = add_rollout(emu, phase="WaitingPromotion", hold="ConfirmPromotion", canaryWeight=100, stepIndex=5)
    promoted = {"phase": "Progressing", "hold": None, "message": "Promotion of podinfo approved"}
    with FakeOperator(emu, lambda action: (promoted, "")) as operator:
        result = invoke("promote", "podinfo")
    assert result.exit_code == 0, result.output
    assert operator.handled == 1
    assert "handled: podinfo is now Progressing — Promotion of podinfo approved" in result.output
    assert "PromotionApproved" in result.output

    after = emu.read_object(CANARIES, NS, "podinfo")
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    request = decode_request(after["metadata"]["annotations"][REQUEST_ANNOTATION])
    assert request is not None and request.action is ManualAction.PROMOTE
    assert json.loads(after["metadata"]["annotations"][REQUEST_ANNOTATION])["by"] == "emulator"
    assert after["status"]["lastRequestId"] == request.id


@pytest.mark.parametrize(
    ("args", "status", "action"),
    [
        (("promote", "--full"), {"phase": "Progressing"}, ManualAction.PROMOTE_FULL),
        (("abort",), {"phase": "Progressing"}, ManualAction.ABORT),
        (("pause",), {"phase": "Progressing"}, ManualAction.PAUSE),
        (("resume",), {"phase": "Progressing", "pausedByUser": True, "hold": "UserPause"}, ManualAction.RESUME),
        (("retry",), {"phase": "Failed"}, ManualAction.RETRY),
    ],
)
def test_each_action_writes_its_request_annotation(
    emu: ThreadedEmulator, args: tuple[str, ...], status: dict[str, Any], action: ManualAction
) -> None:
    before = add_rollout(emu, **status)
    result = invoke(*args, "podinfo", "--no-wait")
    assert result.exit_code == 0, result.output
    after = emu.read_object(CANARIES, NS, "podinfo")
    assert after["spec"] == before["spec"] and after["status"] == before["status"]
    assert set(after["metadata"]["annotations"]) == {REQUEST_ANNOTATION}
    request = decode_request(after["metadata"]["annotations"][REQUEST_ANNOTATION])
    assert request is not None and request.action is action
    assert f"{action} request {request.id} sent to Canary default/podinfo" in result.output


def test_a_request_the_operator_ignores_exits_1_with_its_reason(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing")
    with FakeOperator(emu, lambda action: ({}, "the promotion is already under way")):
        result = invoke("abort", "podinfo", "--wait", "10s")
    assert result.exit_code == 1, result.output
    assert "ignored by the operator: Ignored abort request" in result.output
    assert "the promotion is already under way" in result.output


def test_no_answer_from_the_operator_exits_2_and_leaves_the_request(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing")
    started = time.monotonic()
    result = invoke("pause", "podinfo", "--wait", "1s")
    assert result.exit_code == 2, result.output
    assert 1.0 <= time.monotonic() - started < 10
    assert "has not handled request" in result.output
    assert decode_request(annotations(emu)[REQUEST_ANNOTATION]) is not None


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (("promote",), {"phase": "Succeeded"}, "nothing to promote: podinfo is Succeeded"),
        (("promote",), {"phase": "Progressing"}, "nothing is waiting for approval: podinfo is Progressing"),
        (("abort",), {"phase": "Promoting"}, "podinfo is Promoting: the promotion is already under way"),
        (("pause",), {"phase": "Progressing", "pausedByUser": True}, "podinfo is already paused"),
        (("resume",), {"phase": "Progressing"}, "podinfo is not paused"),
        (("retry",), {"phase": "Succeeded"}, "nothing to retry: podinfo is Succeeded"),
    ],
)
def test_a_wrong_phase_is_refused_before_anything_is_written(
    emu: ThreadedEmulator, args: tuple[str, ...], status: dict[str, Any], message: str
) -> None:
    add_rollout(emu, **status)
    result = invoke(*args, "podinfo")
    assert result.exit_code == 1
    assert f"error: {message}" in result.output
    assert REQUEST_ANNOTATION not in annotations(emu)


class _ForbidPatches(CoalmineEmulator):
    """Answers every PATCH of a Canary with 403, as an API server does for a user without ``patch`` on it."""

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        resource = request.resource
        if str(request.method.value).upper() == "PATCH" and resource is not None and resource.plural == "canaries":
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
                "message": f'canaries.coalmine.dev "{request.name}" is forbidden: User "dev" cannot patch resource',
            }
            return aiohttp.web.json_response(body, status=403)
        return await super()._handle(request)


def test_no_permission_to_patch_is_explained(tmp_path: Path) -> None:
    with ThreadedEmulator(_ForbidPatches()) as emu:
        add_rollout(emu, phase="Progressing")
        config = write_kubeconfig(emu.url, tmp_path / "kubeconfig")
        result = invoke("abort", "podinfo", "--kubeconfig", str(config))
    assert result.exit_code == 1
    assert "no permission to patch canaries.coalmine.dev in default (needs: patch on canaries)" in result.output


# -- status ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("phase", "code"), [("Succeeded", 0), ("Initialized", 0), ("Failed", 1)])
def test_status_exit_code_follows_the_end_of_the_rollout(emu: ThreadedEmulator, phase: str, code: int) -> None:
    add_rollout(emu, phase=phase, message=f"podinfo {phase}")
    result = invoke("status", "podinfo", "--timeout", "5s")
    assert result.exit_code == code, result.output
    assert f"({phase}): podinfo {phase}" in result.output


def test_status_waits_and_prints_each_phase_change(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1)
    steps = [
        (0.3, {"phase": "Progressing", "canaryWeight": 40, "stepIndex": 2}),
        (1.3, {"phase": "Succeeded", "canaryWeight": 0, "message": "Promotion completed!"}),
    ]
    timers = [threading.Timer(delay, set_status, (emu,), fields) for delay, fields in steps]
    for timer in timers:
        timer.start()
    try:
        result = invoke("status", "podinfo", "--timeout", "20s")
    finally:
        for timer in timers:
            timer.cancel()
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("weight 20%") < out.index("weight 40%") < out.index("Succeeded")
    assert "podinfo succeeded (Succeeded): Promotion completed!" in out


def test_status_times_out_with_exit_2(emu: ThreadedEmulator) -> None:
    add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1)
    started = time.monotonic()
    result = invoke("status", "podinfo", "--timeout", "1s")
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 10
    assert "timed out" in result.output


def test_status_does_not_report_the_previous_release_as_this_one(emu: ThreadedEmulator) -> None:
    """A pipeline that just changed the image must not get exit 0 from the last release's Succeeded."""
    deployment = {
        "metadata": {"name": "podinfo", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "app", "image": "podinfo:6.0.1"}]},
            },
        },
    }
    created = emu.create_object(DEPLOYMENTS, deployment, NS)
    add_rollout(emu, phase="Succeeded", lastAppliedSpec="0123456789abcdef")
    assert invoke("status", "podinfo", "--timeout", "1s").exit_code == 2

    set_status(emu, lastAppliedSpec=pod_template_hash(created))
    assert invoke("status", "podinfo", "--timeout", "1s").exit_code == 0


# -- explain --------------------------------------------------------------------------------------------------------


def test_explain_gives_the_decision_evidence_judge_state_and_timeline(emu: ThreadedEmulator) -> None:
    add_rollout(
        emu,
        phase="Progressing",
        hold="Evidence",
        message="Holding podinfo at 40%: not enough evidence yet",
        evidence=EVIDENCE,
        judge=JUDGE,
        conditions=[{"type": "Ready", "status": "False", "reason": "Progressing", "message": "analysing"}],
    )
    now = time.time()
    add_event(emu, "podinfo", "Synced", "Advance podinfo canary weight 40", at=now - 60)
    add_event(emu, "podinfo", "Started", "New revision detected! Scaling up podinfo", at=now - 120)

    result = invoke("explain", "podinfo")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Decision: Progressing — Holding podinfo at 40%: not enough evidence yet" in out
    assert "Holding: Evidence" in out
    assert "not promotable yet: errorRate: 310 of 500 canary requests needed" in out
    assert "could have detected a 2.4× error-rate increase" in out
    assert "errorRate pass: canary 5xx 1.1× primary" in out
    assert "errorRate: 4 looks; canary 2/310 events/requests, primary 17/2,900; always-valid p = 0.607" in out
    assert out.index("New revision detected!") < out.index("Advance podinfo canary weight 40")

    data = json.loads(invoke("explain", "podinfo", "-o", "json").output)
    assert data["phase"] == "Progressing" and data["hold"] == "Evidence"
    assert data["lastLook"]["holdReason"].startswith("errorRate")
    assert [e["reason"] for e in data["events"]] == ["Started", "Synced"]
    assert "always-valid p = 0.607" in data["judge"]["errorRate"]


# -- kubeconfig -----------------------------------------------------------------------------------------------------


def test_namespace_comes_from_the_context_and_flags_override_it(
    threaded_emulator: ThreadedEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_rollout(threaded_emulator, "team-app", namespace="team", phase="Succeeded")
    add_rollout(threaded_emulator, "podinfo", phase="Succeeded")
    config = write_kubeconfig(threaded_emulator.url, tmp_path / "config", namespace="team")
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert "team-app" in invoke("get").output
    assert "podinfo" in invoke("get", "-n", "default").output
    missing = invoke("get", "--context", "nowhere")
    assert missing.exit_code == 1 and "context 'nowhere' is not in the kubeconfig" in missing.output
    absent = invoke("get", "--kubeconfig", str(tmp_path / "absent"))
    assert absent.exit_code == 1 and "does not exist" in absent.output


def test_promote_precheck_follows_the_engine_not_the_last_looks_hold() -> None:
    """A manual pause whose last look reported the canary not ready is still waiting for a person: promote is let
    through (the engine's own rule), while a rollout that waits for nobody is refused with the --full hint."""
    from controller.cli.kubectl.actions import precheck

    spec = {**SPEC, "analysis": {"interval": "1m", "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]}}
    paused = {
        "kind": "Canary",
        "metadata": {"name": "podinfo"},
        "spec": spec,
        "status": {"phase": "WaitingPromotion", "stepIndex": 2, "canaryWeight": 20, "hold": "CanaryNotReady"},
    }
    assert precheck(ManualAction.PROMOTE, paused) is None
    stepping = {**paused, "status": {"phase": "Progressing", "stepIndex": 1, "canaryWeight": 20}}
    refusal = precheck(ManualAction.PROMOTE, stepping)
    assert refusal is not None and "--full" in refusal


def test_get_name_shows_each_arms_images_replicas_ready_and_revisions(emu: ThreadedEmulator) -> None:
    """As Argo's tree does: what runs in each arm, how much of it is ready, and which revision it is."""

    def deployment(name: str, image: str, replicas: int) -> dict[str, Any]:
        labels = {"app": name}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}},
            },
        }

    canary = emu.create_object(DEPLOYMENTS, deployment("podinfo", "podinfo:6.7.1", 2), NS)
    emu.create_object(DEPLOYMENTS, deployment("podinfo-primary", "podinfo:6.7.0", 3), NS)
    add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1)
    out = invoke("get", "podinfo").output
    [target_row] = [line for line in out.splitlines() if line.lstrip().startswith("target ")]
    [primary_row] = [line for line in out.splitlines() if line.lstrip().startswith("primary ")]
    assert "podinfo:6.7.1" in target_row and "2/2" in target_row
    assert pod_template_hash(canary)[:10] in target_row
    assert "podinfo:6.7.0" in primary_row and "3/3" in primary_row
    data = json.loads(invoke("get", "podinfo", "-o", "json").output)
    assert data["workloads"]["primary"]["images"] == [{"container": "app", "image": "podinfo:6.7.0"}]
    emu.delete_object(DEPLOYMENTS, NS, "podinfo-primary")
    [missing] = [line for line in invoke("get", "podinfo").output.splitlines() if line.lstrip().startswith("primary ")]
    assert "not found" in missing
