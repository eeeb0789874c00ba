"""Debian's real Prometheus for the sandbox and the tests: installed when missing, started on a free local port.

:func:`ensure_installed` installs the ``prometheus`` package with apt-get (as root) when ``prometheus``/``promtool``
are not on ``PATH``, and raises :class:`PrometheusUnavailable` with the reason when that is impossible (the tests
turn it into a skip, the sandbox into an error message). :class:`RunningPrometheus` starts the server with a
config file and data directory of the caller's choosing on 127.0.0.1, waits for ``/-/ready`` and stops it
(SIGTERM, then SIGKILL). :func:`scrape_config` writes the sandbox's config: the router's ``/metrics`` every second.

``python -m e2e.sandbox.prometheus --target 127.0.0.1:P`` runs one by hand until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from e2e.sandbox.procs import announce, die_with_parent

INSTALL_TIMEOUT_S = 600


class PrometheusUnavailable(RuntimeError):
    """Prometheus is not installed and cannot be (the message says why)."""


def free_port() -> int:
    """A port nothing listens on right now (for programs that cannot announce a port they chose themselves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_installed(binaries: Sequence[str] = ("prometheus", "promtool")) -> None:
    """Install Debian's ``prometheus`` package when any of ``binaries`` is missing."""
    if all(shutil.which(name) for name in binaries):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise PrometheusUnavailable("prometheus is not installed and apt-get (as root) is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise PrometheusUnavailable(
                f"could not install prometheus: {' '.join(command)} failed: {done.stderr.strip()[-300:]}"
            )
    if not all(shutil.which(name) for name in binaries):
        raise PrometheusUnavailable(f"apt-get installed prometheus but {'/'.join(binaries)} are not on PATH")


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 30.0) -> None:
    """Wait for ``/-/ready``; raise with the log's tail when Prometheus exits or takes too long."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"prometheus did not become ready in {timeout_s} s:\n{log.read_text()[-2000:]}")


def scrape_config(targets: Sequence[str], *, interval_s: float = 1.0, job: str = "coalmine-sandbox-router") -> str:
    """A Prometheus config scraping ``targets`` (``host:port``, path ``/metrics``) every ``interval_s``.

    The scrape timeout is the interval, at most Prometheus' default 10 s: the looks read their counter boundaries
    10 s in the past (``controller.providers.counting.SETTLE_S``), which is only safe with scrapes that end by then.
    """
    interval = f"{max(1, round(interval_s * 1000))}ms"
    timeout = f"{max(1, round(min(interval_s, 10.0) * 1000))}ms"
    listed = ", ".join(f'"{t}"' for t in targets)
    return (
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        f"    scrape_interval: {interval}\n"
        f"    scrape_timeout: {timeout}\n"
        "    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [{listed}]\n"
    )


class RunningPrometheus:
    """A Prometheus process on 127.0.0.1 (a context manager; ``url`` once started).

    ``workdir`` holds ``prometheus.yml``, the log and (unless ``data_dir`` is given) the TSDB.
    """

    def __init__(
        self,
        workdir: Path,
        config: str,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = ("--storage.tsdb.retention.time=3650d",),
        ready_timeout_s: float = 30.0,
    ) -> None:
        self.workdir = workdir
        self.config = config
        self.data_dir = data_dir if data_dir is not None else workdir / "data"
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.extra_args = tuple(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RunningPrometheus:
        ensure_installed(("prometheus",))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.workdir / "prometheus.yml"
        config_file.write_text(self.config)
        with self.log.open("wb") as log_file:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                    *self.extra_args,
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        try:
            wait_ready(self.url, self.process, self.log, self.ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> RunningPrometheus:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Debian's Prometheus scraping the sandbox router.")
    parser.add_argument("--target", action="append", required=True, help="HOST:PORT serving /metrics (repeatable)")
    parser.add_argument("--port", type=int, default=None, help="listen port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--scrape-interval", type=float, default=1.0, help="seconds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="coalmine-sandbox-prometheus-") as workdir:
        config = scrape_config(args.target, interval_s=args.scrape_interval)
        with RunningPrometheus(Path(workdir), config, port=args.port, extra_args=()) as prometheus:
            announce("127.0.0.1", prometheus.port)
            stop = False

            def _stop(*_: object) -> None:
                nonlocal stop
                stop = True

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            while not stop and prometheus.process is not None and prometheus.process.poll() is None:
                time.sleep(0.2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
