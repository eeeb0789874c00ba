"""pytest fixtures and helpers to run the emulated API server and a kopf operator against it.

Two ways to run the emulator, because the tests that use it come in two shapes:

- ``emulator`` (async fixture): served on 127.0.0.1 in the **test's own event loop**. Use it for operator tests:
  kopf runs in the same loop (:func:`running_operator`), and the whole test can run on fake time with
  ``@pytest.mark.looptime`` — the HTTP traffic is loopback I/O inside the same loop, so looptime sees it, and
  the operator's sync handlers (the official ``kubernetes`` client in kopf's thread pool) are awaited by
  looptime in real-time steps. The official sync client must not be called directly from the test coroutine
  (it would block the loop that serves it): use ``await asyncio.to_thread(...)``, or the in-process helpers
  ``emulator.create_object/patch_object/read_object`` which have the same semantics without HTTP.
- ``threaded_emulator`` (sync fixture): served from a background thread with its own loop, for synchronous
  tests — the official client, the CLI with a ``kubeconfig`` file. Not for looptime (its clock is real).

How kopf is started against the emulator (:func:`running_operator`):

- ``kopf.operator(registry=…, settings=…, namespaces=…|clusterwide=True, standalone=True, vault=…,
  stop_flag=…, ready_flag=…, memo=…)`` in an asyncio task of the current loop;
- the credentials are a pre-populated kopf ``Vault`` with ``ConnectionInfo(server=emulator URL)``, so no login
  handler is needed and kubeconfig/in-cluster discovery never runs (the emulator never answers 401, so kopf
  never re-authenticates);
- ``standalone=True``: no peering objects; :func:`operator_settings` shortens kopf's timeouts for tests;
- it yields once kopf is ready *and* watching every resource in ``wait_for`` (the emulator reports open
  watch streams), and on exit sets the stop flag and waits for kopf to finish (cancelling it after
  ``shutdown_timeout``).

Handlers: pass a dedicated ``kopf.OperatorRegistry()`` for test-local handlers (so they don't leak into other
tests through kopf's global default registry); the operator's own handler modules register into the default
registry when imported, which is what ``registry=None`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import kopf
import kubernetes.client
import pytest
import pytest_asyncio
import yaml
from kopf._cogs.structs.credentials import Vault  # kopf's own type for pre-populated credentials

from .faults import FaultInjector, FaultPolicy
from .server import CoalmineEmulator, serving

T = TypeVar("T")


def operator_settings() -> kopf.OperatorSettings:
    """kopf settings for tests: standalone, short timeouts, no long idle waits at shutdown."""
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.peering.mandatory = False
    settings.networking.request_timeout = 10.0
    settings.networking.connect_timeout = 2.0
    settings.networking.error_backoffs = (0.1, 0.2, 0.5, 1.0)
    settings.watching.server_timeout = 60.0
    settings.watching.connect_timeout = 2.0
    settings.watching.reconnect_backoff = 0.1
    settings.queueing.idle_timeout = 0.5
    settings.queueing.exit_timeout = 1.0
    settings.queueing.error_delays = (0.1, 0.2, 0.5, 1.0, 2.0)
    settings.background.instant_exit_timeout = 0.1
    settings.posting.level = 30  # WARNING and above become Kubernetes Events; handler chatter doesn't
    return settings


@contextlib.asynccontextmanager
async def running_operator(
    emulator: CoalmineEmulator,
    *,
    registry: kopf.OperatorRegistry | None = None,
    namespaces: Iterable[str] = ("default",),
    clusterwide: bool = False,
    settings: kopf.OperatorSettings | None = None,
    memo: object | None = None,
    wait_for: Iterable[str] = (),
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
) -> AsyncIterator[asyncio.Task[None]]:
    """Run kopf in this loop against ``emulator`` until the block exits; see the module docstring."""
    vault = Vault()
    await vault.populate({"emulator": kopf.ConnectionInfo(server=str(emulator.url).rstrip("/"))})
    stop_flag, ready_flag = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(
            registry=registry if registry is not None else kopf.get_default_registry(),
            settings=settings if settings is not None else operator_settings(),
            standalone=True,
            clusterwide=clusterwide,
            namespaces=() if clusterwide else tuple(namespaces),
            stop_flag=stop_flag,
            ready_flag=ready_flag,
            vault=vault,
            memo=memo,
        ),
        name="kopf-operator-under-test",
    )
    try:
        async with asyncio.timeout(startup_timeout):
            ready = asyncio.ensure_future(ready_flag.wait())
            done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready.cancel()
                task.result()  # re-raise why the operator exited
                raise RuntimeError("the operator exited before it became ready")
            for resource in wait_for:
                await emulator.wait_for_watch(resource, timeout=startup_timeout)
        yield task
    finally:
        stop_flag.set()
        with contextlib.suppress(TimeoutError):  # wait_for() cancels the operator if it doesn't stop in time
            await asyncio.wait_for(task, timeout=shutdown_timeout)


class ThreadedEmulator:
    """The emulator served from a background thread (own loop), for synchronous tests and CLI tests."""

    def __init__(self, emulator: CoalmineEmulator) -> None:
        self.emulator = emulator
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emulated-kube-api", daemon=True)

    def __enter__(self) -> ThreadedEmulator:
        self._thread.start()
        if not self._ready.wait(timeout=10) or self._error is not None:
            raise RuntimeError("the emulated API server did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with serving(self.emulator) as url:
                self.url = url
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the test thread by __enter__
            self._error = exc
            self._ready.set()

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the emulator's loop thread (its state is not thread-safe) and return the result."""
        assert self._loop is not None
        result: Future[T] = Future()

        def run() -> None:
            try:
                result.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                result.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return result.result(timeout=10)

    def create_object(self, resource: str, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return self.call(self.emulator.create_object, resource, body, namespace)

    def patch_object(self, resource: str, namespace: str | None, name: str, patch: Any, **kw: Any) -> dict[str, Any]:
        return self.call(self.emulator.patch_object, resource, namespace, name, patch, **kw)

    def delete_object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self.call(self.emulator.delete_object, resource, namespace, name)

    def read_object(self, resource: str, namespace: str | None, name: str) -> Any:
        return self.call(self.emulator.read_object, resource, namespace, name)

    def list_objects(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(self.emulator.list_objects, resource, namespace)


def api_client_for(url: str) -> kubernetes.client.ApiClient:
    """An official-client ``ApiClient`` for the emulator (no TLS, no auth; short timeouts, no retries)."""
    configuration = kubernetes.client.Configuration()
    configuration.host = url
    configuration.retries = 0
    return kubernetes.client.ApiClient(configuration)


def write_kubeconfig(url: str, path: Path, *, namespace: str = "default") -> Path:
    """A kubeconfig whose current context points at the emulator (for the CLI and ``load_kube_config``)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "emulator", "user": {"token": "emulator"}}],
        "contexts": [
            {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace}}
        ],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def no_implicit_event_loop() -> None:
    """Stop looptime from leaking an event loop in every synchronous test that runs before an async one.

    looptime 0.9's ``pytest_pyfunc_call`` asks pytest-asyncio's (autouse) ``event_loop_policy`` for the current
    loop in *every* test. In a sync test on Python 3.11, before any loop was ever set, ``get_event_loop()``
    creates a fresh loop that nobody closes; its ``ResourceWarning`` then fails the run (warnings are errors).
    Marking the main thread's loop as explicitly unset makes that call raise instead, which looptime expects.
    """
    asyncio.set_event_loop(None)


@pytest.fixture
def fault_policy() -> FaultPolicy:
    """Override in a test module (or parametrize) to inject faults into the ``emulator`` fixtures."""
    return FaultPolicy()


@pytest_asyncio.fixture
async def emulator(fault_policy: FaultPolicy) -> AsyncIterator[CoalmineEmulator]:
    """The emulated API, served in the test's loop; ``emulator.url`` is its base URL."""
    server = CoalmineEmulator(faults=FaultInjector(fault_policy))
    async with serving(server):
        yield server


@pytest.fixture
def threaded_emulator(fault_policy: FaultPolicy) -> Iterator[ThreadedEmulator]:
    """The emulated API, served from a background thread; ``.url``, ``.emulator``, ``.call(...)``."""
    with ThreadedEmulator(CoalmineEmulator(faults=FaultInjector(fault_policy))) as running:
        yield running


@pytest.fixture
def k8s_client(threaded_emulator: ThreadedEmulator) -> Iterator[kubernetes.client.ApiClient]:
    """The official client, configured for ``threaded_emulator``."""
    with api_client_for(threaded_emulator.url) as client:
        yield client


@pytest.fixture
def kubeconfig(threaded_emulator: ThreadedEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig file for ``threaded_emulator``, also exported as ``KUBECONFIG`` for the test."""
    path = write_kubeconfig(threaded_emulator.url, tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
