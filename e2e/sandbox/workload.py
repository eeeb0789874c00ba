"""The workload stand-in: the kubelet and deployment controller of the sandbox, with one process per revision.

``python -m e2e.sandbox.workload --kubeconfig F --namespace NS``

Every ``--poll-interval`` (0.5 s) it lists the Deployments of the namespace and converges:

- a Deployment with ``replicas > 0`` gets one backend process (:mod:`e2e.sandbox.backend`) for its current pod
  template. The first container's literal ``env`` values become the backend's environment (``ERROR_RATE``,
  ``LATENCY_MS``, …; ``VERSION`` defaults to the image tag), nothing else of this process's environment does;
- a changed pod template is a new revision: the new backend is started and probed (``/readyz``) while the old
  one keeps serving, then published and the old one stopped — a rolling update of one pod;
- scale to 0 or deletion stops the backend and withdraws it from the endpoint registry
  (:mod:`e2e.sandbox.endpoints`), where the router finds backends;
- the Deployment's ``status`` is written the way the deployment controller would
  (:mod:`e2e.sandbox.deployment_status`): ready only once the backend answers, ``ProgressDeadlineExceeded`` when a
  revision has not answered within ``spec.progressDeadlineSeconds``. A crashing backend is restarted with backoff.

All backends are stopped on SIGTERM/SIGINT and at interpreter exit, and die with this process even on ``kill -9``
(``PR_SET_PDEATHSIG``). Run the emulated API with ``deployments_ready=False`` so this process owns the status.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from controller.cli.kubectl.access import connect
from controller.kube.api import DEPLOYMENTS, KubeApi
from e2e.sandbox.deployment_status import Observed, deployment_status, desired_replicas, needs_update, with_times
from e2e.sandbox.endpoints import Endpoint, Registry
from e2e.sandbox.procs import child_env, install_stop_signals, kill_now, module_command, start_async, stop_async

log = logging.getLogger("coalmine.sandbox.workload")
BACKEND_MODULE = "e2e.sandbox.backend"
BEHAVIOUR_VARS = ("ERROR_RATE", "LATENCY_MS", "LATENCY_SIGMA", "LATENCY_MAX_MS", "VERSION", "SEED")
DEFAULT_PROGRESS_DEADLINE_S = 600.0
MAX_BACKOFF_S = 10.0
Object = dict[str, Any]


def revision_of(deployment: Mapping[str, Any]) -> str:
    """A digest of the whole pod template: any change to it is a new revision, as for the deployment controller."""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:12]


def backend_env(deployment: Mapping[str, Any]) -> dict[str, str]:
    """The first container's literal ``env`` (``valueFrom`` is not resolvable here), ``VERSION`` defaulting to
    the image tag so each release is told apart without extra configuration."""
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    first = containers[0] if containers else {}
    env = {str(e["name"]): str(e["value"]) for e in first.get("env") or () if "name" in e and "value" in e}
    image = str(first.get("image") or "")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else (image or "unknown")
    env.setdefault("VERSION", tag)
    return env


def pod_labels(deployment: Mapping[str, Any]) -> dict[str, str]:
    labels = ((((deployment.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels")) or {}
    return {str(k): str(v) for k, v in labels.items()}


@dataclass
class Backend:
    """One running backend process (mutable runtime state, owned by :class:`WorkloadStandIn`)."""

    revision: str
    process: asyncio.subprocess.Process
    endpoint: Endpoint


@dataclass
class Attempts:
    """Start attempts of one revision: since when it has been tried, failures so far, and the next try."""

    revision: str
    since: float
    failures: int = 0
    next_try: float = 0.0


@dataclass
class WorkloadStandIn:
    """Converges backends and Deployment statuses to the Deployments in the API (see the module docstring)."""

    api: KubeApi
    namespace: str
    probe_timeout_s: float = 15.0
    backends: dict[str, Backend] = field(default_factory=dict)
    attempts: dict[str, Attempts] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None

    @property
    def registry(self) -> Registry:
        return Registry(self.api, self.namespace)

    def pids(self) -> list[int]:
        return [b.process.pid for b in self.backends.values() if b.process.returncode is None]

    async def reconcile(self) -> None:
        """One pass over every Deployment of the namespace."""
        deployments = await asyncio.to_thread(self.api.list, DEPLOYMENTS, self.namespace)
        names = set()
        for deployment in deployments:
            names.add(str(deployment["metadata"]["name"]))
            try:
                await self._reconcile_one(deployment)
            except Exception:
                log.exception("reconciling Deployment %s/%s failed", self.namespace, deployment["metadata"]["name"])
        for name in sorted(set(self.backends) - names):
            log.info("Deployment %s/%s is gone: stopping its backend", self.namespace, name)
            await self._retire(name)

    async def _reconcile_one(self, deployment: Object) -> None:
        meta = deployment["metadata"]
        name = str(meta["name"])
        current = self.backends.get(name)
        if current is not None and current.process.returncode is not None:
            log.warning("backend of %s exited with %s: restarting it", name, current.process.returncode)
            await self._retire(name)
            current = None
        if desired_replicas(deployment) <= 0 or meta.get("deletionTimestamp"):
            if current is not None:
                log.info("Deployment %s/%s scaled to zero: stopping its backend", self.namespace, name)
                await self._retire(name)
            self.attempts.pop(name, None)
            await self._write_status(deployment, Observed(ready=True))
            return
        revision = revision_of(deployment)
        if current is None or current.revision != revision:
            current = await self._roll(deployment, name, revision, current)
        ready = current is not None and current.revision == revision
        attempt = self.attempts.get(name)
        stuck = (
            not ready
            and attempt is not None
            and time.monotonic() - attempt.since
            > float(deployment["spec"].get("progressDeadlineSeconds") or DEFAULT_PROGRESS_DEADLINE_S)
        )
        await self._write_status(deployment, Observed(ready=ready, old_serving=current is not None, stuck=stuck))

    async def _roll(self, deployment: Object, name: str, revision: str, old: Backend | None) -> Backend | None:
        """Start the new revision (respecting the backoff); on success publish it and stop ``old``."""
        attempt = self.attempts.get(name)
        if attempt is None or attempt.revision != revision:
            attempt = self.attempts[name] = Attempts(revision, time.monotonic())
            if old is not None:
                await self._write_status(deployment, Observed(ready=False, old_serving=True))
        if time.monotonic() < attempt.next_try:
            return old
        new = await self._start(deployment, name, revision)
        if new is None:
            attempt.failures += 1
            attempt.next_try = time.monotonic() + min(MAX_BACKOFF_S, 0.5 * 2**attempt.failures)
            return old
        await asyncio.to_thread(self.registry.publish, new.endpoint)
        self.backends[name] = new
        self.attempts.pop(name, None)  # a later crash of this revision starts a fresh progress deadline
        if old is not None:
            await stop_async(old.process)
        log.info("Deployment %s/%s revision %s serves on %s", self.namespace, name, revision, new.endpoint.address)
        return new

    async def _start(self, deployment: Object, name: str, revision: str) -> Backend | None:
        env = backend_env(deployment)
        try:
            process, address = await start_async(
                module_command(BACKEND_MODULE), child_env(env, drop=BEHAVIOUR_VARS), timeout_s=self.probe_timeout_s
            )
        except (RuntimeError, TimeoutError, ValueError, OSError) as exc:
            log.warning("backend for %s revision %s did not start: %s", name, revision, exc)
            return None
        if not await self._probe(address):
            log.warning("backend for %s revision %s does not answer /readyz", name, revision)
            await stop_async(process)
            return None
        endpoint = Endpoint(name, address, revision, pod_labels(deployment), env["VERSION"], process.pid)
        return Backend(revision, process, endpoint)

    async def _probe(self, address: str) -> bool:
        """The readiness probe: ``GET /readyz`` answers 200 within the probe timeout."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        deadline = time.monotonic() + self.probe_timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with self._session.get(f"http://{address}/readyz") as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.1)
        return False

    async def _retire(self, name: str) -> None:
        backend = self.backends.pop(name, None)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.registry.withdraw, name)
        if backend is not None:
            await stop_async(backend.process)

    async def _write_status(self, deployment: Object, observed: Observed) -> None:
        desired = deployment_status(deployment, observed)
        current = deployment.get("status")
        if not needs_update(current, desired):
            return
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = with_times(current, desired, now)
        name = str(deployment["metadata"]["name"])
        await asyncio.to_thread(
            self.api.patch, DEPLOYMENTS, self.namespace, name, {"status": status}, subresource="status"
        )
        deployment["status"] = status

    async def shutdown(self) -> None:
        """Stop every backend and withdraw it (best effort: the API may already be gone)."""
        for name in list(self.backends):
            await self._retire(name)
        if self._session is not None:
            await self._session.close()


async def run(stand_in: WorkloadStandIn, poll_interval_s: float) -> None:
    """Reconcile every ``poll_interval_s`` until SIGTERM/SIGINT, then stop every backend."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    atexit.register(kill_now(stand_in.pids))
    try:
        while not stop.is_set():
            try:
                await stand_in.reconcile()
            except Exception as exc:
                log.warning("could not list Deployments (retrying): %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_interval_s)
    finally:
        await stand_in.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--namespace", default=None, help="namespace to run Deployments of (default: context's)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cluster = connect(args.kubeconfig, None, args.namespace)
    try:
        asyncio.run(run(WorkloadStandIn(cluster.api, cluster.namespace), max(0.05, args.poll_interval)))
    finally:
        cluster.api.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
