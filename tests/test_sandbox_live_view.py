"""``make demo`` in a real terminal: the live view shows what the log shows, once, and ends on the rollback.

The sandbox runs as a user starts it (``python -m e2e.sandbox --quick``, no ``--live`` flag: a terminal gets the
live view) inside a tmux pane, a real pseudo-terminal with a real terminal emulator behind it, so cursor movement
and line erasing are interpreted exactly as a user's terminal would. The test then reads what the pane shows
(its scrollback included: that is what a user scrolls back through) and asserts on it:

* one table header — a live view redraws its frame in place; it must not leave a copy behind at every redraw;
* the narration (what the sandbox is doing: applying, releasing, waiting) is still on screen, not erased by a
  redraw;
* the last frame is the rollback: the faulty release ``Failed`` at 0 %, not a stale ``Progressing`` frame from
  before the decision, and the reason for the rollback is on screen.

Skipped without tmux (``apt-get install tmux``) or Debian's Prometheus.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sandbox import prometheus_installed

from e2e.sandbox import procs

__all__ = ["prometheus_installed"]  # the module-scoped fixture that installs Prometheus (or skips)

HEADER = re.compile(r"NAMESPACE\s+NAME\s+KIND\s+PHASE\s+WEIGHT")
ROW = re.compile(r"^test\s+podinfo\s+Canary\s+(?P<phase>\S+)\s+(?P<weight>\d+)%")
WIDTH, HEIGHT = 160, 60


@pytest.fixture
def tmux() -> Iterator[list[str]]:
    """``tmux -L <socket>``: a tmux server of this test's own (its socket only), killed afterwards (the pane's
    sandbox gets SIGHUP and cleans up) and its socket file removed."""
    if shutil.which("tmux") is None:
        pytest.skip("the live-view test needs tmux (apt-get install -y tmux)")
    command = ["tmux", "-L", f"coalmine-live-{uuid.uuid4().hex[:8]}", "-f", "/dev/null"]
    yield command
    socket = subprocess.run(
        [*command, "display-message", "-p", "#{socket_path}"], capture_output=True, text=True, check=False
    )
    subprocess.run([*command, "kill-server"], capture_output=True, check=False)
    if socket.returncode == 0 and socket.stdout.strip():
        Path(socket.stdout.strip()).unlink(missing_ok=True)


def start_in_pane(tmux: list[str], argv: list[str], done: Path) -> None:
    """Run ``argv`` from the repository in a fresh WIDTH×HEIGHT pane; the shell then writes its exit status to
    ``done`` and idles, so that the pane (and what it shows) stays until the test has read it."""
    shell = f"{shlex.join(argv)}; echo $? > {shlex.quote(str(done))}; sleep 600"
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), "-c", str(procs.REPO_ROOT), shell],
        check=True,
    )


def wait_for_exit(tmux: list[str], done: Path, timeout_s: float) -> str:
    """The exit status once the pane's command has ended (fails with the screen after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not done.exists() or not done.read_text().strip():
        assert time.monotonic() < deadline, capture(tmux)
        time.sleep(0.5)
    time.sleep(0.5)  # let tmux take in the last bytes
    return done.read_text().strip()


def capture(tmux: list[str]) -> str:
    """Everything the pane shows: its scrollback and its screen, wrapped lines joined."""
    pane = subprocess.run([*tmux, "capture-pane", "-p", "-J", "-S", "-"], capture_output=True, text=True, check=True)
    return pane.stdout


@pytest.mark.timeout(400)
def test_in_a_terminal_the_live_view_keeps_one_table_and_the_narration_and_ends_on_the_rollback(
    tmux: list[str], tmp_path: Path
) -> None:
    done = tmp_path / "exit-status"
    argv = [sys.executable, "-m", "e2e.sandbox", "--quick", "--output", str(tmp_path / "live.png")]
    start_in_pane(tmux, argv, done)
    status = wait_for_exit(tmux, done, timeout_s=360)
    screen = capture(tmux)
    assert status == "0", screen
    lines = screen.splitlines()

    headers = [index for index, line in enumerate(lines) if HEADER.search(line)]
    assert len(headers) == 1, f"{len(headers)} table headers on screen:\n{screen}"

    # The frame left on screen is the last state: the faulty release rolled back (Failed, no canary traffic).
    rows = [match for line in lines[headers[0] + 1 :] if (match := ROW.match(line.strip()))]
    assert len(rows) == 1, screen
    assert (rows[0]["phase"], rows[0]["weight"]) == ("Failed", "0"), screen

    # The narration survived the redraws, in the order it happened, and the rollback's reason is shown.
    narration = [
        "Applied Deployment podinfo (6.7.0, 0.5 % errors)",
        "Releasing 6.7.1 with ERROR_RATE=0.005 (expect Succeeded)",
        "for the last release's traffic to leave the windows",
        "Releasing 6.7.2 with ERROR_RATE=0.1 (expect Failed)",
    ]
    positions = [screen.find(text) for text in narration]
    assert -1 not in positions, f"narration missing ({narration[positions.index(-1)]!r}):\n{screen}"
    assert positions == sorted(positions), screen
    assert re.search(r"Succeeded\s+weight\s+0%\s+Promotion completed", screen), screen
    assert re.search(r"Failed\s+weight\s+0%\s+Rolling back podinfo", screen), screen
    assert re.search(r"6\.7\.2 \(ERROR_RATE=0\.1\): Failed after \d+ s \(as expected\)", screen), screen


def wait_for_screen(tmux: list[str], text: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (screen := capture(tmux)):
        assert time.monotonic() < deadline, f"{text!r} never appeared:\n{screen}"
        time.sleep(0.5)
    return screen


@pytest.mark.timeout(200)
def test_ctrl_c_in_the_live_view_gives_the_terminal_back(tmux: list[str], tmp_path: Path) -> None:
    """The live view hides the cursor while it redraws; Ctrl-C mid-rollout must stop it, show the cursor again
    and still say that every process was stopped (exit status 130)."""
    done = tmp_path / "exit-status"
    argv = [sys.executable, "-m", "e2e.sandbox", "--quick", "--output", str(tmp_path / "never.png")]
    start_in_pane(tmux, argv, done)
    wait_for_screen(tmux, "weight  10%", timeout_s=120)  # mid-rollout, the table live below
    subprocess.run([*tmux, "send-keys", "C-c"], check=True)
    status = wait_for_exit(tmux, done, timeout_s=60)
    screen = capture(tmux)
    assert status == "130", screen
    assert "Interrupted: every sandbox process was stopped." in screen
    assert len(HEADER.findall(screen)) == 1, screen
    cursor = subprocess.run(
        [*tmux, "display-message", "-p", "#{cursor_flag}"], capture_output=True, text=True, check=True
    )
    assert cursor.stdout.strip() == "1", "the cursor is still hidden after the sandbox exited"
    assert not (tmp_path / "never.png").exists()
