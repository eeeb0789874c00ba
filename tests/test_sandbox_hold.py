"""``coalmine sandbox --hold --kubeconfig PATH``: a sandbox a user keeps, driven with their own client and manifests.

The held sandbox runs as a user would start it (a separate ``python -m e2e.sandbox --hold`` process). The test
applies the README's example (``examples/demo-canary.yaml``) through the kubeconfig it wrote, as ``kubectl apply``
would, sees the operator initialise the Canary, then stops the sandbox with SIGTERM: exit status 0, no process
left, no work directory, and the kubeconfig it wrote removed. It also refuses to overwrite a real kubeconfig.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_sandbox import assert_nothing_left, prometheus_installed, start_sandbox

from controller.cli.kubectl.access import connect
from controller.kube.api import CANARIES, DEPLOYMENTS
from e2e.sandbox import procs

__all__ = ["prometheus_installed"]  # the module-scoped fixture that installs Prometheus (or skips)

EXAMPLE = procs.REPO_ROOT / "examples" / "demo-canary.yaml"


def read_until(process: subprocess.Popen[str], pattern: str, timeout_s: float) -> str:
    """The process's output up to the first line matching ``pattern`` (fails on exit or timeout)."""
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"the sandbox exited with {process.wait()}:\n{''.join(seen)}")
        seen.append(line)
        if re.search(pattern, line):
            return "".join(seen)
    pytest.fail(f"no {pattern!r} within {timeout_s} s:\n{''.join(seen)}")


def documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(EXAMPLE.read_text(encoding="utf-8")) if doc]


@pytest.mark.timeout(150)
def test_a_held_sandbox_serves_your_own_manifests_until_sigterm_then_cleans_up(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    process = start_sandbox("--hold", "--kubeconfig", str(kubeconfig))
    try:
        output = read_until(process, r"Ctrl-C or SIGTERM stops everything", 90)
        assert f"export KUBECONFIG={kubeconfig}" in output
        assert "kubectl apply -f examples/demo-canary.yaml" in output
        workdir = re.search(r"Logs: (\S+)", output)
        assert workdir, output
        cluster = connect(str(kubeconfig), None, "test")
        try:
            for doc in documents():
                resource = DEPLOYMENTS if doc["kind"] == "Deployment" else CANARIES
                cluster.api.create(resource, doc["metadata"]["namespace"], doc)
            deadline, phase = time.monotonic() + 60, None
            while time.monotonic() < deadline and phase != "Initialized":
                canary = cluster.api.get(CANARIES, "test", "podinfo")
                phase = ((canary or {}).get("status") or {}).get("phase")
                time.sleep(0.5)
            assert phase == "Initialized"
        finally:
            cluster.api.close()
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "every sandbox process is gone" in rest
    assert not kubeconfig.exists(), "the kubeconfig pointing at the stopped sandbox was left behind"
    assert_nothing_left(workdir.group(1))


def test_hold_never_overwrites_a_kubeconfig_that_is_not_a_sandbox_one(tmp_path: Path) -> None:
    real = tmp_path / "config"
    real.write_text("apiVersion: v1\nkind: Config\ncurrent-context: prod\n", encoding="utf-8")
    done = subprocess.run(
        procs.module_command("e2e.sandbox", "--hold", "--kubeconfig", str(real)),
        env=procs.child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=procs.REPO_ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "is not a sandbox kubeconfig" in done.stderr
    assert real.read_text(encoding="utf-8").endswith("current-context: prod\n")


def test_hold_and_kubeconfig_go_together() -> None:
    done = subprocess.run(
        procs.module_command("e2e.sandbox", "--hold"),
        env=procs.child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=procs.REPO_ROOT,
        check=False,
    )
    assert done.returncode == 2
    assert "--hold and --kubeconfig PATH go together" in done.stderr
