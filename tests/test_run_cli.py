"""``coalmine run`` without a usable cluster says so in one line and exits 1 (no traceback, no retry loop).

Run as a user runs it: the installed ``coalmine`` script in a subprocess, with a kubeconfig that is missing or
points at a port on 127.0.0.1 where nothing listens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from http_recorder import closed_port_url

COALMINE = Path(sys.executable).with_name("coalmine")

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster: {{server: "{server}"}}
contexts:
- name: dead
  context: {{cluster: dead, user: someone}}
current-context: dead
users:
- name: someone
  user: {{token: not-a-real-token}}
"""


def _run(kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"} | {"KUBECONFIG": str(kubeconfig)}
    return subprocess.run(
        [str(COALMINE), "run", "-n", "test", "--metrics-port", "0", "--liveness-port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stdout + result.stderr
    assert "Traceback" not in lines[0]
    return lines[0]


def test_no_kubeconfig_is_one_clear_line(tmp_path: Path) -> None:
    line = _one_line(_run(tmp_path / "missing"))
    assert line.startswith("coalmine run: no Kubernetes cluster") and str(tmp_path / "missing") in line


@pytest.mark.parametrize("tls", [False, True])
def test_an_unreachable_api_server_is_one_clear_line(tmp_path: Path, tls: bool) -> None:
    server = closed_port_url().rstrip("/")
    server = server.replace("http://", "https://") if tls else server
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.format(server=server))
    line = _one_line(_run(kubeconfig))
    assert line.startswith(f"coalmine run: cannot reach the Kubernetes API at {server}"), line
