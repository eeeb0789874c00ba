"""Child processes of the sandbox: how they announce their address, die with their parent and are stopped.

Every server in the sandbox binds 127.0.0.1 (port 0 unless told otherwise) and prints exactly one line to stdout,
``LISTENING 127.0.0.1:<port>``, once it accepts connections; logs go to stderr. A parent reads that line instead
of guessing a free port, so there is no window in which two processes race for the same port.

Children are started with ``PR_SET_PDEATHSIG`` (Linux) so that even a ``kill -9`` of their parent (the chaos test
kills processes at random) cannot leave orphaned backends holding ports; the parent still stops them politely
(SIGTERM, then SIGKILL after a grace period) on a normal exit. Linux sends that signal when the *thread* that
started the child ends, so start long-lived children from the main thread or one that lives as long as they do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LISTENING = "LISTENING"
REPO_ROOT = Path(__file__).resolve().parents[2]
_PR_SET_PDEATHSIG = 1


def announce(host: str, port: int) -> None:
    """Tell the parent where this process listens (the only line a sandbox server writes to stdout)."""
    print(f"{LISTENING} {host}:{port}", flush=True)


def parse_announcement(line: str) -> str:
    """``host:port`` from an announcement line; ``ValueError`` naming the line when it is something else."""
    word, _, address = line.strip().partition(" ")
    host, _, port = address.rpartition(":")
    if word != LISTENING or not host or not port.isdigit():
        raise ValueError(f"expected '{LISTENING} <host>:<port>', got {line.strip()!r}")
    return address


def die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM this child when its parent dies (no-op on other systems)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def module_command(module: str, *args: str) -> list[str]:
    """``python -m <module> args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env(extra: Mapping[str, str] | None = None, *, drop: Sequence[str] = ()) -> dict[str, str]:
    """This process's environment with the repository root on ``PYTHONPATH`` (``e2e`` is not an installed
    package, so ``python -m e2e.sandbox.…`` must find it from any working directory), minus ``drop``, plus
    ``extra``."""
    env = {key: value for key, value in os.environ.items() if key not in drop}
    paths = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def start(
    command: Sequence[str], env: Mapping[str, str] | None = None, *, timeout_s: float = 20.0
) -> tuple[subprocess.Popen[str], str]:
    """Start a sandbox server synchronously and wait for its announcement; returns the process and ``host:port``.

    The process is killed (and the error raised) when it exits or stays silent for ``timeout_s``.
    """
    process = subprocess.Popen(
        list(command),
        env=dict(env) if env is not None else child_env(),
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent,
    )
    assert process.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=timeout_s):
                raise TimeoutError(f"{command[:4]} did not announce its address within {timeout_s:g} s")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{command[:4]} exited with {process.wait(timeout=5)} before listening")
        return process, parse_announcement(line)
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen[str], grace_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code (idempotent)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)
    if process.stdout is not None:
        process.stdout.close()
    return int(process.returncode)


async def start_async(
    command: Sequence[str], env: Mapping[str, str], *, timeout_s: float = 20.0
) -> tuple[asyncio.subprocess.Process, str]:
    """:func:`start` for an asyncio program (the workload stand-in starts backends without blocking its loop)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(timeout_s):
            line = (await process.stdout.readline()).decode(errors="replace")
        if not line:
            raise RuntimeError(f"{command[:4]} exited with {await process.wait()} before listening")
        return process, parse_announcement(line)
    except BaseException:
        await stop_async(process)
        raise


async def stop_async(process: asyncio.subprocess.Process, grace_s: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace_s``; returns the exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode


def kill_now(pids: Callable[[], Sequence[int]]) -> Callable[[], None]:
    """An ``atexit`` hook that SIGTERMs whatever ``pids()`` lists at exit (last resort if the loop died)."""

    def hook() -> None:
        for pid in pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)

    return hook


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (the program then shuts down cleanly instead of dying mid-write)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
