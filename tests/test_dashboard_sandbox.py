"""The dashboard against the sandbox: the emulated API, the real operator, real Prometheus and HTTP traffic.

A held sandbox (``python -m e2e.sandbox --hold --kubeconfig PATH``, as a user starts it) gets the sandbox's own
Deployment and Canary; a release is made; the dashboard serves that kubeconfig and headless Chromium watches the
real operator move the weight while the judge collects per-arm counts from real traffic. Pause is pressed in the
page, the real operator records it (the page shows Paused), Resume is pressed and handled too. Screenshots are kept
in ``tests/artifacts/dashboard/`` (``sandbox-*.png``).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_api import serving_dashboard
from test_dashboard_browser import browser, click, shots, text_of, wait_text
from test_sandbox import prometheus_installed, start_sandbox
from test_sandbox_hold import read_until

from controller.cli.kubectl.access import connect, find_rollout
from controller.kube.api import CANARIES, DEPLOYMENTS
from e2e.sandbox import manifests

__all__ = ["browser", "prometheus_installed", "shots"]  # fixtures used by name

NS, NAME = "test", "podinfo"
BASELINE = manifests.Release("6.7.0", 0.005)
RELEASE = manifests.Release("6.7.1", 0.005)


def wait_phase(kubeconfig: Path, phases: tuple[str, ...], timeout_s: float) -> dict[str, Any]:
    cluster = connect(str(kubeconfig), None, NS)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            obj = find_rollout(cluster, NS, NAME)
            if (obj.get("status") or {}).get("phase") in phases:
                return obj
            time.sleep(0.3)
        pytest.fail(f"the Canary did not reach {phases} within {timeout_s} s: {obj.get('status')}")
    finally:
        cluster.api.close()


@pytest.mark.timeout(240)
@pytest.mark.usefixtures("prometheus_installed")
def test_the_dashboard_follows_a_real_rollout_and_its_buttons_reach_the_real_operator(
    tmp_path: Path, browser: Any, shots: Any
) -> None:
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    process = start_sandbox("--hold", "--kubeconfig", str(kubeconfig))
    try:
        read_until(process, r"Ctrl-C or SIGTERM stops everything", 90)
        cluster = connect(str(kubeconfig), None, NS)
        cluster.api.create(DEPLOYMENTS, NS, manifests.deployment(NS, NAME, BASELINE))
        cluster.api.create(CANARIES, NS, manifests.canary(NS, NAME, manifests.Timing()))
        wait_phase(kubeconfig, ("Initialized",), 60)

        with serving_dashboard(kubeconfig, NS, wait_s=20) as dashboard:
            browser.get(f"{dashboard.url}#/{NS}/{NAME}")
            wait_text(browser, "#phase", "Initialized")
            patch = {"spec": {"template": {"spec": manifests.release_patch(RELEASE)}}}
            cluster.api.patch(DEPLOYMENTS, NS, NAME, patch)

            wait_text(browser, "#phase", "Progressing", timeout_s=40)
            wait_text(browser, "#weight", "20% canary", timeout_s=60)  # two looks of the real operator
            wait_text(browser, "#arms tr[data-kind=errorRate]", "/", timeout_s=30)
            wait_text(browser, "#weight", "30% canary", timeout_s=30)  # a few points on the charts
            assert ":6.7.1" in text_of(browser, "#workloads tr[data-role=target]")
            assert ":6.7.0" in text_of(browser, "#workloads tr[data-role=primary]")
            shots(browser, "sandbox-detail")

            click(browser, "button[data-action=pause]")
            handled = wait_text(browser, "#action-result.ok", "Handled", timeout_s=30)
            assert "pause request" in handled
            wait_text(browser, "#phase", "Paused", timeout_s=15)
            paused = find_rollout(cluster, NS, NAME)
            assert paused["status"].get("pausedByUser") is True  # the real operator recorded the request
            shots(browser, "sandbox-paused")

            wait_text(browser, "button[data-action=resume].on", "Resume", timeout_s=15)
            click(browser, "button[data-action=resume]")
            wait_text(browser, "#action-result.ok", "resume request", timeout_s=30)
            resumed = find_rollout(cluster, NS, NAME)
            assert not resumed["status"].get("pausedByUser")

            browser.get(dashboard.url)
            wait_text(browser, f"#rollouts tr[data-name={NAME}]", "Progressing")
            shots(browser, "sandbox-list")
        cluster.api.close()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
