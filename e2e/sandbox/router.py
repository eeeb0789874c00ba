"""A local stand-in for the Istio data plane: splits requests by the VirtualService (or HTTPRoute) weights it reads.

``python -m e2e.sandbox.router --listen 127.0.0.1:P --namespace NS --service SVC --kubeconfig F
[--provider istio|gatewayapi]``

Every ``--poll-interval`` (1 s) it reads, over the Kubernetes API, the routing object ``SVC`` — Istio's
VirtualService (``networking.istio.io/v1beta1``), or with ``--provider gatewayapi`` the Gateway API HTTPRoute
(``gateway.networking.k8s.io/v1``) — the Services of the namespace (their selectors) and the endpoint registry the
workload stand-in keeps (:mod:`e2e.sandbox.endpoints`). Each request is then routed like Envoy would route it
(:mod:`e2e.sandbox.routing`, :mod:`e2e.sandbox.routing_gateway`: matches, weights, mirror, response headers) to the
backend of the chosen host. Until the routing object exists, requests go straight to the Service ``SVC``, as they
would through kube-proxy. Whichever object it routes by, it reports Istio's series (Istio implements both).

It reports what Istio's sidecar at the destination reports, in Prometheus format on ``/metrics``:
``istio_requests_total`` and ``istio_request_duration_milliseconds`` (Istio's default buckets) with
``reporter="destination"``, ``destination_workload`` (the Deployment: ``podinfo`` for the canary,
``podinfo-primary`` for the primary), ``destination_workload_namespace`` and ``response_code``. A backend that is
registered but refuses the connection counts as a 503 of that workload (Envoy's "upstream connect error");
a host with no backend at all is answered 503 "no healthy upstream" and not counted, as no destination saw it.

``/metrics`` and ``/sandbox/routes`` (the routes and endpoints in use, as JSON) belong to the router itself; every
other path is forwarded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controller.cli.kubectl.access import connect
from controller.kube.api import SERVICES, VIRTUAL_SERVICES, KubeApi
from controller.providers.queries import ISTIO_DURATION_BUCKETS_MS
from controller.routers.gatewayapi_build import HTTPROUTES
from e2e.sandbox.endpoints import Endpoint, Registry, resolve
from e2e.sandbox.procs import announce, install_stop_signals
from e2e.sandbox.routing import Decision, HeaderOps, RequestInfo, RouteTable
from e2e.sandbox.routing_gateway import table_from_http_route

log = logging.getLogger("coalmine.sandbox.router")
METRIC_LABELS = (
    "reporter",
    "source_workload",
    "destination_workload",
    "destination_workload_namespace",
    "destination_service_name",
    "destination_version",
    "request_protocol",
    "response_code",
)
ROUTES_PATH = "/sandbox/routes"
WORKLOAD_HEADER = "X-Sandbox-Workload"
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
        "Content-Encoding",
    )
)
MAX_MIRRORS_IN_FLIGHT = 256
PROVIDERS = ("istio", "gatewayapi")


class IstioMetrics:
    """Istio's two standard series, on a private registry (nothing else of this process is exported)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "istio_requests", "Requests seen by the destination.", METRIC_LABELS, registry=self.registry
        )
        self.duration = Histogram(
            "istio_request_duration_milliseconds",
            "Request duration seen by the destination, in milliseconds.",
            METRIC_LABELS,
            buckets=ISTIO_DURATION_BUCKETS_MS,
            registry=self.registry,
        )

    def observe(self, endpoint: Endpoint, host: str, status: int, duration_ms: float) -> None:
        labels = {
            "reporter": "destination",
            "source_workload": "unknown",
            "destination_workload": endpoint.deployment,
            "destination_workload_namespace": self.namespace,
            "destination_service_name": host,
            "destination_version": endpoint.labels.get("version", "unknown"),
            "request_protocol": "http",
            "response_code": str(status),
        }
        self.requests.labels(**labels).inc()
        self.duration.labels(**labels).observe(duration_ms)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


@dataclass(frozen=True)
class World:
    """What the router last read from the API: routes, Service selectors and registered backends."""

    table: RouteTable
    selectors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    read_at: float = 0.0

    def backends(self, host: str) -> list[Endpoint]:
        return resolve(host, self.selectors, self.endpoints)


def read_table(api: KubeApi, namespace: str, service: str, provider: str = "istio") -> RouteTable:
    """The routes of the VirtualService (``istio``) or the HTTPRoute (``gatewayapi``) ``service``; direct without."""
    if provider == "gatewayapi":
        route = api.get(HTTPROUTES, namespace, service)
        return table_from_http_route(route) if route is not None else RouteTable.direct(service, "HTTPRoute")
    vs = api.get(VIRTUAL_SERVICES, namespace, service)
    return RouteTable.from_virtual_service(vs) if vs is not None else RouteTable.direct(service)


def read_world(api: KubeApi, namespace: str, service: str, provider: str = "istio") -> World:
    """Read the routing object, the Services and the registry (blocking; called from a thread)."""
    table = read_table(api, namespace, service, provider)
    selectors = {
        str(s["metadata"]["name"]): {str(k): str(v) for k, v in ((s.get("spec") or {}).get("selector") or {}).items()}
        for s in api.list(SERVICES, namespace)
    }
    return World(table, selectors, Registry(api, namespace).read(), time.time())


def _request_info(request: web.Request) -> RequestInfo:
    return RequestInfo(
        method=request.method,
        path=request.path,
        headers={k.lower(): v for k, v in request.headers.items()},
        query={k: v for k, v in request.query.items()},
        authority=request.host,
        scheme=request.scheme,
    )


def _apply_headers(headers: CIMultiDict[str], ops: HeaderOps) -> None:
    """Istio's ``headers.response`` (Gateway API's ``ResponseHeaderModifier``): remove, then set, then add (``add``
    appends, e.g. a second Set-Cookie)."""
    for name in ops.remove:
        headers.popall(name, None)
    for name, value in ops.set:
        headers[name] = value
    for name, value in ops.add:
        headers.add(name, value)


class Router:
    """Forwards requests by the current :class:`World` and records Istio metrics for every forwarded request."""

    def __init__(
        self, api: KubeApi, namespace: str, service: str, *, seed: int | None = None, provider: str = "istio"
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.service = service
        self.provider = provider
        self.metrics = IstioMetrics(namespace)
        self.world = World(RouteTable.direct(service, "HTTPRoute" if provider == "gatewayapi" else "VirtualService"))
        self._rng = random.Random(seed)
        self._mirrors: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    async def refresh(self) -> None:
        """Re-read the API; on failure keep routing by what was read last (and say so)."""
        try:
            self.world = await asyncio.to_thread(read_world, self.api, self.namespace, self.service, self.provider)
        except Exception as exc:
            log.warning("could not read routes from the API (keeping the last ones): %s", exc)

    async def poll(self, stop: asyncio.Event, interval_s: float) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get(ROUTES_PATH, self._routes)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        app.on_startup.append(self._open)
        app.on_cleanup.append(self._close)
        return app

    async def _open(self, _: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(total=30, connect=2)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=256))

    async def _close(self, _: web.Application) -> None:
        for task in list(self._mirrors):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _metrics(self, _: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _routes(self, _: web.Request) -> web.Response:
        world = self.world
        hosts = {d.host for route in world.table.routes for d in route.destinations}
        hosts |= {route.mirror for route in world.table.routes if route.mirror}
        body = {
            "source": world.table.source,
            "weights": world.table.weights(),
            "mirrors": {
                route.name: {"host": route.mirror, "percent": route.mirror_percent}
                for route in world.table.routes
                if route.mirror
            },
            "backends": {host: [e.address for e in world.backends(host)] for host in sorted(hosts)},
            "read_at": world.read_at,
        }
        return web.json_response(body)

    async def _send(
        self, endpoint: Endpoint, host: str, request: web.Request, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One upstream call; records the metrics; connection failures become 503 like Envoy's."""
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        started = time.monotonic()
        try:
            async with self._session.request(
                request.method, f"http://{endpoint.address}{request.path_qs}", headers=headers, data=body or None
            ) as upstream:
                content = await upstream.read()
                status = upstream.status
                answer = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, answer = 503, {"Content-Type": "text/plain"}
            content = f"upstream connect error or disconnect/reset before headers: {type(exc).__name__}".encode()
        self.metrics.observe(endpoint, host, status, (time.monotonic() - started) * 1000.0)
        return status, answer, content

    def _pick(self, host: str) -> Endpoint | None:
        backends = self.world.backends(host)
        return self._rng.choice(backends) if backends else None

    def _mirror(self, decision: Decision, request: web.Request, body: bytes) -> None:
        endpoint = self._pick(decision.mirror or "")
        if endpoint is None or len(self._mirrors) >= MAX_MIRRORS_IN_FLIGHT:
            return
        task = asyncio.create_task(self._shadow(endpoint, decision.mirror or "", request, body))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _shadow(self, endpoint: Endpoint, host: str, request: web.Request, body: bytes) -> None:
        """A mirrored copy: counted at its destination like any request, its answer thrown away."""
        await self._send(endpoint, host, request, body)

    async def _forward(self, request: web.Request) -> web.Response:
        decision = self.world.table.decide(_request_info(request), self._rng)
        if decision is None:
            return web.Response(status=404, text="no route matched (Envoy: NR)\n")
        endpoint = self._pick(decision.host)
        if endpoint is None:
            return web.Response(status=503, text=f"no healthy upstream for {decision.host}\n")
        body = await request.read()
        if decision.mirror:
            self._mirror(decision, request, body)
        status, headers, content = await self._send(endpoint, decision.host, request, body)
        response = web.Response(status=status, body=content)
        response.headers.update(headers)
        response.headers[WORKLOAD_HEADER] = endpoint.deployment
        _apply_headers(response.headers, decision.response_headers)
        return response


def parse_listen(value: str) -> tuple[str, int]:
    """``127.0.0.1:8080`` → (host, port); only loopback addresses: the sandbox never listens beyond this machine."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    loopback = host == "localhost" or _is_loopback(host)
    if not loopback or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen wants a loopback HOST:PORT such as 127.0.0.1:8080, got {value!r}")
    return host, int(port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def serve(router: Router, host: str, port: int, poll_interval_s: float) -> None:
    """Read the routes once, listen, announce, then poll the API until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    install_stop_signals(stop)
    await router.refresh()
    runner = web.AppRunner(router.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, backlog=1024).start()
        bound = runner.addresses[0][1]
        log.info("router for %s/%s listening on %s:%d", router.namespace, router.service, host, bound)
        announce(host, bound)
        await router.poll(stop, poll_interval_s)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--listen", type=parse_listen, default=("127.0.0.1", 0), help="HOST:PORT (loopback only)")
    parser.add_argument("--namespace", default=None, help="namespace of the routing object (default: context's)")
    parser.add_argument("--service", required=True, help="the VirtualService / HTTPRoute / apex Service name")
    parser.add_argument(
        "--provider", choices=PROVIDERS, default="istio", help="route by the VirtualService (istio) or the HTTPRoute"
    )
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG)")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between reads of the API")
    parser.add_argument("--seed", type=int, default=None, help="seed for the weighted draws (reproducible runs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    disable_created_metrics()  # type: ignore[no-untyped-call]  # Istio exports no *_created series; neither do we
    cluster = connect(args.kubeconfig, None, args.namespace)
    host, port = args.listen
    router = Router(cluster.api, cluster.namespace, args.service, seed=args.seed, provider=args.provider)
    try:
        asyncio.run(serve(router, host, port, max(0.1, args.poll_interval)))
    finally:
        cluster.api.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
