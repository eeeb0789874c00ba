"""The sandbox's stand-in data plane, as real processes over real HTTP against the emulated API.

Backends honour their env; the router splits by the VirtualService — or the HTTPRoute — the operator's own
builders write and reports Istio's series; the workload stand-in runs one backend per revision and writes Deployment
status; Debian's Prometheus scrapes the router and answers the judge's own queries. Every process is stopped even
when a test fails.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import random
import signal
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from emulator import CoalmineEmulator, ThreadedEmulator, api_client_for, write_kubeconfig
from prometheus_client.parser import text_string_to_metric_families

from controller.kube.api import CONFIGMAPS, DEPLOYMENTS, SERVICES, VIRTUAL_SERVICES
from controller.kube.client import KubeClient
from controller.kube.health import readiness
from controller.kube.objects import build_primary_deployment, build_services
from controller.providers.queries import ISTIO_DURATION_BUCKETS_MS, errors_query, requests_query, slow_query
from controller.rollout.spec import CanarySpec, parse_canary_spec
from controller.rollout.validation import validate_document
from controller.routers import Routes
from controller.routers.gatewayapi_build import HTTPROUTES, build_http_route
from controller.routers.istio import build_virtual_service
from controller.routers.takeover import SessionCookies
from e2e.sandbox import manifests, procs
from e2e.sandbox.backend import Behaviour, BehaviourError
from e2e.sandbox.deployment_status import Observed, deployment_status, needs_update, with_times
from e2e.sandbox.endpoints import REGISTRY_CONFIGMAP, Endpoint, Registry, resolve
from e2e.sandbox.loadgen import run_load
from e2e.sandbox.observe import http_route_weight, mesh_weight
from e2e.sandbox.prometheus import PrometheusUnavailable, RunningPrometheus, scrape_config
from e2e.sandbox.routing import HeaderOps, RequestInfo, RouteTable
from e2e.sandbox.routing_gateway import table_from_http_route

NS = "test"
CANARY_OWNER = {"apiVersion": "coalmine.dev/v1alpha1", "kind": "Canary", "metadata": {"name": "podinfo", "uid": "u-1"}}
Start = Callable[..., tuple[subprocess.Popen[str], str]]


def canary_spec(analysis: dict[str, Any] | None = None) -> CanarySpec:
    return parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898},
            "analysis": {"interval": "10s", "stepWeight": 10, "maxWeight": 50, **(analysis or {})},
        }
    )


def deployment(name: str = "podinfo", *, replicas: int = 1, image: str = "podinfo:1.0", **env: str) -> dict[str, Any]:
    labels = {"app": name}
    container = {"name": "app", "image": image, "env": [{"name": k, "value": v} for k, v in env.items()]}
    return {
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


def binomial_bounds(n: int, p: float, z: float = 4.5) -> tuple[float, float]:
    """Where a fraction of ``n`` draws with probability ``p`` falls except with probability ~1e-5."""
    half = z * math.sqrt(p * (1 - p) / n)
    return p - half, p + half


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def refuses(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return False
    except OSError:
        return True


def send_many(url: str, count: int, concurrency: int = 20, headers: dict[str, str] | None = None) -> list[Any]:
    """``count`` GETs, ``concurrency`` at a time: (status, headers, seconds) each."""

    async def main() -> list[Any]:
        gate = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def one() -> Any:
                async with gate:
                    started = loop.time()
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                        return response.status, dict(response.headers), loop.time() - started

            return list(await asyncio.gather(*(one() for _ in range(count))))

    return asyncio.run(main())


# -- fixtures: the emulated API (this process owns Deployment status), processes that are always stopped -------


@pytest.fixture
def api_server(tmp_path: Path) -> Iterator[tuple[ThreadedEmulator, Path, KubeClient]]:
    """The emulated API with ``deployments_ready=False`` (as the sandbox runs it), a kubeconfig and a client."""
    with ThreadedEmulator(CoalmineEmulator(deployments_ready=False)) as running:
        kubeconfig = write_kubeconfig(running.url, tmp_path / "kubeconfig", namespace=NS)
        client = KubeClient(api_client_for(running.url), timeout_s=10)
        try:
            yield running, kubeconfig, client
        finally:
            client.close()


@pytest.fixture
def start() -> Iterator[Start]:
    """Start an announcing sandbox server (``python -m module args``, env additions); stopped at teardown."""
    started: list[subprocess.Popen[str]] = []

    def run(module: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
        process, address = procs.start(procs.module_command(module, *args), procs.child_env(env))
        started.append(process)
        return process, address

    try:
        yield run
    finally:
        for process in reversed(started):
            procs.stop(process)


@pytest.fixture
def workload(api_server: tuple[ThreadedEmulator, Path, KubeClient]) -> Iterator[subprocess.Popen[str]]:
    """The workload stand-in process for namespace ``test``."""
    _, kubeconfig, _ = api_server
    command = procs.module_command(
        "e2e.sandbox.workload", "--kubeconfig", str(kubeconfig), "--namespace", NS, "--poll-interval", "0.2"
    )
    process = subprocess.Popen(command, env=procs.child_env(), stdin=subprocess.DEVNULL, text=True)
    try:
        yield process
    finally:
        procs.stop(process)


# -- the backend ------------------------------------------------------------------------------------------------


def test_behaviour_draws_follow_the_env() -> None:
    behaviour = Behaviour.from_env({"ERROR_RATE": "0.2", "LATENCY_MS": "50", "VERSION": "v7"})
    rng = random.Random(1)
    draws = sorted(behaviour.draw_latency_ms(rng) for _ in range(20_000))
    errors = sum(behaviour.draw_error(rng) for _ in range(20_000)) / 20_000
    assert behaviour.version == "v7"
    assert 47.5 < draws[len(draws) // 2] < 52.5  # the median is LATENCY_MS
    assert 1.6 < draws[int(len(draws) * 0.8413)] / draws[len(draws) // 2] < 2.0  # one sigma up: e^0.6 ≈ 1.82
    assert binomial_bounds(20_000, 0.2)[0] < errors < binomial_bounds(20_000, 0.2)[1]
    capped = Behaviour.from_env({"LATENCY_MS": "50", "LATENCY_MAX_MS": "60"})
    assert max(capped.draw_latency_ms(rng) for _ in range(2000)) == 60.0
    assert Behaviour.from_env({}).draw_latency_ms(rng) == 0.0


@pytest.mark.parametrize(
    ("env", "named"), [({"ERROR_RATE": "1.5"}, "ERROR_RATE"), ({"LATENCY_MS": "fast"}, "LATENCY_MS")]
)
def test_behaviour_rejects_values_that_are_no_behaviour(env: dict[str, str], named: str) -> None:
    with pytest.raises(BehaviourError, match=named):
        Behaviour.from_env(env)


def test_backend_process_answers_with_its_error_rate_latency_and_version(start: Start) -> None:
    process, address = start("e2e.sandbox.backend", env={"ERROR_RATE": "0.25", "LATENCY_MS": "60", "VERSION": "v9"})
    answers = send_many(f"http://{address}/api/anything?x=1", 200)
    failed = sum(status == 500 for status, _, _ in answers) / len(answers)
    low, high = binomial_bounds(200, 0.25)
    assert low < failed < high
    assert {headers["X-Version"] for _, headers, _ in answers} == {"v9"}
    median_ms = sorted(seconds for _, _, seconds in answers)[100] * 1000
    assert 40 < median_ms < 300, median_ms  # 60 ms median delay, plus loopback overhead on a busy machine

    _, broken = start("e2e.sandbox.backend", env={"ERROR_RATE": "1", "VERSION": "bad"})
    assert {http_get(f"http://{broken}/x")[0] for _ in range(10)} == {500}
    assert http_get(f"http://{broken}/readyz")[0] == 200  # probes pass: users see the fault, the kubelet doesn't

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0
    assert refuses(address)


def test_loadgen_keeps_its_rate_and_never_exceeds_its_caps(start: Start) -> None:
    _, address = start("e2e.sandbox.backend", env={"VERSION": "v3", "ERROR_RATE": "0.5", "SEED": "4"})
    capped = asyncio.run(run_load(f"http://{address}/", rps=200, duration_s=10, max_requests=25))
    assert capped.sent == 25
    assert capped.elapsed_s < 3.0  # stopped by the cap (25 requests at 200/s), long before the 10 s duration
    steady = asyncio.run(run_load(f"http://{address}/", rps=50, duration_s=1))
    assert steady.sent == 50
    assert 0.9 < steady.elapsed_s < 2.5
    assert set(steady.by_status) == {"200", "500"}
    assert sum(steady.by_status.values()) == steady.answered == 50
    assert dict(steady.by_version) == {"v3": 50}
    dead = asyncio.run(run_load("http://127.0.0.1:1/", rps=20, duration_s=0.25, timeout_s=1))
    assert dict(dead.by_status) == {"error": dead.sent}


# -- routing (pure): what the router makes of the operator's VirtualServices ------------------------------------


def host_of(table: RouteTable, request: RequestInfo, rng: random.Random) -> str:
    decision = table.decide(request, rng)
    assert decision is not None, f"no route for {request}"
    return decision.host


def test_routes_follow_weights_ab_match_and_mirror_of_the_operators_virtual_service() -> None:
    rng = random.Random(3)
    weighted = RouteTable.from_virtual_service(build_virtual_service(canary_spec(), "podinfo", NS, Routes(70, 30)))
    hosts = collections.Counter(host_of(weighted, RequestInfo(), rng) for _ in range(4000))
    low, high = binomial_bounds(4000, 0.3)
    assert set(hosts) == {"podinfo-primary", "podinfo-canary"}
    assert low < hosts["podinfo-canary"] / 4000 < high

    ab_spec = canary_spec({"match": [{"headers": {"x-canary": {"exact": "insider"}}}], "iterations": 5})
    ab = RouteTable.from_virtual_service(
        build_virtual_service(ab_spec, "podinfo", NS, Routes(100, 0, match_active=True))
    )
    insider = RequestInfo(headers={"x-canary": "insider"})
    assert {host_of(ab, insider, rng) for _ in range(200)} == {"podinfo-canary"}
    assert {host_of(ab, RequestInfo(), rng) for _ in range(200)} == {"podinfo-primary"}

    mirrored = RouteTable.from_virtual_service(
        build_virtual_service(canary_spec({"mirror": True}), "podinfo", NS, Routes(100, 0, mirror=100))
    )
    decision = mirrored.decide(RequestInfo(), rng)
    assert decision is not None
    assert (decision.host, decision.mirror) == ("podinfo-primary", "podinfo-canary")


def test_session_affinity_cookie_routes_returning_users_to_the_canary() -> None:
    rng = random.Random(9)
    spec = canary_spec({"sessionAffinity": {"cookieName": "coalmine-cookie", "maxAge": 60}})
    cookies = SessionCookies(current="coalmine-cookie=abc123")
    table = RouteTable.from_virtual_service(build_virtual_service(spec, "podinfo", NS, Routes(90, 10), cookies=cookies))
    returning = RequestInfo(headers={"cookie": "theme=dark; coalmine-cookie=abc123"})
    assert {host_of(table, returning, rng) for _ in range(100)} == {"podinfo-canary"}
    decisions = [table.decide(RequestInfo(), rng) for _ in range(400)]
    sent_to_canary = [d for d in decisions if d is not None and d.host == "podinfo-canary"]
    assert sent_to_canary
    assert all(("Set-Cookie", "coalmine-cookie=abc123; Max-Age=60") in d.response_headers.add for d in sent_to_canary)
    assert not any(d.response_headers.add for d in decisions if d is not None and d.host == "podinfo-primary")


def test_backends_are_found_through_the_operators_services() -> None:
    target = {"metadata": {"name": "podinfo", "namespace": NS}, **deployment()}
    services = build_services(canary_spec(), target, CANARY_OWNER)
    selectors = {s["metadata"]["name"]: s["spec"]["selector"] for s in services.all()}
    primary = build_primary_deployment(target, canary_spec(), CANARY_OWNER)
    endpoints = {
        "podinfo": Endpoint("podinfo", "127.0.0.1:1", "r1", {"app": "podinfo"}),
        "podinfo-primary": Endpoint(
            "podinfo-primary", "127.0.0.1:2", "r2", primary["spec"]["template"]["metadata"]["labels"]
        ),
    }
    assert [e.deployment for e in resolve("podinfo-canary", selectors, endpoints)] == ["podinfo"]
    assert [e.deployment for e in resolve("podinfo-primary", selectors, endpoints)] == ["podinfo-primary"]
    assert [e.deployment for e in resolve("podinfo", selectors, endpoints)] == ["podinfo-primary"]  # the apex
    assert [e.deployment for e in resolve("podinfo-canary", {}, endpoints)] == ["podinfo"]  # no Services yet
    assert resolve("elsewhere", selectors, endpoints) == []


# -- routing (pure): what the router makes of the operator's HTTPRoutes -----------------------------------------

AB_HEADER = {"match": [{"headers": {"x-canary": {"exact": "insider"}}}], "iterations": 5}
AFFINITY = {"sessionAffinity": {"cookieName": "coalmine-cookie", "maxAge": 60}}
PINNED = {"sessionAffinity": {"cookieName": "coalmine-cookie", "primaryCookieName": "coalmine-primary", "maxAge": 60}}
CURRENT = SessionCookies(current="coalmine-cookie=abc123")
BOTH = SessionCookies(current="coalmine-cookie=abc123", primary="coalmine-primary=xyz789")
AFTER = SessionCookies(previous="coalmine-cookie=abc123")
RETURNING = {"cookie": "theme=dark; coalmine-cookie=abc123"}


def http_route_of(
    analysis: dict[str, Any] | None = None,
    service: dict[str, Any] | None = None,
    routes: Routes = Routes(100, 0),
    cookies: SessionCookies = SessionCookies(),
) -> dict[str, Any]:
    """The HTTPRoute the operator's Gateway API builder writes for this Canary and split."""
    spec = parse_canary_spec(
        {
            "provider": "gatewayapi:v1",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
            "service": {"port": 9898, **(service or {})},
            "analysis": {"interval": "10s", "stepWeight": 10, "maxWeight": 50, **(analysis or {})},
        }
    )
    return build_http_route(spec, "podinfo", NS, routes, cookies=cookies)


def canary_share(table: RouteTable, request: RequestInfo, rng: random.Random, draws: int) -> tuple[float, set[str]]:
    """The share of ``draws`` decisions sent to the canary, and the rules that decided."""
    decisions = [table.decide(request, rng) for _ in range(draws)]
    assert all(d is not None for d in decisions), f"no route for {request}"
    hosts = collections.Counter(d.host for d in decisions if d is not None)
    assert set(hosts) <= {"podinfo-primary", "podinfo-canary"}
    return hosts["podinfo-canary"] / draws, {d.route for d in decisions if d is not None}


GATEWAY_ROUTING = [
    # (case, analysis, service, split, cookies, request, canary share, rule that decides)
    ("weighted", None, None, Routes(70, 30), SessionCookies(), RequestInfo(), 0.3, "weighted"),
    ("promoted", None, None, Routes(100, 0), SessionCookies(), RequestInfo(), 0.0, "weighted"),
    ("all-in", None, None, Routes(0, 100), SessionCookies(), RequestInfo(method="POST"), 1.0, "weighted"),
    ("ab-insider", AB_HEADER, None, Routes(100, 0, match_active=True), SessionCookies(),
     RequestInfo(headers={"x-canary": "insider"}), 1.0, "canary-match"),
    ("ab-outsider", AB_HEADER, None, Routes(100, 0, match_active=True), SessionCookies(),
     RequestInfo(headers={"x-canary": "outsider"}), 0.0, "weighted"),
    ("ab-over", AB_HEADER, None, Routes(100, 0), SessionCookies(),
     RequestInfo(headers={"x-canary": "insider"}), 0.0, "canary-match"),
    ("ab-regex-header", {"match": [{"headers": {"user-agent": {"regex": ".*Firefox.*"}}}], "iterations": 5}, None,
     Routes(100, 0, match_active=True), SessionCookies(),
     RequestInfo(headers={"user-agent": "Mozilla/5.0 Firefox/120"}), 1.0, "canary-match"),
    ("ab-prefix-header", {"match": [{"headers": {"x-team": {"prefix": "web"}}}], "iterations": 5}, None,
     Routes(100, 0, match_active=True), SessionCookies(), RequestInfo(headers={"x-team": "webapp"}), 1.0,
     "canary-match"),
    ("ab-query", {"match": [{"queryParams": {"canary": {"exact": "yes"}}}], "iterations": 5}, None,
     Routes(100, 0, match_active=True), SessionCookies(), RequestInfo(query={"canary": "yes"}), 1.0,
     "canary-match"),
    ("ab-query-name-case", {"match": [{"queryParams": {"canary": {"exact": "yes"}}}], "iterations": 5}, None,
     Routes(100, 0, match_active=True), SessionCookies(), RequestInfo(query={"Canary": "yes"}), 0.0, "weighted"),
    ("ab-method", {"match": [{"method": {"exact": "POST"}}], "iterations": 5}, None,
     Routes(100, 0, match_active=True), SessionCookies(), RequestInfo(method="POST"), 1.0, "canary-match"),
    ("ab-other-method", {"match": [{"method": {"exact": "POST"}}], "iterations": 5}, None,
     Routes(100, 0, match_active=True), SessionCookies(), RequestInfo(method="GET"), 0.0, "weighted"),
    ("sticky-returning", AFFINITY, None, Routes(90, 10), CURRENT, RequestInfo(headers=RETURNING), 1.0,
     "sticky-route"),
    ("sticky-new", AFFINITY, None, Routes(90, 10), CURRENT, RequestInfo(), 0.1, "weighted"),
    ("sticky-primary-pinned", PINNED, None, Routes(50, 50), BOTH,
     RequestInfo(headers={"cookie": "coalmine-primary=xyz789"}), 0.0, "sticky-route-primary"),
    ("sticky-after-the-run", AFFINITY, None, Routes(100, 0), AFTER, RequestInfo(headers=RETURNING), 0.0,
     "sticky-route"),
    ("service-prefix", None, {"match": [{"uri": {"prefix": "/api"}}]}, Routes(60, 40), SessionCookies(),
     RequestInfo(path="/api/users"), 0.4, "weighted"),
    ("service-prefix-itself", None, {"match": [{"uri": {"prefix": "/api/"}}]}, Routes(0, 100), SessionCookies(),
     RequestInfo(path="/api"), 1.0, "weighted"),
    ("service-exact", None, {"match": [{"uri": {"exact": "/login"}}]}, Routes(0, 100), SessionCookies(),
     RequestInfo(path="/login"), 1.0, "weighted"),
    ("service-regex", None, {"match": [{"uri": {"regex": "/v[0-9]+/.*"}}]}, Routes(0, 100), SessionCookies(),
     RequestInfo(path="/v2/items"), 1.0, "weighted"),
    ("ab-within-service-prefix", AB_HEADER, {"match": [{"uri": {"prefix": "/api"}}]},
     Routes(100, 0, match_active=True), SessionCookies(), RequestInfo(path="/api/x", headers={"x-canary": "insider"}),
     1.0, "canary-match"),
    ("hostnames", None, {"hosts": ["www.example.com"]}, Routes(0, 100), SessionCookies(),
     RequestInfo(authority="www.example.com:8080"), 1.0, "weighted"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("analysis", "service", "routes", "cookies", "request_info", "share", "rule"),
    [pytest.param(*case[1:], id=case[0]) for case in GATEWAY_ROUTING],
)
def test_requests_follow_the_operators_http_route(
    analysis: dict[str, Any] | None,
    service: dict[str, Any] | None,
    routes: Routes,
    cookies: SessionCookies,
    request_info: RequestInfo,
    share: float,
    rule: str,
) -> None:
    route = http_route_of(analysis, service, routes, cookies)
    route["metadata"]["resourceVersion"] = "7"
    table = table_from_http_route(route)
    seen, rules = canary_share(table, request_info, random.Random(11), 2000)
    low, high = binomial_bounds(2000, share)
    assert low <= seen <= high, (seen, share)
    assert rules == {rule}
    assert table.source == f"HTTPRoute {NS}/podinfo rv 7"


@pytest.mark.parametrize(
    ("service", "request_info"),
    [
        ({"match": [{"uri": {"prefix": "/api"}}]}, RequestInfo(path="/apix")),  # PathPrefix is by whole segments
        ({"match": [{"uri": {"prefix": "/api"}}]}, RequestInfo(path="/")),
        ({"match": [{"uri": {"exact": "/login"}}]}, RequestInfo(path="/login/again")),
        ({"match": [{"uri": {"regex": "/v[0-9]+/.*"}}]}, RequestInfo(path="/x/v2/items")),  # a full match
        ({"match": [{"headers": {"x-env": {"exact": "prod"}}}]}, RequestInfo(headers={"x-env": "Prod"})),
        ({"hosts": ["www.example.com"]}, RequestInfo(authority="api.example.com")),
        ({"hosts": ["*.example.com"]}, RequestInfo(authority="example.com")),
    ],
)
def test_requests_no_rule_of_the_http_route_matches_get_no_route(
    service: dict[str, Any], request_info: RequestInfo
) -> None:
    table = table_from_http_route(http_route_of(service=service, routes=Routes(50, 50)))
    assert table.decide(request_info, random.Random(1)) is None


def test_http_route_precedence_is_by_match_specificity_not_rule_order() -> None:
    rng = random.Random(5)
    route = http_route_of(AB_HEADER, routes=Routes(100, 0, match_active=True))
    route["spec"]["rules"].reverse()  # the weighted rule first: Gateway API still prefers the A/B rule's match
    assert [rule["name"] for rule in route["spec"]["rules"]] == ["weighted", "canary-match"]
    table = table_from_http_route(route)
    insider = RequestInfo(headers={"x-canary": "insider"})
    assert {host_of(table, insider, rng) for _ in range(50)} == {"podinfo-canary"}
    assert {host_of(table, RequestInfo(), rng) for _ in range(50)} == {"podinfo-primary"}

    def backend(name: str) -> dict[str, Any]:
        return {"name": name, "port": 9898, "weight": 1}

    ranked = {
        "spec": {
            "rules": [
                {"name": "short-prefix", "matches": [{"path": {"type": "PathPrefix", "value": "/a"}}],
                 "backendRefs": [backend("short")]},
                {"name": "headers-2", "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [
                    {"name": "x-a", "value": "1"}, {"name": "x-b", "value": "1"}]}], "backendRefs": [backend("h2")]},
                {"name": "regex", "matches": [{"path": {"type": "RegularExpression", "value": "/a/b/c.*"}}],
                 "backendRefs": [backend("regex")]},
                {"name": "method", "matches": [{"path": {"type": "PathPrefix", "value": "/"}, "method": "PUT"}],
                 "backendRefs": [backend("method")]},
                {"name": "long-prefix", "matches": [{"path": {"type": "PathPrefix", "value": "/a/b"}}],
                 "backendRefs": [backend("long")]},
                {"name": "query", "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                               "queryParams": [{"name": "q", "value": "1"}]}],
                 "backendRefs": [backend("query")]},
                {"name": "exact", "matches": [{"path": {"type": "Exact", "value": "/a/b/c"}}],
                 "backendRefs": [backend("exact")]},
            ]
        }
    }  # fmt: skip
    table = table_from_http_route(ranked)
    everything = {"x-a": "1", "x-b": "1"}
    cases = [
        (RequestInfo(path="/a/b/c", method="PUT", headers=everything, query={"q": "1"}), "exact"),
        (RequestInfo(path="/a/b/cd", method="PUT", headers=everything, query={"q": "1"}), "long"),
        (RequestInfo(path="/a/x", method="PUT", headers=everything), "short"),
        (RequestInfo(path="/x", method="PUT", headers=everything, query={"q": "1"}), "method"),
        (RequestInfo(path="/x", headers=everything, query={"q": "1"}), "h2"),
        (RequestInfo(path="/x", query={"q": "1"}), "query"),
        (RequestInfo(path="/abc/b/cz"), None),
    ]
    for request_info, expected in cases:
        decision = table.decide(request_info, rng)
        assert (decision.host if decision else None) == expected, request_info


def test_the_http_routes_mirror_copies_its_share_of_requests() -> None:
    rng = random.Random(8)
    for percent in (100, 40):
        table = table_from_http_route(
            http_route_of({"mirror": True, "mirrorWeight": percent}, routes=Routes(100, 0, mirror=percent))
        )
        decisions = [table.decide(RequestInfo(), rng) for _ in range(2000)]
        assert {d.host for d in decisions if d is not None} == {"podinfo-primary"}
        mirrored = sum(d is not None and d.mirror == "podinfo-canary" for d in decisions) / 2000
        low, high = binomial_bounds(2000, percent / 100)
        assert low <= mirrored <= high, (percent, mirrored)
    route = http_route_of({"mirror": True}, routes=Routes(100, 0, mirror=100))
    weighted = next(r for r in route["spec"]["rules"] if r["name"] == "weighted")
    weighted["filters"][-1]["requestMirror"] = {
        "backendRef": {"name": "podinfo-canary", "port": 9898},
        "fraction": {"numerator": 1, "denominator": 4},
    }
    fraction = table_from_http_route(route)
    assert [r.mirror_percent for r in fraction.routes] == [25.0]


def test_the_http_routes_backend_filters_set_the_session_cookies() -> None:
    rng = random.Random(9)
    table = table_from_http_route(http_route_of(PINNED, routes=Routes(50, 50), cookies=BOTH))
    decisions = [d for d in (table.decide(RequestInfo(), rng) for _ in range(400)) if d is not None]
    by_host = {
        host: [d.response_headers.add for d in decisions if d.host == host]
        for host in ("podinfo-canary", "podinfo-primary")
    }
    assert by_host["podinfo-canary"] and by_host["podinfo-primary"]
    assert all(add == (("Set-Cookie", "coalmine-cookie=abc123; Max-Age=60"),) for add in by_host["podinfo-canary"])
    assert all(add == (("Set-Cookie", "coalmine-primary=xyz789; Max-Age=60"),) for add in by_host["podinfo-primary"])

    over = table_from_http_route(http_route_of(AFFINITY, routes=Routes(100, 0), cookies=AFTER))
    returning = over.decide(RequestInfo(headers=RETURNING), rng)
    assert returning is not None and returning.host == "podinfo-primary"
    assert returning.response_headers.add == (("Set-Cookie", "coalmine-cookie=abc123; Max-Age=-1"),)  # expired
    newcomer = over.decide(RequestInfo(), rng)
    assert newcomer is not None and newcomer.response_headers == HeaderOps()


def test_the_observer_reads_the_canary_weight_of_either_routing_object() -> None:
    assert http_route_weight(http_route_of(routes=Routes(80, 20)), "podinfo-canary") == 20
    assert http_route_weight(http_route_of(routes=Routes(0, 100)), "podinfo-canary") == 100
    assert http_route_weight(None, "podinfo-canary") is None
    hand_made = {"spec": {"rules": [{"backendRefs": [{"name": "podinfo-primary", "weight": 3},
                                                     {"name": "podinfo-canary", "weight": 1}]}]}}  # fmt: skip
    assert http_route_weight(hand_made, "podinfo-canary") == 25  # Gateway API weights are relative
    virtual_service = build_virtual_service(canary_spec(), "podinfo", NS, Routes(70, 30))
    assert mesh_weight(virtual_service, "podinfo-canary") == 30


def test_the_sandboxs_gateway_api_canary_is_valid_and_reads_istio_metrics() -> None:
    timing = manifests.Timing(interval_s=6)
    canary = manifests.canary(NS, "podinfo", timing, provider="gatewayapi")
    assert canary["spec"]["provider"] == "gatewayapi:v1"
    assert canary["spec"]["analysis"]["querySet"] == "istio"  # the router exports Istio's series
    istio = manifests.canary(NS, "podinfo", timing)
    assert "provider" not in istio["spec"] and "querySet" not in istio["spec"]["analysis"]
    report, istio_report = validate_document(canary), validate_document(istio)
    assert report.problems == istio_report.problems == ()
    assert report.warnings == istio_report.warnings  # only the short demo interval; nothing about the provider
    del canary["spec"]["analysis"]["querySet"]
    assert validate_document(canary).warnings != istio_report.warnings  # validate asks a Gateway API Canary for it


# -- the router process ------------------------------------------------------------------------------------------


def router_state(address: str) -> dict[str, Any]:
    return dict(json.loads(http_get(f"http://{address}/sandbox/routes")[2]))


def istio_samples(address: str) -> list[Any]:
    text = http_get(f"http://{address}/metrics")[2].decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def workload_requests(address: str) -> collections.Counter[str]:
    """``istio_requests_total`` summed per destination workload."""
    totals: collections.Counter[str] = collections.Counter()
    for sample in istio_samples(address):
        if sample.name == "istio_requests_total":
            totals[sample.labels["destination_workload"]] += int(sample.value)
    return totals


def test_router_splits_by_the_virtual_service_in_the_api_and_reports_istio_series(
    api_server: tuple[ThreadedEmulator, Path, KubeClient], start: Start
) -> None:
    _, kubeconfig, client = api_server
    target = {"metadata": {"name": "podinfo", "namespace": NS}, **deployment()}
    for service in build_services(canary_spec(), target, CANARY_OWNER).all():
        client.create(SERVICES, NS, service)
    registry = Registry(client, NS)
    for name, version in (("podinfo-primary", "v1"), ("podinfo", "v2")):
        _, address = start("e2e.sandbox.backend", env={"VERSION": version})
        registry.publish(Endpoint(name, address, version, {"app": name}, version))
    client.create(VIRTUAL_SERVICES, NS, build_virtual_service(canary_spec(), "podinfo", NS, Routes(75, 25)))

    args = ("--kubeconfig", str(kubeconfig), "--namespace", NS, "--service", "podinfo", "--poll-interval", "0.2")
    _, router = start("e2e.sandbox.router", "--listen", "127.0.0.1:0", *args, "--seed", "5")
    assert router_state(router)["weights"]["weighted"] == {"podinfo-primary": 75, "podinfo-canary": 25}

    answers = send_many(f"http://{router}/", 400)
    versions = collections.Counter(headers["X-Version"] for _, headers, _ in answers)
    low, high = binomial_bounds(400, 0.25)
    assert low < versions["v2"] / 400 < high
    assert versions["v1"] + versions["v2"] == 400

    samples = istio_samples(router)
    requests = {
        s.labels["destination_workload"]: s.value
        for s in samples
        if s.name == "istio_requests_total" and s.labels["response_code"] == "200"
    }
    assert requests == {"podinfo": versions["v2"], "podinfo-primary": versions["v1"]}
    request_labels = next(s.labels for s in samples if s.name == "istio_requests_total")
    assert request_labels["reporter"] == "destination"
    assert request_labels["destination_workload_namespace"] == NS
    buckets = {float(s.labels["le"]) for s in samples if s.name == "istio_request_duration_milliseconds_bucket"}
    assert buckets == {*ISTIO_DURATION_BUCKETS_MS, math.inf}
    counts = {
        s.labels["destination_workload"]: s.value
        for s in samples
        if s.name == "istio_request_duration_milliseconds_count"
    }
    assert counts == requests
    assert not [s for s in samples if s.name.endswith("_created")]

    # The operator moves the weights; the router follows within its poll interval.
    client.patch(VIRTUAL_SERVICES, NS, "podinfo", build_virtual_service(canary_spec(), "podinfo", NS, Routes(0, 100)))
    assert procs.wait_until(lambda: router_state(router)["weights"]["weighted"]["podinfo-canary"] == 100, 5)
    assert {headers["X-Version"] for _, headers, _ in send_many(f"http://{router}/", 40)} == {"v2"}

    # Mirroring: users are answered by the primary, the canary sees (and reports) a copy of every request.
    mirrored = build_virtual_service(canary_spec({"mirror": True}), "podinfo", NS, Routes(100, 0, mirror=100))
    client.patch(VIRTUAL_SERVICES, NS, "podinfo", mirrored)
    assert procs.wait_until(lambda: "weighted" in router_state(router)["mirrors"], 5)
    canary_before = workload_requests(router)["podinfo"]
    assert {headers["X-Version"] for _, headers, _ in send_many(f"http://{router}/", 30)} == {"v1"}
    assert procs.wait_until(lambda: workload_requests(router)["podinfo"] == canary_before + 30, 5)


def test_router_splits_by_the_http_route_in_the_api_when_told_gatewayapi(
    api_server: tuple[ThreadedEmulator, Path, KubeClient], start: Start
) -> None:
    _, kubeconfig, client = api_server
    target = {"metadata": {"name": "podinfo", "namespace": NS}, **deployment()}
    for service in build_services(canary_spec(), target, CANARY_OWNER).all():
        client.create(SERVICES, NS, service)
    registry = Registry(client, NS)
    for name, version in (("podinfo-primary", "v1"), ("podinfo", "v2")):
        _, address = start("e2e.sandbox.backend", env={"VERSION": version})
        registry.publish(Endpoint(name, address, version, {"app": name}, version))
    client.create(HTTPROUTES, NS, http_route_of(routes=Routes(75, 25)))

    args = ("--kubeconfig", str(kubeconfig), "--namespace", NS, "--service", "podinfo", "--poll-interval", "0.2")
    _, router = start("e2e.sandbox.router", "--listen", "127.0.0.1:0", *args, "--provider", "gatewayapi", "--seed", "6")
    state = router_state(router)
    assert state["source"].startswith(f"HTTPRoute {NS}/podinfo rv ")
    assert state["weights"]["weighted"] == {"podinfo-primary": 75, "podinfo-canary": 25}
    answers = send_many(f"http://{router}/", 400)
    versions = collections.Counter(headers["X-Version"] for _, headers, _ in answers)
    low, high = binomial_bounds(400, 0.25)
    assert low < versions["v2"] / 400 < high
    assert versions["v1"] + versions["v2"] == 400
    assert workload_requests(router) == {"podinfo": versions["v2"], "podinfo-primary": versions["v1"]}

    # The istio router (the default) in the same namespace knows no VirtualService: straight to the apex Service.
    _, istio_router = start("e2e.sandbox.router", "--listen", "127.0.0.1:0", *args)
    assert router_state(istio_router)["source"] == "no VirtualService: direct to podinfo"
    assert {headers["X-Version"] for _, headers, _ in send_many(f"http://{istio_router}/", 20)} == {"v1"}

    # Session affinity: the canary's answers set its cookie (the backendRef's filter); whoever sends it back stays.
    sticky = http_route_of(AFFINITY, routes=Routes(50, 50), cookies=CURRENT)
    client.patch(HTTPROUTES, NS, "podinfo", {"spec": sticky["spec"]})
    assert procs.wait_until(lambda: "sticky-route" in router_state(router)["weights"], 5)
    answers = send_many(f"http://{router}/", 60)
    cookies = {(headers["X-Version"], headers.get("Set-Cookie")) for _, headers, _ in answers}
    assert cookies == {("v1", None), ("v2", "coalmine-cookie=abc123; Max-Age=60")}
    returning = send_many(f"http://{router}/", 40, headers={"Cookie": "coalmine-cookie=abc123"})
    assert {headers["X-Version"] for _, headers, _ in returning} == {"v2"}

    # Mirroring: users are answered by the primary, the canary sees (and reports) a copy of every request.
    mirrored = http_route_of({"mirror": True}, routes=Routes(100, 0, mirror=100))
    client.patch(HTTPROUTES, NS, "podinfo", {"spec": mirrored["spec"]})
    assert procs.wait_until(lambda: router_state(router)["mirrors"].get("weighted", {}).get("percent") == 100, 5)
    canary_before = workload_requests(router)["podinfo"]
    assert {headers["X-Version"] for _, headers, _ in send_many(f"http://{router}/", 30)} == {"v1"}
    assert procs.wait_until(lambda: workload_requests(router)["podinfo"] == canary_before + 30, 5)


# -- the workload stand-in -----------------------------------------------------------------------------------------


def test_workload_runs_one_backend_per_revision_and_reports_deployment_status(
    api_server: tuple[ThreadedEmulator, Path, KubeClient], workload: subprocess.Popen[str]
) -> None:
    _, _, client = api_server
    registry = Registry(client, NS)
    client.create(DEPLOYMENTS, NS, deployment(VERSION="v1", LATENCY_MS="1"))

    def settled(replicas: int) -> dict[str, Any] | None:
        obj = client.get(DEPLOYMENTS, NS, "podinfo") or {}
        status = obj.get("status") or {}
        done = status.get("observedGeneration") == obj["metadata"]["generation"] and all(
            int(status.get(k) or 0) == replicas
            for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
        )
        return obj if done else None

    assert procs.wait_until(lambda: settled(1) is not None, 15)
    first = registry.read()["podinfo"]
    ready = settled(1)
    assert ready is not None
    conditions = {c["type"]: c for c in ready["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert http_get(f"http://{first.address}/")[1]["X-Version"] == "v1"

    # A new pod template is a new revision: a new process serves it, the old one is stopped.
    release = deployment(VERSION="v2")["spec"]["template"]
    client.patch(DEPLOYMENTS, NS, "podinfo", {"spec": {"template": release}})
    assert procs.wait_until(
        lambda: registry.read()["podinfo"].revision != first.revision and settled(1) is not None, 15
    )
    second = registry.read()["podinfo"]
    assert http_get(f"http://{second.address}/")[1]["X-Version"] == "v2"
    assert procs.wait_until(lambda: refuses(first.address), 5)

    # Scaled to zero: no process, no endpoint, zero replicas reported.
    client.patch(DEPLOYMENTS, NS, "podinfo", {"spec": {"replicas": 0}})
    assert procs.wait_until(lambda: "podinfo" not in registry.read() and settled(0) is not None, 10)
    assert procs.wait_until(lambda: refuses(second.address), 5)

    # Back up, then SIGTERM: the backend goes with the stand-in and its endpoint is withdrawn.
    client.patch(DEPLOYMENTS, NS, "podinfo", {"spec": {"replicas": 1}})
    assert procs.wait_until(lambda: "podinfo" in registry.read() and settled(1) is not None, 15)
    third = registry.read()["podinfo"]
    workload.send_signal(signal.SIGTERM)
    assert workload.wait(timeout=10) == 0
    assert refuses(third.address)
    assert "podinfo" not in registry.read()


def test_a_backend_that_never_starts_leaves_the_deployment_unavailable(
    api_server: tuple[ThreadedEmulator, Path, KubeClient], workload: subprocess.Popen[str]
) -> None:
    _, _, client = api_server
    broken = deployment(ERROR_RATE="lots")  # the backend refuses to start on it, like a crash-looping pod
    broken["spec"]["progressDeadlineSeconds"] = 1
    client.create(DEPLOYMENTS, NS, broken)

    def progressing_reason() -> str | None:
        status = (client.get(DEPLOYMENTS, NS, "podinfo") or {}).get("status") or {}
        return next((c["reason"] for c in status.get("conditions") or () if c["type"] == "Progressing"), None)

    assert procs.wait_until(lambda: progressing_reason() == "ProgressDeadlineExceeded", 15)
    status = (client.get(DEPLOYMENTS, NS, "podinfo") or {})["status"]
    assert int(status.get("availableReplicas") or 0) == 0
    assert client.get(CONFIGMAPS, NS, REGISTRY_CONFIGMAP) is None or "podinfo" not in Registry(client, NS).read()


@pytest.mark.parametrize(
    ("observed", "replicas", "percent", "complete", "stuck"),
    [
        (Observed(ready=True), 3, 100.0, True, False),
        (Observed(ready=False, old_serving=True), 3, 0.0, False, False),  # rolling: old pods serve, new not yet
        (Observed(ready=False), 2, 0.0, False, False),
        (Observed(ready=False, stuck=True), 2, 0.0, False, True),
        (Observed(ready=True), 0, 100.0, True, False),  # scaled to zero
    ],
)
def test_the_status_written_reads_as_intended_by_the_operator(
    observed: Observed, replicas: int, percent: float, complete: bool, stuck: bool
) -> None:
    obj = deployment(replicas=replicas)
    obj["metadata"]["generation"] = 4
    obj["status"] = with_times(None, deployment_status(obj, observed), "2026-01-01T00:00:00Z")
    seen = readiness(obj)
    assert (seen.percent, seen.complete, seen.stuck) == (percent, complete, stuck)
    assert obj["status"]["observedGeneration"] == 4
    assert not needs_update(obj["status"], deployment_status(obj, observed))
    flipped = deployment_status(obj, Observed(ready=not observed.ready))
    assert needs_update(obj["status"], flipped) == (replicas > 0)  # at zero replicas readiness is moot


# -- all of it, scraped by the real Prometheus -----------------------------------------------------------------------


def prom_query(url: str, query: str) -> list[dict[str, Any]]:
    answer = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}")[2]
    return list(json.loads(answer)["data"]["result"])


@pytest.mark.prometheus
def test_prometheus_scrapes_the_router_and_answers_the_judges_queries(
    api_server: tuple[ThreadedEmulator, Path, KubeClient],
    workload: subprocess.Popen[str],
    start: Start,
    tmp_path: Path,
) -> None:
    _, kubeconfig, client = api_server
    spec = canary_spec()
    target = {"metadata": {"name": "podinfo", "namespace": NS}, **deployment(VERSION="v2", ERROR_RATE="0.5")}
    client.create(DEPLOYMENTS, NS, target)
    primary = build_primary_deployment(deployment(VERSION="v1"), spec, CANARY_OWNER)
    client.create(DEPLOYMENTS, NS, primary)
    for service in build_services(spec, target, CANARY_OWNER).all():
        client.create(SERVICES, NS, service)
    client.create(VIRTUAL_SERVICES, NS, build_virtual_service(spec, "podinfo", NS, Routes(50, 50)))
    assert procs.wait_until(lambda: set(Registry(client, NS).read()) == {"podinfo", "podinfo-primary"}, 15)

    args = ("--kubeconfig", str(kubeconfig), "--namespace", NS, "--service", "podinfo")
    _, router = start("e2e.sandbox.router", "--listen", "127.0.0.1:0", *args)
    try:
        prometheus = RunningPrometheus(tmp_path / "prom", scrape_config([router], interval_s=1.0))
        (tmp_path / "prom").mkdir()
        prometheus.start()
    except PrometheusUnavailable as exc:
        pytest.skip(str(exc))
    try:
        # Prometheus hands new targets to its scraper after a few seconds: load before that would be one sample.
        assert procs.wait_until(lambda: prom_query(prometheus.url, "up == 1") != [], 15)
        load = subprocess.run(
            procs.module_command("e2e.sandbox.loadgen", "--url", f"http://{router}/", "--rps", "40", "--duration", "3"),
            env=procs.child_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        report = json.loads(load.stdout)
        assert report["sent"] == report["answered"] == 120
        assert set(report["by_version"]) == {"v1", "v2"}

        total = f'sum(istio_requests_total{{reporter="destination", destination_workload_namespace="{NS}"}})'
        assert procs.wait_until(
            lambda: [float(r["value"][1]) for r in prom_query(prometheus.url, total)] == [120.0], 10
        )
        by_arm = {
            r["metric"]["destination_workload"]: float(r["value"][1])
            for r in prom_query(prometheus.url, errors_query(NS, "podinfo", 60))
        }
        assert by_arm.get("podinfo", 0) > 0  # the faulty canary's 500s, through the judge's own query
        assert by_arm.get("podinfo-primary", 0) == 0
        arms = {
            r["metric"]["destination_workload"] for r in prom_query(prometheus.url, requests_query(NS, "podinfo", 60))
        }
        assert arms == {"podinfo", "podinfo-primary"}
        slow = prom_query(prometheus.url, slow_query(NS, "podinfo", 60, 500))  # finds the le="500" bucket per arm
        assert {r["metric"]["destination_workload"] for r in slow} == arms
    finally:
        prometheus.stop()

    # The chaos test kills at random: even kill -9 of the stand-in takes its backends with it.
    addresses = [e.address for e in Registry(client, NS).read().values()]
    os.kill(workload.pid, signal.SIGKILL)
    workload.wait(timeout=5)
    assert procs.wait_until(lambda: all(refuses(a) for a in addresses), 5)
