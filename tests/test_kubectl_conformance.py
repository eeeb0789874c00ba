"""Real kubectl (v1.35) against the emulated API and the real operator, driven as a user drives a cluster.

One emulated API server (Coalmine's CRDs loaded) and the real operator (kopf and Coalmine's handlers, watching
namespace ``demo``) run for the whole module in a background thread; every check runs the real ``kubectl`` binary
with a kubeconfig, as a subprocess, and asserts on what it prints and its exit code:

- namespace ``test`` holds ``examples/`` as ``kubectl apply -f examples/`` writes them (kubectl's default
  client-side validation, which needs the server's OpenAPI and field validation). The operator does not watch it:
  the examples name Prometheus, Slack and webhook hosts outside this machine, and tests only talk to 127.0.0.1;
- namespace ``demo`` holds the README's example (``examples/demo-canary.yaml``, moved to ``demo``), which the
  operator drives: printer columns, ``describe`` with the operator's Events, ``wait --for=condition=Ready``,
  ``get -w``, ``diff``/``--dry-run=server`` changing nothing, ``set image`` starting a rollout, and every verb
  of the ``kubectl coalmine`` plugin. Prometheus is a closed port on 127.0.0.1 (metrics read as no data).

The checks run in file order and share the world (a rollout is a sequence of steps); each asserts on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from emulator import CoalmineEmulator, operator_settings, running_operator, serving, write_kubeconfig
from kubectl_binary import KubectlUnavailable, kubectl_path

from controller.operator.context import OperatorConfig
from controller.operator.runtime import build_context, build_registry, configure_settings

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DEMO = "demo"
CANARIES = "coalmine.dev/v1alpha1/canaries"
DEPLOYMENTS = "apps/v1/deployments"
pytestmark = pytest.mark.timeout(240)


def _closed_port() -> int:
    """A 127.0.0.1 port nobody listens on: the operator's Prometheus (queries fail fast, as no data)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class World:
    """The emulator and the real operator in one background event loop (kopf runs where the API is served)."""

    def __init__(self) -> None:
        self.emulator = CoalmineEmulator(namespaces=("default", "kube-system", "test", DEMO))
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="kubectl-world", daemon=True)

    async def _main(self) -> None:
        try:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            config = OperatorConfig(tick_seconds=0.3, metrics_server=f"http://127.0.0.1:{_closed_port()}")
            async with serving(self.emulator) as url:
                self.url = url
                ctx = build_context(config, kubernetes.client.Configuration(host=url))
                settings = operator_settings()
                configure_settings(settings)
                registry = build_registry(config)
                async with running_operator(
                    self.emulator,
                    registry=registry,
                    settings=settings,
                    memo={"ctx": ctx},
                    namespaces=(DEMO,),
                    wait_for=(CANARIES,),
                ):
                    self._ready.set()
                    await self._stop.wait()
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def __enter__(self) -> World:
        self._thread.start()
        if not self._ready.wait(timeout=30) or self._error is not None:
            raise RuntimeError("the emulator and operator did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` on the world's loop (the emulator is not thread-safe) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop).result(timeout=10)

    def read(self, resource: str, name: str, namespace: str = DEMO) -> dict[str, Any]:
        found = self.call(self.emulator.read_object, resource, namespace, name)
        assert found is not None, f"{resource} {namespace}/{name} does not exist"
        return dict(found)

    def writes(self) -> int:
        return int(self.call(lambda: self.emulator.store.resource_version))


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),  # kubectl's discovery and OpenAPI cache (~/.kube/cache) stays in the test's tmp
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }

    def __call__(self, *args: str, timeout: float = 60, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=REPO,
            input=stdin,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 60) -> str:
        done = self(*args, timeout=timeout)
        assert done.returncode == 0, f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def phase(self, name: str = "podinfo") -> str:
        return self.ok("get", "canary", name, "-n", DEMO, "-o", "jsonpath={.status.phase}")

    def wait_phase(self, *phases: str, timeout: float = 30) -> str:
        deadline, phase = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            phase = self.phase()
            if phase in phases:
                return phase
            time.sleep(0.3)
        pytest.fail(f"the Canary stayed {phase!r}, never {phases}")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with World() as running:
        yield running


@pytest.fixture(scope="module")
def kubectl(world: World, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    try:
        binary = kubectl_path()
    except KubectlUnavailable as error:
        pytest.skip(f"real kubectl is not available here: {error}")
    home = tmp_path_factory.mktemp("kubectl-home")
    return Kubectl(binary, write_kubeconfig(world.url, home / "kubeconfig"), home)


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's example, in namespace ``demo`` (watched by the operator)."""
    text = (REPO / "examples" / "demo-canary.yaml").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("manifests") / "demo-canary.yaml"
    text = text.replace("namespace: test", f"namespace: {DEMO}")
    assert "interval: 30s" in text
    # Looks every 10 s, not 30: the promotion at the end waits for one; no data never fails a look within the suite.
    path.write_text(text.replace("interval: 30s", "interval: 10s"), encoding="utf-8")
    return path


# -- apply with kubectl's default validation ------------------------------------------------------------------------
def test_apply_crds_and_examples_with_default_validation(kubectl: Kubectl) -> None:
    crds = kubectl.ok("apply", "-f", "crds/")
    assert "customresourcedefinition.apiextensions.k8s.io/canaries.coalmine.dev" in crds
    applied = kubectl("apply", "-f", "examples/")
    assert applied.returncode == 0 and applied.stderr == "", applied.stderr  # no unknown-field warnings either
    examples = applied.stdout
    for line in (
        "alertprovider.coalmine.dev/on-call created",
        "deployment.apps/podinfo created",
        "canary.coalmine.dev/podinfo created",
        "metrictemplate.coalmine.dev/not-found-percentage created",
        "bluegreen.coalmine.dev/podinfo created",
    ):
        assert line in examples
    assert "unchanged" in kubectl.ok("apply", "-f", "examples/podinfo-canary.yaml")


def test_apply_refuses_a_misspelt_field_naming_it(kubectl: Kubectl, tmp_path: Path) -> None:
    canary = (REPO / "examples" / "demo-canary.yaml").read_text(encoding="utf-8").split("\n---\n")[1]
    assert "kind: Canary" in canary
    typo = canary.replace("name: podinfo\n", "name: typo\n").replace("stepWeight:", "stepWieght:")
    (tmp_path / "typo.yaml").write_text(typo, encoding="utf-8")
    done = kubectl("apply", "-f", str(tmp_path / "typo.yaml"))
    assert done.returncode == 1
    assert 'strict decoding error: unknown field "spec.analysis.stepWieght"' in done.stderr
    assert kubectl("get", "canary", "typo", "-n", "test").returncode == 1  # nothing was stored


def test_apply_the_demo_and_wait_for_ready(kubectl: Kubectl, demo_manifest: Path) -> None:
    applied = kubectl.ok("apply", "-f", str(demo_manifest))
    assert "canary.coalmine.dev/podinfo created" in applied
    waited = kubectl.ok("wait", "--for=condition=Ready", "canary/podinfo", "-n", DEMO, "--timeout=30s", timeout=40)
    assert "canary.coalmine.dev/podinfo condition met" in waited
    assert kubectl.phase() == "Initialized"


# -- reading --------------------------------------------------------------------------------------------------------
def test_get_canaries_prints_the_crd_printer_columns(kubectl: Kubectl) -> None:
    listed = kubectl.ok("get", "canaries", "-n", DEMO)
    header, row = listed.splitlines()[:2]
    assert header.split() == ["NAME", "STATUS", "WEIGHT", "STEP", "FAILEDCHECKS", "NODATA", "LASTTRANSITIONTIME", "AGE"]
    assert row.split()[:2] == ["podinfo", "Initialized"]
    wide = kubectl.ok("get", "cmc", "-A", "-o", "wide")
    assert wide.splitlines()[0].split()[:3] == ["NAMESPACE", "NAME", "STATUS"]
    assert {line.split()[0] for line in wide.splitlines()[1:]} == {DEMO, "test"}


def test_short_names_and_get_all_work_without_warnings(kubectl: Kubectl) -> None:
    done = kubectl("get", "cmc", "-n", DEMO)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    namespaces = kubectl.ok("get", "ns")
    assert {tuple(line.split()[:2]) for line in namespaces.splitlines()[1:]} >= {(DEMO, "Active"), ("test", "Active")}
    everything = kubectl("get", "all", "-n", DEMO)
    assert everything.returncode == 0, everything.stderr
    assert "canary.coalmine.dev/podinfo" in everything.stdout
    assert "deployment.apps/podinfo-primary" in everything.stdout


def test_explain_shows_the_crd_schema(kubectl: Kubectl) -> None:
    explained = kubectl.ok("explain", "canary.spec.analysis")
    assert "KIND:       Canary" in explained
    assert "stepWeight" in explained and "threshold" in explained
    assert "DESCRIPTION:" in kubectl.ok("explain", "deployment.spec.template.spec.containers")


def test_describe_shows_the_events_the_operator_wrote(kubectl: Kubectl) -> None:
    # The operator records a tick's Events after the status write that `kubectl wait` saw, as on a real cluster:
    # describe is retried (bounded) until the Initialized Event is there, not read once at an arbitrary instant.
    deadline, events = time.monotonic() + 20, ""
    while time.monotonic() < deadline:
        described = kubectl.ok("describe", "canary", "podinfo", "-n", DEMO)
        assert "Events:" in described
        events = described.split("Events:", 1)[1]
        assert "<none>" not in events.splitlines()[0], described
        if "Initialized" in events or "Synced" in events:
            break
        time.sleep(0.5)
    assert "Initialized" in events or "Synced" in events, events


def test_get_watch_streams_changes_until_its_timeout(kubectl: Kubectl) -> None:
    process = subprocess.Popen(
        [str(kubectl.binary), "get", "canaries", "-n", DEMO, "-w", "--request-timeout=6s", "--output-watch-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kubectl.env,
    )
    time.sleep(2)
    assert "labeled" in kubectl.ok("label", "canary", "podinfo", "-n", DEMO, "watched=yes")
    out, err = process.communicate(timeout=20)
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:3] == ["EVENT", "NAME", "STATUS"], out + err
    assert [line[:2] for line in lines[1:3]] == [["ADDED", "podinfo"], ["MODIFIED", "podinfo"]], out + err


# -- changing nothing -------------------------------------------------------------------------------------------------
def test_diff_and_server_dry_run_change_nothing(
    kubectl: Kubectl, world: World, demo_manifest: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "changed.yaml"
    changed.write_text(demo_manifest.read_text(encoding="utf-8").replace("podinfo:6.7.1", "podinfo:6.7.9"))
    before = world.writes()
    deployment, canary = world.read(DEPLOYMENTS, "podinfo"), world.read(CANARIES, "podinfo")
    diffed = kubectl("diff", "-f", str(changed))
    assert diffed.returncode == 1, diffed.stderr  # 1: differences found
    images = [line.replace(" ", "") for line in diffed.stdout.splitlines() if "image:" in line]
    assert images == ["-image:ghcr.io/stefanprodan/podinfo:6.7.1", "+image:ghcr.io/stefanprodan/podinfo:6.7.9"], diffed
    dry = kubectl.ok("apply", "--dry-run=server", "-f", str(changed))
    assert "deployment.apps/podinfo configured (server dry run)" in dry
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(changed.read_text(encoding="utf-8").replace("name: podinfo\n", "name: fresh\n"))
    created = kubectl.ok("create", "--dry-run=server", "-f", str(fresh))
    assert "canary.coalmine.dev/fresh created (server dry run)" in created
    assert kubectl("get", "canary", "fresh", "-n", DEMO).returncode == 1
    time.sleep(1.5)  # a few operator ticks: nothing may have reacted
    assert world.writes() == before
    assert world.read(DEPLOYMENTS, "podinfo") == deployment
    assert world.read(CANARIES, "podinfo") == canary
    assert kubectl.phase() == "Initialized"


# -- a rollout, steered with the plugin ------------------------------------------------------------------------------
def test_plugin_list_finds_kubectl_coalmine(kubectl: Kubectl) -> None:
    if not (VENV_BIN / "kubectl-coalmine").is_file():
        pytest.skip("kubectl-coalmine is not installed next to this interpreter (pip install -e .)")
    assert str(VENV_BIN / "kubectl-coalmine") in kubectl("plugin", "list").stdout


def test_set_image_starts_a_rollout(kubectl: Kubectl) -> None:
    image = "podinfod=ghcr.io/stefanprodan/podinfo:6.7.2"
    assert "image updated" in kubectl.ok("set", "image", "-n", DEMO, "deployment/podinfo", image)
    assert kubectl.wait_phase("Progressing") == "Progressing"


def test_plugin_reads_get_and_explain(kubectl: Kubectl) -> None:
    listed = kubectl.ok("coalmine", "get", "-n", DEMO)
    assert "podinfo" in listed and "Progressing" in listed
    detail = kubectl.ok("coalmine", "get", "podinfo", "-n", DEMO)
    assert "Progressing" in detail
    rows = json.loads(kubectl.ok("coalmine", "get", "-n", DEMO, "-o", "json"))["items"]
    assert [row["name"] for row in rows] == ["podinfo"]
    assert "podinfo" in kubectl.ok("coalmine", "explain", "podinfo", "-n", DEMO)
    watched = kubectl.ok("coalmine", "get", "-w", "-n", DEMO, "--timeout", "3s", timeout=30)
    assert "podinfo" in watched


def test_plugin_status_times_out_while_the_rollout_runs(kubectl: Kubectl) -> None:
    done = kubectl("coalmine", "status", "podinfo", "-n", DEMO, "--timeout", "2s", timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "podinfo timed out" in done.stdout


def test_plugin_pause_and_resume(kubectl: Kubectl) -> None:
    paused = kubectl("coalmine", "pause", "podinfo", "-n", DEMO, "--wait", "20s", timeout=40)
    assert paused.returncode == 0, paused.stdout + paused.stderr
    assert "handled: podinfo" in paused.stdout
    again = kubectl("coalmine", "pause", "podinfo", "-n", DEMO)
    assert again.returncode != 0 and "already paused" in again.stderr
    resumed = kubectl("coalmine", "resume", "podinfo", "-n", DEMO, "--wait", "20s", timeout=40)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr


def test_plugin_promote_refuses_when_nothing_waits(kubectl: Kubectl) -> None:
    done = kubectl("coalmine", "promote", "podinfo", "-n", DEMO, "--no-wait")
    assert done.returncode != 0, done.stdout
    assert done.stderr.startswith("error:")


def test_plugin_abort_then_retry(kubectl: Kubectl) -> None:
    aborted = kubectl("coalmine", "abort", "podinfo", "-n", DEMO, "--wait", "20s", timeout=40)
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert kubectl.wait_phase("Failed") == "Failed"
    failed = kubectl("coalmine", "status", "podinfo", "-n", DEMO, "--timeout", "5s", timeout=30)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    retried = kubectl("coalmine", "retry", "podinfo", "-n", DEMO, "--wait", "20s", timeout=40)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert kubectl.wait_phase("Progressing") == "Progressing"


def test_plugin_promote_full_then_status_succeeds(kubectl: Kubectl) -> None:
    promoted = kubectl("coalmine", "promote", "podinfo", "--full", "-n", DEMO, "--wait", "20s", timeout=40)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    done = kubectl("coalmine", "status", "podinfo", "-n", DEMO, "--timeout", "45s", timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "podinfo succeeded" in done.stdout
    image = kubectl.ok(
        "get", "deploy", "podinfo-primary", "-n", DEMO, "-o", "jsonpath={.spec.template.spec.containers[0].image}"
    )
    assert image == "ghcr.io/stefanprodan/podinfo:6.7.2"
