"""``coalmine sandbox`` end to end: a healthy release is promoted, a faulty one rolled back, a PNG is written, and
not one process of the sandbox outlives it — after a normal run and after Ctrl-C alike.

Runs the real thing as a user would (``python -m e2e.sandbox --quick``): the emulated API, the stand-in data
plane, Debian's Prometheus and the operator as separate processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.cli import sandbox as sandbox_cli
from controller.cli.main import app
from e2e.sandbox import procs
from e2e.sandbox.prometheus import PrometheusUnavailable, ensure_installed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def prometheus_installed() -> None:
    try:
        ensure_installed(("prometheus",))
    except PrometheusUnavailable as error:
        pytest.skip(f"the sandbox needs Debian's prometheus: {error}")


def start_sandbox(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        procs.module_command("e2e.sandbox", *args),
        env=procs.child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=procs.REPO_ROOT,
    )


def workdir_of(output: str) -> str:
    match = re.search(r"work dir (\S+);", output)
    assert match, output
    return match.group(1)


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment mentions ``text`` (the sandbox's work directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline or text.encode() in environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def assert_nothing_left(workdir: str) -> None:
    deadline = time.monotonic() + 10
    while processes_mentioning(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)  # a child that got SIGTERM may take a moment to go
    assert processes_mentioning(workdir) == []
    assert not Path(workdir).exists(), "the temporary directory was left behind"


@pytest.mark.timeout(420)
def test_sandbox_promotes_the_healthy_release_rolls_back_the_faulty_one_and_draws_it(tmp_path: Path) -> None:
    """At a real cluster's 15 s scrape interval (not the demo's 1 s), where a look holds about one scrape."""
    picture = tmp_path / "sandbox.png"
    process = start_sandbox("--quick", "--no-live", "--scrape-interval", "15s", "--output", str(picture))
    try:
        output, _ = process.communicate(timeout=400)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "an emulated Kubernetes API and a stand-in data plane" in output
    assert "The operator, the judge, the HTTP traffic and Prometheus are real" in output
    assert re.search(r"6\.7\.1 \(ERROR_RATE=0\.005\): Succeeded after \d+ s \(as expected\)", output), output
    assert re.search(r"6\.7\.2 \(ERROR_RATE=0\.1\): Failed after \d+ s \(as expected\) — .*(<|rejected)", output)
    assert f"Picture: {picture}" in output
    data = picture.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    # The live view saw the weights move: at least one step to 20 % before each outcome.
    assert "weight  20%" in output
    assert_nothing_left(workdir_of(output))


@pytest.mark.timeout(240)
def test_with_gateway_api_the_data_plane_follows_the_http_route_to_the_same_two_outcomes(tmp_path: Path) -> None:
    """``--provider gatewayapi``: the operator writes an HTTPRoute (no VirtualService), the router splits real
    requests by its weights and the live view reads them from it. At the demo's 1 s scrape: about 100 s."""
    picture = tmp_path / "gateway.png"
    process = start_sandbox("--provider", "gatewayapi", "--quick", "--no-live", "--output", str(picture))
    try:
        output, _ = process.communicate(timeout=220)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "its Canary (routed by an HTTPRoute, gatewayapi:v1)" in output
    assert re.search(r"6\.7\.1 \(ERROR_RATE=0\.005\): Succeeded after \d+ s \(as expected\)", output), output
    assert re.search(r"6\.7\.2 \(ERROR_RATE=0\.1\): Failed after \d+ s \(as expected\) — .*(<|rejected)", output)
    # The weights come from the HTTPRoute: the observer saw them step up (a VirtualService-only observer sees 0 %).
    assert "weight  20%" in output
    assert picture.read_bytes().startswith(PNG_MAGIC)
    assert_nothing_left(workdir_of(output))


def test_ctrl_c_stops_every_process_and_removes_the_temporary_directory(tmp_path: Path) -> None:
    process = start_sandbox("--quick", "--no-live", "--output", str(tmp_path / "never.png"))
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Releasing"):
                break
        time.sleep(2)  # mid-rollout: backends for both revisions are running
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 130, output
    assert "Interrupted: every sandbox process was stopped." in output
    assert not (tmp_path / "never.png").exists()
    assert_nothing_left(workdir_of(output))


def test_without_a_source_checkout_the_command_says_where_to_run_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ModuleNotFoundError(f"No module named {name!r}", name="e2e")

    monkeypatch.setattr(sandbox_cli.importlib, "import_module", missing)
    result = CliRunner().invoke(app, ["sandbox", "--quick"])
    assert result.exit_code == 2
    assert "the sandbox runs from a source checkout" in result.output
    assert "make demo" in result.output


def test_the_command_passes_its_options_to_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Entry:
        @staticmethod
        def main(argv: list[str]) -> int:
            seen.append(argv)
            return 1

    monkeypatch.setattr(sandbox_cli.importlib, "import_module", lambda name: Entry)
    result = CliRunner().invoke(app, ["sandbox", "--quick", "--rps", "25", "--output", "x.png", "--no-live"])
    assert result.exit_code == 1
    assert seen == [["--output", "x.png", "--quick", "--rps", "25", "--no-live"]]
    held = ["sandbox", "--hold", "--kubeconfig", "k.yaml", "--scrape-interval", "30s"]
    assert CliRunner().invoke(app, held).exit_code == 1
    assert seen[-1] == ["--rps", "40", "--scrape-interval", "30s", "--hold", "--kubeconfig", "k.yaml"]


def test_the_command_passes_the_provider_to_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    class Entry:
        @staticmethod
        def main(argv: list[str]) -> int:
            seen.append(argv)
            return 0

    monkeypatch.setattr("controller.cli.sandbox.importlib.import_module", lambda name: Entry)
    assert CliRunner().invoke(app, ["sandbox", "--quick", "--provider", "gatewayapi"]).exit_code == 0
    assert seen == [["--quick", "--rps", "40", "--provider", "gatewayapi"]]
    assert CliRunner().invoke(app, ["sandbox", "--provider", "istio"]).exit_code == 0
    assert seen[-1] == ["--rps", "40"]  # istio is the default: nothing to pass on
    refused = CliRunner().invoke(app, ["sandbox", "--provider", "linkerd"])
    assert refused.exit_code == 2 and len(seen) == 2
