"""``coalmine sandbox --hold --kubeconfig PATH``: a sandbox a user keeps, driven with their own client and manifests.

The held sandbox runs as a user would start it (a separate ``python -m e2e.sandbox --hold`` process). The test
drives it with **real kubectl** (v1.35, ``tests/kubectl_binary.py``) through the kubeconfig it wrote, exactly as the
printed instructions say: ``kubectl apply -f examples/demo-canary.yaml`` with kubectl's default validation,
``kubectl wait`` for the operator to initialise the Canary, ``kubectl get canaries`` with the CRD's columns and
``kubectl coalmine get`` through the plugin; then it stops the sandbox with SIGTERM: exit status 0, no process
left, no work directory, and the kubeconfig it wrote removed. It also refuses to overwrite a real kubeconfig.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubectl_binary import KubectlUnavailable, kubectl_path
from test_sandbox import assert_nothing_left, prometheus_installed, start_sandbox

from e2e.sandbox import procs

__all__ = ["prometheus_installed"]  # the module-scoped fixture that installs Prometheus (or skips)

EXAMPLE = procs.REPO_ROOT / "examples" / "demo-canary.yaml"
VENV_BIN = Path(sys.executable).parent  # where kubectl-coalmine is installed, for kubectl's plugin lookup


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


@pytest.mark.timeout(150)
def test_a_held_sandbox_serves_your_own_manifests_until_sigterm_then_cleans_up(tmp_path: Path) -> None:
    try:
        kubectl_binary = kubectl_path()
    except KubectlUnavailable as error:
        pytest.skip(f"real kubectl is not available here: {error}")
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    process = start_sandbox("--hold", "--kubeconfig", str(kubeconfig))
    try:
        output = read_until(process, r"Ctrl-C or SIGTERM stops everything", 90)
        assert f"export KUBECONFIG={kubeconfig}" in output
        assert "kubectl apply -f examples/demo-canary.yaml" in output
        workdir = re.search(r"Logs: (\S+)", output)
        assert workdir, output
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}

        def kubectl(*args: str) -> str:
            done = subprocess.run(
                [str(kubectl_binary), *args], env=env, capture_output=True, text=True, timeout=90, check=False
            )
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}"
            return done.stdout

        assert "created" in kubectl("apply", "-f", str(EXAMPLE))
        kubectl("wait", "canary/podinfo", "-n", "test", "--for=jsonpath={.status.phase}=Initialized", "--timeout=60s")
        listed = kubectl("get", "canaries", "-n", "test")
        assert listed.split()[:3] == ["NAME", "STATUS", "WEIGHT"] and "Initialized" in listed, listed
        assert "podinfo" in kubectl("coalmine", "get", "-n", "test")
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
