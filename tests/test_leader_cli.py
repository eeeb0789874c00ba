"""``coalmine run --leader-elect`` as a user runs it: the installed script in a subprocess against the emulated API.

It takes the Lease under its identity, renews it, and on SIGTERM gives it up (empty holder) so a standby takes over
at once; contradictory flags are refused before anything starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from emulator.fixtures import ThreadedEmulator

COALMINE = Path(sys.executable).with_name("coalmine")
LEASES = "coordination.k8s.io/v1/leases"
BASE = [str(COALMINE), "run", "-n", "default", "--metrics-port", "0", "--liveness-port", "0", "--log-format", "text"]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "POD_NAME", "POD_NAMESPACE")}


@pytest.mark.parametrize(
    ("flags", "complaint"),
    [
        (["--leader-elect", "--peering", "coalmine"], "--leader-elect replaces --peering"),
        (["--leader-elect", "--lease-duration", "5", "--renew-deadline", "6"], "lease duration > renew deadline"),
    ],
)
def test_contradictory_leader_flags_are_refused(flags: list[str], complaint: str) -> None:
    result = subprocess.run([*BASE, *flags], env=_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and complaint in " ".join(result.stderr.split()), result.stderr


def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.timeout(90)
def test_the_operator_holds_the_lease_and_releases_it_on_sigterm(
    threaded_emulator: ThreadedEmulator, kubeconfig: Path
) -> None:
    flags = ["--leader-elect", "--lease-name", "coalmine", "--identity", "replica-1"]
    timings = ["--lease-duration", "3", "--renew-deadline", "2", "--retry-period", "0.5"]
    env = _env() | {"KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": "default"}
    process = subprocess.Popen([*BASE, *flags, *timings], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        def lease() -> dict[str, Any] | None:
            found: dict[str, Any] | None = threaded_emulator.read_object(LEASES, "default", "coalmine")
            return found

        held = _wait("the Lease to be held by replica-1", lambda: (lease() or {}).get("spec", {}).get("holderIdentity"))
        assert held == "replica-1"
        first = lease()
        assert first is not None and first["spec"]["leaseDurationSeconds"] == 3
        _wait("a renewal", lambda: (lease() or {})["spec"]["renewTime"] != first["spec"]["renewTime"], timeout=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.communicate()[0].decode()  # also closes the pipe
    released = lease()
    assert released is not None and released["spec"]["holderIdentity"] == "", output
    assert released["spec"]["leaseTransitions"] == 0  # released, not taken over
