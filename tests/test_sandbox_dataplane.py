"""The sandbox's stand-in data plane, as real processes over real HTTP against the emulated API.

Backends honour their env; the router splits by the VirtualService the operator's own builder writes and reports
Istio's series; the workload stand-in runs one backend per revision and writes Deployment status; Debian's
Prometheus scrapes the router and answers the judge's own queries. Every process is stopped even when a test fails.
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

from analysis.providers.queries import ISTIO_DURATION_BUCKETS_MS, errors_query, requests_query, slow_query
from controller.kube.api import CONFIGMAPS, DEPLOYMENTS, SERVICES, VIRTUAL_SERVICES
from controller.kube.client import KubeClient
from controller.kube.health import readiness
from controller.kube.objects import build_primary_deployment, build_services
from controller.rollout.spec import CanarySpec, parse_canary_spec
from controller.routers import Routes
from controller.routers.istio import SessionCookies, build_virtual_service
from e2e.sandbox import procs
from e2e.sandbox.backend import Behaviour, BehaviourError
from e2e.sandbox.deployment_status import Observed, deployment_status, needs_update, with_times
from e2e.sandbox.endpoints import REGISTRY_CONFIGMAP, Endpoint, Registry, resolve
from e2e.sandbox.loadgen import run_load
from e2e.sandbox.prometheus import PrometheusUnavailable, RunningPrometheus, scrape_config
from e2e.sandbox.routing import RequestInfo, RouteTable

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
