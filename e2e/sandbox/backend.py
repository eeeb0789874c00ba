"""A real HTTP backend whose health comes from its environment, like a pod's container env would set it.

``python -m e2e.sandbox.backend --port 0`` answers GET/POST (any method) on any path of 127.0.0.1:

- ``ERROR_RATE``: the probability (0..1) that a request is answered ``500`` (default 0);
- ``LATENCY_MS``: the median of a lognormal response delay in milliseconds (default 0: answer at once);
  ``LATENCY_SIGMA`` its log-scale spread (default 0.6) and ``LATENCY_MAX_MS`` a hard cap (default 5000), so a
  demo's "slow" version is slow the way real services are — most requests near the median, a long tail;
- ``VERSION``: echoed in the ``X-Version`` response header and the JSON body, so a client sees which revision
  answered (default ``unknown``); ``SEED`` makes the random draws reproducible.

``/healthz`` and ``/readyz`` always answer 200 at once: they are what the workload stand-in (the "kubelet") probes,
and a faulty version should fail its users, not its readiness probe — which is exactly the case canary analysis
exists for. It prints ``LISTENING 127.0.0.1:<port>`` when ready and exits cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from e2e.sandbox.procs import announce, install_stop_signals

HOST = "127.0.0.1"
VERSION_HEADER = "X-Version"
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
log = logging.getLogger("coalmine.sandbox.backend")


class BehaviourError(ValueError):
    """An environment variable that does not describe a behaviour (the message names it)."""


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float = math.inf) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise BehaviourError(f"{name}={raw!r} is not a number") from exc
    if not (low <= value <= high):
        raise BehaviourError(f"{name}={raw!r} must be between {low:g} and {high:g}")
    return value


@dataclass(frozen=True)
class Behaviour:
    """How this backend answers: error probability, lognormal latency (median, sigma, cap) and its version."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_sigma: float = 0.6
    latency_max_ms: float = 5000.0
    version: str = "unknown"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Behaviour:
        """Read ``ERROR_RATE``, ``LATENCY_MS``, ``LATENCY_SIGMA``, ``LATENCY_MAX_MS`` and ``VERSION``."""
        return cls(
            error_rate=_number(env, "ERROR_RATE", 0.0, 0.0, 1.0),
            latency_ms=_number(env, "LATENCY_MS", 0.0, 0.0),
            latency_sigma=_number(env, "LATENCY_SIGMA", 0.6, 0.0),
            latency_max_ms=_number(env, "LATENCY_MAX_MS", 5000.0, 0.0),
            version=env.get("VERSION", "").strip() or "unknown",
        )

    def draw_latency_ms(self, rng: random.Random) -> float:
        """One delay: lognormal with median ``latency_ms`` (so half the requests are faster), capped."""
        if self.latency_ms <= 0:
            return 0.0
        return min(self.latency_max_ms, self.latency_ms * math.exp(rng.gauss(0.0, self.latency_sigma)))

    def draw_error(self, rng: random.Random) -> bool:
        """Whether this request fails with a 500."""
        return rng.random() < self.error_rate


def make_app(behaviour: Behaviour, rng: random.Random) -> web.Application:
    """The aiohttp application: probes answer at once; every other request gets a delay and maybe a 500."""

    async def handle(request: web.Request) -> web.Response:
        headers = {VERSION_HEADER: behaviour.version}
        if request.path in PROBE_PATHS:
            return web.json_response({"status": "ok", "version": behaviour.version}, headers=headers)
        await request.read()  # drain a POST body like a real service would
        delay_ms = behaviour.draw_latency_ms(rng)
        failed = behaviour.draw_error(rng)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000.0)
        body = {
            "version": behaviour.version,
            "path": request.path,
            "method": request.method,
            "delay_ms": round(delay_ms, 3),
            "error": failed,
        }
        return web.json_response(body, status=500 if failed else 200, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(behaviour: Behaviour, port: int, seed: int | None = None) -> None:
    """Serve on 127.0.0.1:``port`` (0: any free port) until SIGTERM/SIGINT; announce the address when ready."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    runner = web.AppRunner(make_app(behaviour, random.Random(seed)), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port, backlog=512)
        await site.start()
        bound = runner.addresses[0][1]
        log.info("backend %s listening on %s:%d (%s)", behaviour.version, HOST, bound, behaviour)
        announce(HOST, bound)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        behaviour = Behaviour.from_env(os.environ)
    except BehaviourError as exc:
        parser.error(str(exc))
    seed = os.environ.get("SEED")
    asyncio.run(serve(behaviour, args.port, int(seed) if seed and seed.lstrip("-").isdigit() else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
