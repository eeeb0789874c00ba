"""Helpers for the operator's integration tests: the real operator (kopf + Coalmine's handlers) in-process against
the emulated API, a scripted Prometheus on 127.0.0.1, object builders, waits, and a record of every write.

Why each piece exists:

- :class:`OperatorRun` starts exactly what ``coalmine run`` starts (``configure_settings``, ``build_registry``, an
  :class:`~controller.operator.context.OperatorContext`) and can be stopped and started again, so a test can
  restart the operator at any moment and check that it resumes from ``status``.
- :class:`ScriptedPrometheus` answers ``/api/v1/query`` with per-target numbers the test chooses (the built-in
  success rate and p99, and the per-arm request/5xx/slow counts of the comparison), so looks are deterministic,
  and it counts every query (the benchmark checks "at most one query per metric per canary per tick" with it).
- :class:`History` taps the emulator's store: every committed write, in order. Polling could miss a phase that
  lasts one 0.2 s tick; the store's own commit stream cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import kubernetes.client
import kubernetes_validate
from cloudcoil.models.istio.networking.v1beta1 import DestinationRule, VirtualService
from emulator import CoalmineEmulator, operator_settings, running_operator

from controller.kube.api import Recorder
from controller.kube.client import KubeClient
from controller.kube.watched import WatchedKubeApi
from controller.operator.context import OperatorConfig, OperatorContext
from controller.operator.runtime import build_registry, configure_settings

NS = "default"
CANARIES = "coalmine.dev/v1alpha1/canaries"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"
CONFIGMAPS = "v1/configmaps"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
EVENTS = "events.k8s.io/v1/events"
VIRTUAL_SERVICES = "networking.istio.io/v1beta1/virtualservices"
DESTINATION_RULES = "networking.istio.io/v1beta1/destinationrules"
K8S_VERSION = "1.37.0"

Obj = dict[str, Any]


# -- objects ----------------------------------------------------------------------------------------------------


def deployment(name: str, image: str, *, replicas: int = 2, config_map: str | None = None) -> Obj:
    """A plain Deployment as a user writes it (optionally reading a ConfigMap through ``envFrom``)."""
    container: Obj = {"name": "app", "image": image, "ports": [{"containerPort": 9898}]}
    if config_map is not None:
        container["envFrom"] = [{"configMapRef": {"name": config_map}}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


SUCCESS_RATE = {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}


def canary(name: str, *, target: str | None = None, analysis: Mapping[str, Any] | None = None, **spec: Any) -> Obj:
    """A Canary with short timings: 1 s looks, steps 25/50/75, the built-in success rate checked (min 99 %)."""
    merged: Obj = {
        "interval": "1s",
        "threshold": 2,
        "stepWeight": 25,
        "maxWeight": 75,
        "metrics": [SUCCESS_RATE],
        **(analysis or {}),
    }
    merged = {key: value for key, value in merged.items() if value is not None}  # None: leave the default out
    return {
        "apiVersion": "coalmine.dev/v1alpha1",
        "kind": "Canary",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target or name},
            "service": {"port": 9898},
            "progressDeadlineSeconds": 60,
            "analysis": merged,
            **spec,
        },
    }


def new_image(emulator: CoalmineEmulator, name: str, image: str) -> None:
    """Change the target's image, as ``kubectl set image`` does: a new revision to roll out.

    The whole container list is written back (a JSON merge patch replaces lists), so nothing else changes.
    """
    containers = [
        dict(c) for c in emulator.read_object(DEPLOYMENTS, NS, name)["spec"]["template"]["spec"]["containers"]
    ]
    containers[0]["image"] = image
    emulator.patch_object(DEPLOYMENTS, NS, name, {"spec": {"template": {"spec": {"containers": containers}}}})


def image_of(obj: Mapping[str, Any] | None) -> str:
    assert obj is not None
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def settle(emulator: CoalmineEmulator, name: str) -> None:
    """Report Deployment ``name`` rolled out and ready, as the deployment controller eventually would (for tests
    that turned the emulator's instant roll-outs off with ``emulator.store.behaviour.deployments_ready``)."""
    obj = emulator.read_object(DEPLOYMENTS, NS, name)
    assert obj is not None
    replicas = int(obj["spec"].get("replicas", 1))
    status = {
        "observedGeneration": obj["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    emulator.patch_object(DEPLOYMENTS, NS, name, {"status": status}, subresource="status")


def status_of(emulator: CoalmineEmulator, name: str) -> Obj:
    obj = emulator.read_object(CANARIES, NS, name)
    return dict((obj or {}).get("status") or {})


def weights_of(emulator: CoalmineEmulator, name: str) -> tuple[int, int] | None:
    """(primary, canary) weights of the VirtualService's weighted route, or ``None`` if it has none."""
    return vs_weights(emulator.read_object(VIRTUAL_SERVICES, NS, name))


def vs_weights(vs: Mapping[str, Any] | None) -> tuple[int, int] | None:
    if not vs:
        return None
    for route in (vs.get("spec") or {}).get("http") or ():
        found = {
            str(dest["destination"]["host"]).rsplit("-", 1)[-1]: int(dest.get("weight", 0))
            for dest in route.get("route") or ()
        }
        if "primary" in found and "canary" in found:
            return found["primary"], found["canary"]
    return None


def events_of(emulator: CoalmineEmulator, name: str) -> list[tuple[str, str]]:
    """``(reason, note)`` of the events.k8s.io Events about Canary ``name``, oldest first."""
    found = [
        e
        for e in emulator.list_objects(EVENTS, NS)
        if (e.get("regarding") or {}).get("name") == name and (e.get("regarding") or {}).get("kind") == "Canary"
    ]
    found.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
    return [(str(e.get("reason", "")), str(e.get("note", ""))) for e in found]


def condition(status: Mapping[str, Any], type_: str) -> Obj | None:
    for item in status.get("conditions") or ():
        if item.get("type") == type_:
            return dict(item)
    return None


async def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0, poll: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and the last value) on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


async def wait_phase(emulator: CoalmineEmulator, name: str, phase: str, timeout: float = 20.0) -> Obj:
    def check() -> Obj | None:
        status = status_of(emulator, name)
        return status if status.get("phase") == phase else None

    try:
        result: Obj = await wait_for(f"Canary {name} to reach {phase}", check, timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}; status: {status_of(emulator, name)}") from None
    return result


# -- the write history ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Write:
    """One committed change: ``kind`` is ADDED/MODIFIED/DELETED, ``obj`` the object after it (a snapshot)."""

    resource: str
    kind: str
    name: str
    obj: Obj


@dataclass
class History:
    """Every write the emulator commits, in commit order (installed on the store; see the module doc)."""

    writes: list[Write] = field(default_factory=list)

    @classmethod
    def install(cls, emulator: CoalmineEmulator) -> History:
        history = cls()
        store = emulator.store
        emit = store._emit

        def recording(spec: Any, kind: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
            history.writes.append(
                Write(spec.storage_key, kind, str(new["metadata"]["name"]), json.loads(json.dumps(new)))
            )
            emit(spec, kind, new, old)

        store._emit = recording
        return history

    def of(self, resource_suffix: str, name: str) -> list[Write]:
        return [w for w in self.writes if w.resource.endswith(resource_suffix) and w.name == name]

    def phases(self, name: str) -> list[str]:
        """The Canary's phases in order, consecutive repeats collapsed."""
        seen: list[str] = []
        for write in self.of("/canaries", name):
            phase = (write.obj.get("status") or {}).get("phase")
            if phase and (not seen or seen[-1] != phase):
                seen.append(phase)
        return seen

    def weights(self, name: str) -> list[tuple[int, int]]:
        """The VirtualService's (primary, canary) weights in order, consecutive repeats collapsed."""
        seen: list[tuple[int, int]] = []
        for write in self.of("/virtualservices", name):
            weights = vs_weights(write.obj) if write.kind != "DELETED" else None
            if weights is not None and (not seen or seen[-1] != weights):
                seen.append(weights)
        return seen

    def statuses(self, name: str) -> list[Obj]:
        """Each distinct status the Canary had, in order."""
        seen: list[Obj] = []
        for write in self.of("/canaries", name):
            status = write.obj.get("status") or {}
            if status and (not seen or seen[-1] != status):
                seen.append(status)
        return seen


# -- validating what the operator wrote -------------------------------------------------------------------------


def istio_valid(obj: Mapping[str, Any]) -> None:
    """Istio's own schema (cloudcoil's models), plus a lossless round trip: the models drop unknown fields, so a
    misspelt field would vanish and the comparison fails."""
    model = {"VirtualService": VirtualService, "DestinationRule": DestinationRule}[str(obj["kind"])]
    parsed = model.model_validate(dict(obj))
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    mine = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    assert {k: v for k, v in dumped.items() if k not in ("metadata", "status")} == mine, obj["metadata"]["name"]


def validate_written(emulator: CoalmineEmulator) -> int:
    """Validate every Deployment/Service/HPA (Kubernetes schemas) and VirtualService/DestinationRule (Istio's);
    returns how many objects were checked."""
    checked = 0
    for resource in (DEPLOYMENTS, SERVICES, HPAS):
        for obj in emulator.list_objects(resource, NS):
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            checked += 1
    for resource in (VIRTUAL_SERVICES, DESTINATION_RULES):
        for obj in emulator.list_objects(resource, NS):
            istio_valid(obj)
            checked += 1
    return checked


# -- a scripted Prometheus --------------------------------------------------------------------------------------


class QueryKind(StrEnum):
    SUCCESS_RATE = "request-success-rate"
    DURATION = "request-duration"
    REQUESTS = "requests"
    ERRORS = "errors"
    SLOW = "slow"
    BASELINE = "baseline"  # a look's counter baseline (``last_over_time`` at its start): answered with no series


@dataclass(frozen=True)
class Counts:
    """One arm's counts over a look's window (what ``increase(...[window])`` returns)."""

    requests: float = 0.0
    errors: float = 0.0
    slow: float = 0.0


@dataclass(frozen=True)
class Script:
    """What Prometheus says about one target. ``None`` means "no series" (an empty result: no data)."""

    success_rate: float | None = 100.0
    duration_p99: float | None = 50.0
    canary: Counts | None = Counts(1000, 0, 0)
    primary: Counts | None = Counts(1000, 0, 0)


@dataclass(frozen=True)
class Query:
    target: str
    kind: QueryKind
    at: float


_WORKLOAD = re.compile(r'destination_workload=~"((?:[^"\\]|\\.)*)"')
_NAMESPACE = re.compile(r'destination_workload_namespace="((?:[^"\\]|\\.)*)"')
EVERY_WORKLOAD = "*"
"""The target of a batched query: every workload of the namespace (``controller.providers.batching``)."""


def classify(query: str) -> tuple[str, QueryKind]:
    """Which target and which signal a query Coalmine sends is about (see ``controller.providers.queries``);
    the target of a batched, namespace-wide query is :data:`EVERY_WORKLOAD`."""
    match = _WORKLOAD.search(query)
    if match is None:
        if _NAMESPACE.search(query) is None:
            raise ValueError(f"not a Coalmine query: {query}")
        target = EVERY_WORKLOAD
    else:
        target = re.sub(r"\\\\(.)", r"\1", match.group(1).split("|")[0])
    if query.startswith("last_over_time("):
        return target, QueryKind.BASELINE
    if "histogram_quantile" in query:
        return target, QueryKind.DURATION
    if 'response_code!~"5.*"' in query:
        return target, QueryKind.SUCCESS_RATE
    if 'le="+Inf"' in query or "le=~" in query:
        return target, QueryKind.SLOW
    if 'response_code=~"5.*"' in query:
        return target, QueryKind.ERRORS
    return target, QueryKind.REQUESTS


class ScriptedPrometheus:
    """An HTTP responder for ``/api/v1/query`` on 127.0.0.1 (see the module doc). ``/-/stats`` returns the query
    counts as JSON, so a process that does not own the responder (the benchmark) can read them."""

    live: ClassVar[dict[str, ScriptedPrometheus]] = {}
    """Responders serving now, by URL: an :class:`OperatorRun` tells the one it queries which workloads exist."""

    def __init__(self, default: Script | None = None, workloads: Callable[[], Iterable[str]] | None = None) -> None:
        self.default = default or Script()
        self.workloads = workloads
        """The targets a namespace-wide query answers for (besides the scripted ones); None: scripted only."""
        self.scripts: dict[str, Script] = {}
        self.queries: list[Query] = []
        self.record = True
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def script(self, target: str, **changes: Any) -> None:
        """Change what Prometheus says about ``target`` from now on (fields of :class:`Script`)."""
        with self._lock:
            self.scripts[target] = replace(self.scripts.get(target, self.default), **changes)

    def queries_for(self, target: str, kind: QueryKind | None = None) -> list[Query]:
        with self._lock:
            return [q for q in self.queries if q.target == target and (kind is None or q.kind == kind)]

    def answer(self, query: str, at: float) -> list[Obj]:
        target, kind = classify(query)
        if target == EVERY_WORKLOAD:
            return self._answer_every(query, kind, at)
        return self._answer_one(target, kind, at)

    def _targets(self) -> list[str]:
        with self._lock:
            names = set(self.scripts)
        if self.workloads is not None:
            names.update(self.workloads())
        return sorted(name for name in names if not name.endswith("-primary"))

    def _answer_every(self, query: str, kind: QueryKind, at: float) -> list[Obj]:
        """A batched query: each target's answer, labelled with its workload (a ``sum by (destination_workload)``)."""
        with self._lock:
            key = f"{EVERY_WORKLOAD}|{kind.value}"
            self.counts[key] = self.counts.get(key, 0) + 1
        series: list[Obj] = []
        for target in self._targets():
            for found in self._answer_one(target, kind, at, counted=False):
                if kind in (QueryKind.SUCCESS_RATE, QueryKind.DURATION):
                    found = {**found, "metric": {"destination_workload": target}}
                series.append(found)
        return series

    def _answer_one(self, target: str, kind: QueryKind, at: float, *, counted: bool = True) -> list[Obj]:
        with self._lock:
            script = self.scripts.get(target, self.default)
            key = f"{target}|{kind.value}"
            if counted:  # a batched query is counted once, under EVERY_WORKLOAD; it is recorded per target
                self.counts[key] = self.counts.get(key, 0) + 1
            if self.record:
                self.queries.append(Query(target, kind, at))
        if kind in (QueryKind.SUCCESS_RATE, QueryKind.DURATION):
            value = script.success_rate if kind is QueryKind.SUCCESS_RATE else script.duration_p99
            return [] if value is None else [{"metric": {}, "value": [at, repr(float(value))]}]
        if kind is QueryKind.BASELINE:
            return []  # no series before the look: each window series counts from zero, i.e. its one value
        series: list[Obj] = []
        for workload, counts in ((target, script.canary), (target + "-primary", script.primary)):
            if counts is None:
                continue
            if kind is QueryKind.SLOW:  # the +Inf bucket minus the le=B bucket is the slow count
                parts = {"le": ("+Inf", counts.slow), "le ": ("250", 0.0)}
            elif kind is QueryKind.ERRORS:  # an increase() form (dashboards, backtests of old queries)
                parts = {"response_code": ("503", counts.errors)}
            else:  # the looks' raw counters: one series per response code, a range vector of one sample
                parts = {"response_code": ("200", counts.requests - counts.errors), "code5": ("503", counts.errors)}
            for name, (value, number) in parts.items():
                label = name.strip() if name != "code5" else "response_code"
                metric = {"destination_workload": workload, label: value}
                series.append({"metric": metric, "values": [[at, repr(float(number))]]})
        return series

    def __enter__(self) -> ScriptedPrometheus:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the provider's requests.Session reuses connections
            # The headers and the body go out in two writes; with Nagle's algorithm the body waits for the
            # client's delayed ACK of the headers, 40 ms a query (a real Prometheus sets TCP_NODELAY too).
            disable_nagle_algorithm = True

            def _serve(self, params: Mapping[str, list[str]]) -> None:
                path = urlparse(self.path).path
                if path == "/-/stats":
                    with responder._lock:
                        self._send(200, dict(responder.counts))
                    return
                if path != "/api/v1/query":
                    self._send(404, {"status": "error", "error": f"no such path {path}"})
                    return
                query = (params.get("query") or [""])[0]
                at = float((params.get("time") or [str(time.time())])[0])
                try:
                    result = responder.answer(query, at)
                except ValueError as error:
                    self._send(400, {"status": "error", "errorType": "bad_data", "error": str(error)})
                    return
                self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

            def do_GET(self) -> None:
                self._serve(parse_qs(urlparse(self.path).query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                self._serve({**parse_qs(urlparse(self.path).query), **parse_qs(body)})

            def _send(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-prometheus", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        ScriptedPrometheus.live[self.url] = self
        return self

    def __exit__(self, *exc: object) -> None:
        ScriptedPrometheus.live.pop(self.url, None)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


@contextlib.contextmanager
def scripted_prometheus(default: Script | None = None) -> Iterator[ScriptedPrometheus]:
    with ScriptedPrometheus(default) as responder:
        yield responder


# -- the operator -----------------------------------------------------------------------------------------------


def collect_kopf_sessions() -> None:
    """Collect what a stopped operator left behind, ignoring aiohttp's "unclosed session" warnings.

    Intermittently (about once in a few dozen operator runs, never reproducibly) an aiohttp ``ClientSession`` of
    kopf's API client outlives ``kopf.operator`` unclosed; kopf closes the sessions it knows of at exit, so it is
    one it lost track of. Left to the garbage collector, its ``ResourceWarning`` surfaces in whichever later test
    happens to trigger a collection, and fails that test (warnings are errors). Collecting here, right after the
    operator stopped, keeps it out of unrelated tests. Only these two aiohttp warnings are ignored.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unclosed client session", category=ResourceWarning)
        warnings.filterwarnings("ignore", message="Unclosed connector", category=ResourceWarning)
        gc.collect()


def _deployment_names(emulator: CoalmineEmulator) -> list[str]:
    return [str(obj["metadata"]["name"]) for obj in emulator.list_objects("apps/v1/deployments")]


class OperatorRun:
    """The real operator in this loop against ``emulator``; ``await start()``/``stop()``/``restart()``.

    Each start builds a fresh context and registry, exactly as a new ``coalmine run`` process would: nothing
    survives a restart but what is in the cluster.
    """

    def __init__(
        self,
        emulator: CoalmineEmulator,
        config: OperatorConfig,
        *,
        recorder: Recorder | None = None,
        clusterwide: bool = False,
    ) -> None:
        self.emulator = emulator
        self.config = config
        self.recorder = recorder
        self.clusterwide = clusterwide
        self.starts = 0
        self._stack: contextlib.AsyncExitStack | None = None

    @property
    def running(self) -> bool:
        return self._stack is not None

    async def start(self) -> None:
        assert self._stack is None, "already running"
        configuration = kubernetes.client.Configuration(host=str(self.emulator.url).rstrip("/"))
        configuration.retries = 0
        api = KubeClient.from_configuration(
            configuration,
            recorder=self.recorder,
            timeout_s=self.config.kubernetes_timeout_s,
            instance=self.config.instance,
        )
        ctx = OperatorContext(config=self.config, api=WatchedKubeApi(api, namespaces=self.config.namespaces))
        prometheus = ScriptedPrometheus.live.get(self.config.metrics_server)
        if prometheus is not None and prometheus.workloads is None:  # batched looks ask about every workload
            prometheus.workloads = partial(_deployment_names, self.emulator)
        settings = operator_settings()
        configure_settings(settings, finalizer=self.config.shard.finalizer)
        settings.watching.server_timeout = 60
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(
            running_operator(
                self.emulator,
                registry=build_registry(self.config),
                settings=settings,
                memo={"ctx": ctx},
                clusterwide=self.clusterwide,
                wait_for=(CANARIES,),
                shutdown_timeout=30.0,
            )
        )
        self._stack = stack
        self.starts += 1

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
            collect_kopf_sessions()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


def test_config(prometheus: ScriptedPrometheus | None = None, **changes: Any) -> OperatorConfig:
    """The operator's settings for tests: a 0.2 s tick, short request timeouts, the scripted Prometheus."""
    config = OperatorConfig(
        tick_seconds=0.2,
        metrics_server=prometheus.url if prometheus is not None else "http://127.0.0.1:9",
        query_timeout_s=2.0,
        kubernetes_timeout_s=5.0,
        namespaces=(NS,),
    )
    return replace(config, **changes)


test_config.__test__ = False  # type: ignore[attr-defined]  # not a test despite the name


@contextlib.asynccontextmanager
async def operator(
    emulator: CoalmineEmulator, config: OperatorConfig, *, recorder: Recorder | None = None
) -> AsyncIterator[OperatorRun]:
    """An :class:`OperatorRun`, started, and stopped when the block exits (also on failure)."""
    run = OperatorRun(emulator, config, recorder=recorder)
    await run.start()
    try:
        yield run
    finally:
        await run.stop()
