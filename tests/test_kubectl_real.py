"""Real kubectl (v1.35, from the pinned PyPI wheel) as the first real Kubernetes client of the test world.

What runs here needs no API server: the pinned binary itself, and kubectl's plugin discovery finding
``kubectl-coalmine`` on PATH and running its verbs' help, as a user's ``kubectl coalmine …`` would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubectl_binary import KubectlUnavailable, kubectl_path

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def kubectl() -> Path:
    try:
        return kubectl_path()
    except KubectlUnavailable as error:
        pytest.skip(f"real kubectl is not available here: {error}")


def run(kubectl: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "KUBECONFIG": os.devnull}
    return subprocess.run([str(kubectl), *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_the_pinned_kubectl_is_v1_35(kubectl: Path) -> None:
    done = run(kubectl, "version", "--client")
    assert done.returncode == 0, done.stderr
    assert "Client Version: v1.35." in done.stdout


def test_kubectl_plugin_list_finds_kubectl_coalmine_and_runs_it(kubectl: Path) -> None:
    if not (VENV_BIN / "kubectl-coalmine").is_file():
        pytest.skip("kubectl-coalmine is not installed next to this interpreter (pip install -e .)")
    listed = run(kubectl, "plugin", "list")
    assert str(VENV_BIN / "kubectl-coalmine") in listed.stdout, listed.stdout + listed.stderr
    helped = run(kubectl, "coalmine", "--help")
    assert helped.returncode == 0, helped.stderr
    for verb in ("promote", "abort"):
        assert verb in helped.stdout
