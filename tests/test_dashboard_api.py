"""``kubectl coalmine dashboard``'s JSON API, event stream and buttons, against the emulated API over real HTTP.

The dashboard is started as the command starts it (kubeconfig → :func:`connect`, watches, 127.0.0.1 server on a
free port); requests are made the way its page makes them. The operator's half of a request is played by
``test_plugin.FakeOperator``, as in the plugin's own tests, so a button is checked against the same protocol.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
from emulator import CoalmineEmulator, ThreadedEmulator, write_kubeconfig
from test_plugin import CANARIES, EVIDENCE, JUDGE, NS, FakeOperator, _ForbidPatches, add_event, add_rollout, set_status
from typer.testing import CliRunner

from controller.cli.dashboard.api import DashboardApi
from controller.cli.dashboard.live import Hub, Watchers
from controller.cli.dashboard.server import TOKEN_HEADER, DashboardServer
from controller.cli.kubectl.access import connect
from controller.cli.plugin import app
from controller.rollout.phases import ManualAction
from controller.rollout.request_codec import REQUEST_ANNOTATION, decode_request

DEPLOYMENTS = "apps/v1/deployments"

# What the real operator wrote into a Canary's status in the sandbox (tests/test_dashboard_sandbox.py's run, at
# weight 30; the judge's base64 likelihood grid left out). Its judge state is keyed by metric name, not kind.
REAL_STATUS: dict[str, Any] = {
    "phase": "Progressing",
    "canaryWeight": 30,
    "stepIndex": 3,
    "lastAppliedSpec": "ce82821b181ae7f5",
    "lastPromotedSpec": "5e3c654864648c77",
    "message": "Advance podinfo canary weight 30",
    "judge": {
        "version": 1,
        "error-rate": {
            "theta0": 1.1,
            "test": {
                "canaryRequests": 54.0,
                "canaryEvents": 0.0,
                "primaryRequests": 227.0,
                "primaryEvents": 0.0,
                "looks": 2,
                "maxLogE": 0.0,
            },
        },
        "latency": {
            "theta0": 1.2,
            "slowThresholdMs": 250.0,
            "test": {
                "canaryRequests": 54.0,
                "canaryEvents": 0.0,
                "primaryRequests": 227.0,
                "primaryEvents": 0.0,
                "looks": 2,
                "maxLogE": 0.0,
            },
        },
    },
    "evidence": {
        "outcome": "pass",
        "reason": "all 3 checks passed",
        "promotable": True,
        "holdReason": "",
        "detectable": (
            "could have detected no increase in the 5xx rate yet (too few events) "
            "and no increase in the rate of requests slower than 250 ms yet (too few events)"
        ),
        "metrics": [
            {
                "metric": "request-success-rate",
                "kind": "threshold",
                "outcome": "pass",
                "reason": "request-success-rate 100 within range",
                "value": 100.0,
                "canaryRequests": 0,
                "primaryRequests": 0,
            },
            {
                "metric": "error-rate",
                "kind": "errorRate",
                "outcome": "pass",
                "reason": (
                    "canary 5xx rate 0.00%, none in primary (0.00% vs 0.00%), p = 1, upper "
                    "bound unbounded, tolerance 1.10×, 54 canary requests"
                ),
                "pValue": 1.0,
                "logEValue": 0.0,
                "canaryRequests": 54,
                "primaryRequests": 227,
            },
            {
                "metric": "latency",
                "kind": "latency",
                "outcome": "pass",
                "reason": (
                    "canary rate of requests slower than 250 ms 0.00%, none in primary "
                    "(0.00% vs 0.00%), p = 1, upper bound unbounded, tolerance 1.20×, 54 canary requests"
                ),
                "pValue": 1.0,
                "logEValue": 0.0,
                "canaryRequests": 54,
                "primaryRequests": 227,
            },
        ],
    },
}


@dataclass
class Dashboard:
    server: DashboardServer
    hub: Hub

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, path: str, **headers: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.url.rstrip("/") + path, headers=headers)
        return _send(request)

    def post(self, path: str, body: Any = None, *, origin: str | None = "", token: str | None = "") -> tuple[int, Any]:
        """POST as the page does (same Origin, the page's token) unless told otherwise; None leaves a header out."""
        headers = {"Content-Type": "application/json"}
        if origin is not None:
            headers["Origin"] = origin or self.url.rstrip("/")
        if token is not None:
            headers[TOKEN_HEADER] = token or self.server.token
        data = json.dumps(body or {}).encode()
        return _send(urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers, method="POST"))


def _send(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
            kind = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        with exc:
            raw, status, kind = exc.read(), exc.code, exc.headers.get("Content-Type", "")
    return status, json.loads(raw) if kind.startswith("application/json") else raw.decode()


@contextlib.contextmanager
def serving_dashboard(
    kubeconfig: Path, namespace: str | None = NS, *, wait_s: float = 5.0, poll_s: float = 2.0
) -> Iterator[Dashboard]:
    """The dashboard as ``kubectl coalmine dashboard [-n NS | -A]`` runs it, on a free port."""
    cluster = connect(str(kubeconfig), None, None)
    hub = Hub()
    server = DashboardServer(DashboardApi(cluster, namespace, hub, default_wait_s=wait_s), 0)
    watchers = Watchers(cluster, namespace, hub, poll_s=poll_s)
    watchers.start()
    server.start_background()
    try:
        yield Dashboard(server, hub)
    finally:
        server.close()
        watchers.stop()
        cluster.api.close()


def add_deployment(emu: ThreadedEmulator, name: str, image: str) -> dict[str, Any]:
    body = {
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }
    return emu.create_object(DEPLOYMENTS, body, NS)


def progressing(emu: ThreadedEmulator, **extra: Any) -> None:
    add_rollout(
        emu,
        phase="Progressing",
        canaryWeight=40,
        stepIndex=2,
        hold="Evidence",
        message="Holding podinfo at 40%: not enough evidence yet",
        evidence=EVIDENCE,
        judge=JUDGE,
        lastAppliedSpec="5d8f7c9b6",
        conditions=[{"type": "Promoted", "status": "Unknown", "reason": "Progressing", "message": "in progress"}],
        **extra,
    )


@pytest.fixture
def dashboard(threaded_emulator: ThreadedEmulator, kubeconfig: Path) -> Iterator[Dashboard]:
    with serving_dashboard(kubeconfig) as running:
        yield running


def wait_for(check: Any, timeout_s: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


# -- reads ------------------------------------------------------------------------------------------------------


def test_list_shows_phase_weight_step_and_health_of_the_namespace(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard
) -> None:
    progressing(threaded_emulator, failedChecks=1)
    add_rollout(threaded_emulator, "backend", phase="Succeeded")
    add_rollout(threaded_emulator, "elsewhere", namespace="team", phase="Failed")

    status, body = dashboard.get("/api/rollouts")
    assert status == 200
    rows = {row["name"]: row for row in body["items"]}
    assert set(rows) == {"podinfo", "backend"}  # -n default: the other namespace is not listed
    podinfo = rows["podinfo"]
    assert (podinfo["phase"], podinfo["weight"], podinfo["stepText"], podinfo["health"]) == (
        "Progressing",
        40,
        "2/5",
        "Suspicious",
    )
    assert rows["backend"]["health"] == "Healthy"


def test_all_namespaces_lists_every_namespace(threaded_emulator: ThreadedEmulator, kubeconfig: Path) -> None:
    add_rollout(threaded_emulator, "podinfo", phase="Progressing")
    add_rollout(threaded_emulator, "elsewhere", namespace="team", phase="Failed")
    with serving_dashboard(kubeconfig, None) as dashboard:
        _, body = dashboard.get("/api/rollouts")
        _, session = dashboard.get("/api/session")
    assert {(r["namespace"], r["name"], r["health"]) for r in body["items"]} == {
        ("default", "podinfo", "Progressing"),
        ("team", "elsewhere", "Degraded"),
    }
    assert session["allNamespaces"] is True and session["user"] == "emulator"


def test_detail_has_steps_arms_evidence_hold_conditions_events_images_and_revisions(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard
) -> None:
    add_deployment(threaded_emulator, "podinfo", "ghcr.io/stefanprodan/podinfo:6.1.0")
    add_deployment(threaded_emulator, "podinfo-primary", "ghcr.io/stefanprodan/podinfo:6.0.3")
    progressing(threaded_emulator)
    add_event(threaded_emulator, "podinfo", "Synced", "Advance podinfo canary weight 40", at=time.time() - 5)

    status, d = dashboard.get("/api/rollouts/default/podinfo")
    assert status == 200, d
    assert [s["state"] for s in d["steps"]] == ["done", "current", "todo", "todo", "todo"]
    assert d["steps"][1]["text"] == "weight 40%"
    assert d["hold"] == "Evidence" and d["lastLook"]["holdReason"] == "errorRate: 310 of 500 canary requests needed"
    arm = d["arms"]["errorRate"]
    assert arm["canaryRate"] == pytest.approx(2 / 310) and arm["primaryRate"] == pytest.approx(17 / 2900)
    assert arm["pValue"] == pytest.approx(0.6065, abs=1e-3)  # the same always-valid p as `explain`
    assert "always-valid p = 0.607" in d["judge"]["errorRate"]
    assert d["lastLook"]["metrics"][1]["pValue"] == 0.71
    assert d["conditions"][0]["message"] == "in progress"
    assert [e["reason"] for e in d["events"]] == ["Synced"]
    assert d["workloads"]["target"]["images"] == [{"container": "app", "image": "ghcr.io/stefanprodan/podinfo:6.1.0"}]
    assert d["workloads"]["primary"]["images"][0]["image"].endswith(":6.0.3")
    assert d["revisions"]["lastApplied"] == "5d8f7c9b6" and d["revisions"]["target"]
    # the buttons follow the plugin's precheck: a progressing rollout may be paused, not resumed or retried
    assert d["actions"]["pause"] is None and d["actions"]["abort"] is None
    assert d["actions"]["resume"] == "podinfo is not paused (it is Progressing)"
    assert d["actions"]["retry"].startswith("nothing to retry")
    assert d["timeline"] and d["timeline"][-1]["weight"] == 40


def test_a_real_operators_status_gives_each_arms_rates(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard
) -> None:
    status = {**REAL_STATUS, "judge": json.loads(json.dumps(REAL_STATUS["judge"]))}
    status["judge"]["error-rate"]["test"].update(canaryEvents=1.0, primaryEvents=2.0)
    add_rollout(threaded_emulator, **status)
    _, d = dashboard.get("/api/rollouts/default/podinfo")
    assert d["arms"]["error-rate"]["kind"] == "errorRate" and d["arms"]["latency"]["kind"] == "latency"
    assert d["arms"]["error-rate"]["canaryRate"] == pytest.approx(1 / 54)
    assert d["arms"]["error-rate"]["primaryRate"] == pytest.approx(2 / 227)
    assert d["arms"]["latency"]["slowThresholdMs"] == 250.0
    assert [m["metric"] for m in d["lastLook"]["metrics"]] == ["request-success-rate", "error-rate", "latency"]
    assert d["timeline"][-1]["arms"]["error-rate"]["canaryRequests"] == 54.0


def test_a_missing_rollout_is_a_404_with_the_plugins_sentence(dashboard: Dashboard) -> None:
    status, body = dashboard.get("/api/rollouts/default/nope")
    assert status == 404
    assert body == {"error": 'no Canary or BlueGreen named "nope" in namespace "default"'}


def test_the_timeline_and_the_stream_follow_the_watch(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard
) -> None:
    progressing(threaded_emulator)
    dashboard.get("/api/rollouts/default/podinfo")
    seen: list[str] = []
    request = urllib.request.Request(dashboard.url + "api/stream")

    def read_stream() -> None:
        with urllib.request.urlopen(request, timeout=20) as stream:
            for line in stream:
                seen.append(line.decode())
                if len(seen) > 1 and seen[-2].startswith("event: change") and '"podinfo"' in seen[-1]:
                    return

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    wait_for(lambda: any(line.startswith("event: hello") for line in seen))
    set_status(threaded_emulator, canaryWeight=60, stepIndex=3)
    reader.join(timeout=15)
    assert any(line.startswith("event: change") for line in seen), seen
    _, d = wait_for(lambda: (r := dashboard.get("/api/rollouts/default/podinfo"))[1]["weight"] == 60 and r)
    assert [p["weight"] for p in d["timeline"]][-2:] == [40, 60]


# -- buttons ----------------------------------------------------------------------------------------------------


def test_pause_writes_the_plugins_request_and_reports_the_operators_answer(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard
) -> None:
    before = add_rollout(threaded_emulator, phase="Progressing", canaryWeight=20, stepIndex=1)
    paused = {"pausedByUser": True, "hold": "UserPause", "message": "Paused by a user"}
    with FakeOperator(threaded_emulator, lambda action: (paused, "")) as operator:
        status, body = dashboard.post("/api/rollouts/default/podinfo/pause")
    assert status == 200, body
    assert operator.handled == 1
    assert body["result"] == "handled" and body["message"] == "Paused by a user"
    assert body["said"][0].startswith(f"pause request {body['requestId']} sent to Canary default/podinfo")
    after = threaded_emulator.read_object(CANARIES, NS, "podinfo")
    request = decode_request(after["metadata"]["annotations"][REQUEST_ANNOTATION])
    assert request is not None and request.action is ManualAction.PAUSE and request.id == body["requestId"]
    assert after["spec"] == before["spec"]  # like the verb: one annotation, never spec


def test_a_button_the_phase_does_not_allow_is_refused_before_writing(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard
) -> None:
    add_rollout(threaded_emulator, phase="Succeeded")
    status, body = dashboard.post("/api/rollouts/default/podinfo/abort")
    assert (status, body) == (409, {"error": "nothing to abort: podinfo is Succeeded", "refusedBy": "precheck"})
    meta = threaded_emulator.read_object(CANARIES, NS, "podinfo")["metadata"]
    assert REQUEST_ANNOTATION not in (meta.get("annotations") or {})


def test_no_permission_is_a_403_with_the_plugins_rbac_message(tmp_path: Path) -> None:
    with ThreadedEmulator(_ForbidPatches()) as emu:
        add_rollout(emu, phase="Progressing")
        config = write_kubeconfig(emu.url, tmp_path / "kubeconfig")
        with serving_dashboard(config) as dashboard:
            status, body = dashboard.post("/api/rollouts/default/podinfo/abort")
    assert status == 403
    assert body == {"error": "no permission to patch canaries.coalmine.dev in default (needs: patch on canaries)"}


@pytest.mark.parametrize(
    ("origin", "token", "why"),
    [
        ("https://evil.example", "", "Origin"),
        (None, "", "Origin"),
        ("", None, "token"),
        ("", "guessed", "token"),
    ],
)
def test_another_page_cannot_press_the_buttons(
    threaded_emulator: ThreadedEmulator, dashboard: Dashboard, origin: str | None, token: str | None, why: str
) -> None:
    add_rollout(threaded_emulator, phase="Progressing")
    status, body = dashboard.post("/api/rollouts/default/podinfo/abort", origin=origin, token=token)
    assert status == 403 and body["refusedBy"] == "origin" and why in body["error"]
    meta = threaded_emulator.read_object(CANARIES, NS, "podinfo")["metadata"]
    assert REQUEST_ANNOTATION not in (meta.get("annotations") or {})


def test_a_rebound_host_name_gets_nothing(threaded_emulator: ThreadedEmulator, dashboard: Dashboard) -> None:
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own name as Host."""
    progressing(threaded_emulator)
    status, body = dashboard.get("/api/rollouts", Host=f"attacker.example:{dashboard.server.port}")
    assert status == 421 and "items" not in body


def test_the_page_and_its_assets_are_served_from_the_package(dashboard: Dashboard) -> None:
    status, page = dashboard.get("/")
    assert status == 200
    assert f'content="{dashboard.server.token}"' in page
    assert "http://" not in page.replace('content="', "") and "https://" not in page  # nothing from a CDN
    for asset in ("app.js", "charts.js", "style.css"):
        code, text = dashboard.get(f"/static/{asset}")
        assert code == 200 and text and "https://" not in text
    assert dashboard.get("/static/..%2Fserver.py")[0] == 404


def test_the_command_prints_its_url_serves_it_and_stops_on_ctrl_c(
    threaded_emulator: ThreadedEmulator, kubeconfig: Path
) -> None:
    add_rollout(threaded_emulator, phase="Progressing")
    command = [sys.executable, "-c", "from controller.cli.plugin import app; app()", "dashboard", "--port", "0"]
    process = subprocess.Popen(
        [*command, "--kubeconfig", str(kubeconfig)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"Coalmine dashboard for namespace default: (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        with urllib.request.urlopen(match.group(1) + "api/rollouts", timeout=10) as response:
            assert [row["name"] for row in json.loads(response.read())["items"]] == ["podinfo"]
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, rest
    assert "Traceback" not in rest


def test_a_busy_port_is_one_clear_line(threaded_emulator: ThreadedEmulator, kubeconfig: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--port", str(port)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.output and "(try --port)" in result.output


class _ForbidWatches(CoalmineEmulator):
    """Answers every watch with 403, as for a user whose Role grants ``get, list`` but not ``watch``."""

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.action == kmock.action.WATCH:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403}
            return aiohttp.web.json_response({**body, "message": "cannot watch"}, status=403)
        return await super()._handle(request)


def test_without_watch_permission_the_pages_stay_live_by_polling(tmp_path: Path) -> None:
    with ThreadedEmulator(_ForbidWatches()) as emu:
        add_rollout(emu, phase="Progressing", canaryWeight=20, stepIndex=1)
        config = write_kubeconfig(emu.url, tmp_path / "kubeconfig")
        with serving_dashboard(config, poll_s=0.3) as dashboard:
            wait_for(lambda: dashboard.hub.mode.get("canaries", "").startswith("polling every 0.3s"))
            wait_for(lambda: dashboard.hub.mode.get("events", "").startswith("off"))
            position = dashboard.hub.seq
            set_status(emu, canaryWeight=40, stepIndex=2)
            _, changes = dashboard.hub.wait(position, 10)
            assert {"type": "modified", "kind": "Canary", "namespace": "default", "name": "podinfo"} in changes
            _, session = dashboard.get("/api/session")
    assert session["live"]["canaries"].startswith("polling")
