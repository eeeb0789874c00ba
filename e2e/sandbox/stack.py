"""Bring the whole sandbox up on 127.0.0.1 and take it down again, whatever happens in between.

:class:`Stack` starts, in order: the emulated API (:mod:`e2e.sandbox.apiserver`), the workload stand-in, the router
for one Service, Debian's Prometheus scraping the router every ``scrape_interval_s`` (1 s unless told; it waits
until the scrape is ``up``), the real operator (``coalmine run`` with a 1 s tick) and, on request, the load
generator. Every child is a process started from the calling thread with ``PR_SET_PDEATHSIG``, so it dies with the
sandbox even on ``kill -9``; a normal exit, an exception, Ctrl-C or SIGTERM stops them in reverse order and removes
the temporary directory (:meth:`Stack.down` is idempotent and also registered with ``atexit``). ``provider``
(``istio`` or ``gatewayapi``) says which routing object the router follows: the VirtualService or the HTTPRoute.

The operator can be killed and restarted at will (:meth:`Stack.kill_operator`, :meth:`Stack.start_operator`):
the chaos test does exactly that. Its log goes to ``operator.log`` in the work directory, appended across restarts.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from controller.cli.kubectl.access import Cluster, connect
from e2e.sandbox import procs
from e2e.sandbox.prometheus import RunningPrometheus, scrape_config

UP_TIMEOUT_S = 30.0
ANNOUNCE_TIMEOUT_S = 30.0


def coalmine_command(*args: str) -> list[str]:
    """``coalmine ARGS`` with this interpreter's installation (the console script, else the module)."""
    script = Path(sys.executable).with_name("coalmine")
    if script.is_file():
        return [str(script), *args]
    return [sys.executable, "-c", "from controller.cli.main import app; app()", *args]


def query_prometheus(url: str, path: str, params: dict[str, str], timeout_s: float = 5.0) -> Any:
    """One Prometheus HTTP API call (``/api/v1/query`` or ``query_range``); returns ``data`` or raises."""
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=timeout_s) as response:
        body = json.loads(response.read())
    if body.get("status") != "success":
        raise RuntimeError(f"prometheus answered {body}")
    return body["data"]


@dataclass
class Stack:
    """The running sandbox (mutable runtime state); use it as a context manager."""

    namespace: str = "test"
    service: str = "podinfo"
    tick_s: float = 1.0
    scrape_interval_s: float = 1.0  # Prometheus' scrape interval for the router's /metrics
    keep: bool = False  # keep the work directory (logs, kubeconfig, Prometheus data) after stopping
    provider: str = "istio"  # the router follows the VirtualService (istio) or the HTTPRoute (gatewayapi)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="coalmine-sandbox-")))
    processes: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    prometheus: RunningPrometheus | None = None
    router_address: str = ""
    operator_starts: int = 0
    _cluster: Cluster | None = None
    _operator_log: IO[str] | None = None
    _logs: list[IO[str]] = field(default_factory=list)
    _down: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def operator_log(self) -> Path:
        return self.workdir / "operator.log"

    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:
            self._cluster = connect(str(self.kubeconfig), None, self.namespace)
        return self._cluster

    @property
    def prometheus_url(self) -> str:
        assert self.prometheus is not None, "the stack is not up"
        return self.prometheus.url

    def env(self) -> dict[str, str]:
        """The children's environment: the repository on PYTHONPATH and the sandbox's kubeconfig."""
        return procs.child_env({"KUBECONFIG": str(self.kubeconfig)})

    # -- lifecycle -------------------------------------------------------------------------------------------
    def up(self, *, with_operator: bool = True) -> Stack:
        """Start everything (see the module docstring); on any failure stop what started and re-raise."""
        atexit.register(self.down)
        try:
            self._start(
                "api", "e2e.sandbox.apiserver", "--namespace", self.namespace, "--kubeconfig", str(self.kubeconfig)
            )
            ns = ("--namespace", self.namespace, "--kubeconfig", str(self.kubeconfig))
            self._start("workload", "e2e.sandbox.workload", *ns, "--poll-interval", "0.25", announces=False)
            _, self.router_address = self._start(
                "router",
                "e2e.sandbox.router",
                *ns,
                "--service",
                self.service,
                "--provider",
                self.provider,
                "--poll-interval",
                "0.25",
            )
            self.prometheus = RunningPrometheus(
                self.workdir / "prometheus",
                scrape_config([self.router_address], interval_s=self.scrape_interval_s),
                extra_args=(),
            )
            (self.workdir / "prometheus").mkdir(exist_ok=True)
            self.prometheus.start()
            self._wait_scraped()
            if with_operator:
                self.start_operator()
        except BaseException:
            self.down()
            raise
        return self

    def _start(self, name: str, module: str, *args: str, announces: bool = True) -> tuple[subprocess.Popen[str], str]:
        log = (self.workdir / f"{name}.log").open("a")
        self._logs.append(log)
        command = procs.module_command(module, *args)
        if announces:
            process, address = _start_logged(command, self.env(), log)
        else:
            process, address = _spawn(command, self.env(), log), ""
        self.processes[name] = process
        return process, address

    def _wait_scraped(self) -> None:
        """Prometheus hands a new target to its scraper a few seconds after start: wait for ``up == 1``."""
        timeout_s = UP_TIMEOUT_S + 2 * self.scrape_interval_s  # the first scrape waits for a slot in its interval
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                result = query_prometheus(self.prometheus_url, "/api/v1/query", {"query": "up"})["result"]
                if result and all(sample["value"][1] == "1" for sample in result):
                    return
            time.sleep(0.25)
        raise RuntimeError(f"prometheus did not scrape the router within {timeout_s:g} s")

    def start_operator(self) -> subprocess.Popen[str]:
        """Start ``coalmine run`` against the emulated API (a no-op if it is already running)."""
        current = self.processes.get("operator")
        if current is not None and current.poll() is None:
            return current
        if self._operator_log is None:
            self._operator_log = self.operator_log.open("a")
        self.operator_starts += 1
        self._operator_log.write(f"----- operator start #{self.operator_starts} -----\n")
        self._operator_log.flush()
        command = coalmine_command(
            "run",
            "--namespace",
            self.namespace,
            "--metrics-server",
            self.prometheus_url,
            "--tick",
            f"{self.tick_s:g}",
            "--log-format",
            "text",
            "--metrics-port",
            "0",
            "--liveness-port",
            "0",
        )
        env = self.env() | {"POD_ID": f"sandbox-operator-{self.operator_starts}"}
        process = _spawn(command, env, self._operator_log)
        self.processes["operator"] = process
        return process

    def kill_operator(self) -> None:
        """``kill -9`` the operator (no cleanup of any kind happens in it) and reap it."""
        process = self.processes.get("operator")
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def operator_alive(self) -> bool:
        process = self.processes.get("operator")
        return process is not None and process.poll() is None

    def start_load(self, rps: float, duration_s: float) -> subprocess.Popen[str]:
        """A bounded load generator through the router (its JSON report lands in ``loadgen.log``)."""
        args = ("--url", f"http://{self.router_address}/", "--rps", f"{rps:g}", "--duration", f"{duration_s:g}")
        return self._start("loadgen", "e2e.sandbox.loadgen", *args, announces=False)[0]

    def pids(self) -> list[int]:
        """Process ids of every child still running (Prometheus included)."""
        running = [p.pid for p in self.processes.values() if p.poll() is None]
        if (
            self.prometheus is not None
            and self.prometheus.process is not None
            and self.prometheus.process.poll() is None
        ):
            running.append(self.prometheus.process.pid)
        return running

    def down(self) -> None:
        """Stop every child (operator first, API last) and remove the work directory; safe to call twice."""
        if self._down:
            return
        self._down = True
        order = ["loadgen", "operator", "router", "workload"]
        for name in [*order, *(n for n in self.processes if n not in (*order, "api"))]:
            if name in self.processes:
                procs.stop(self.processes[name], grace_s=5.0)
        if self.prometheus is not None:
            self.prometheus.stop()
        if "api" in self.processes:
            procs.stop(self.processes["api"], grace_s=5.0)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.api.close()
        for log in [*self._logs, *([self._operator_log] if self._operator_log is not None else [])]:
            log.close()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with contextlib.suppress(Exception):
            atexit.unregister(self.down)

    def __enter__(self) -> Stack:
        return self.up()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.down()


def _spawn(command: list[str], env: dict[str, str], log: IO[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=procs.die_with_parent,
    )


def _start_logged(command: list[str], env: dict[str, str], log: IO[str]) -> tuple[subprocess.Popen[str], str]:
    """:func:`procs.start` with stderr to ``log`` (the announcement still comes on stdout)."""
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=procs.die_with_parent,
    )
    assert process.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=ANNOUNCE_TIMEOUT_S):
                raise TimeoutError(f"{command[2:4]} did not announce its address; see {log.name}")
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{command[2:4]} exited with {process.wait(timeout=5)} before listening; see {log.name}")
        return process, procs.parse_announcement(line)
    except BaseException:
        procs.stop(process)
        raise


def terminate_on_signals() -> None:
    """SIGTERM/SIGHUP stop the stack like Ctrl-C does (raise ``KeyboardInterrupt`` in the main thread)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
