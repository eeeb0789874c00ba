"""Benchmark: N Canaries progressing at once in ONE operator process — tick lag, look lag, RSS, CPU, query count.

The emulated Kubernetes API (``--serve``) and a scripted Prometheus (``--serve-prometheus``) run in processes of
their own, so their CPU is not counted against the operator's; the emulator skips schema validation once the
Canaries are seeded, and it counts the phases and looks at the end, so the operator's process holds only the
operator. The operator is the real one (``configure_settings``, ``build_registry``, kopf, the official client in
the bounded worker threads, httpx's async client for Prometheus) with the production tick (2 s) and 10 s analysis
intervals. All N Canaries are initialised, then every target gets a new image at once and the benchmark measures
while they progress:

- **tick lag**: how late each tick's *decision* is against its slot (the time the operator scheduled the tick for,
  which the engine is given as its ``now``; see ``controller/operator/schedule.py``), so waiting for the event loop
  and for every request of the tick all count; a slot skipped because its tick ran a whole period
  late counts from that slot. p50/p99 over every tick of every Canary;
- **tick time**: how long each tick took from its start to the decision (queueing for the event loop and for the
  requests included), p50/p99;
- **look lag**: how late each look runs after it became due (the interval after the previous look); the tick period
  bounds it from below (a look waits for the next tick), so the interesting part is what the operator adds;
- RSS (before any Canary, while progressing, and its peak up to the end of the measurement) and CPU of the operator
  process (process time / wall time, in cores); every size runs in a fresh process, so one size's memory does not
  carry into the next;
- Prometheus queries per look and per second, counted at the responder: a look alone asks 3 (a threshold, the
  counts' baseline and window); batched looks (the default) share them across the namespace, ``--no-batch``
  measures the per-Canary queries for comparison; and the API server's write requests per second.

    .venv/bin/python bench/scale.py                       # 100 and 500 Canaries, writes docs/benchmarks-scale.md
    .venv/bin/python bench/scale.py --sizes 100,500,2000  # add 2,000 (takes several minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the emulator and the scripted Prometheus live with the tests

DOC = ROOT / "docs" / "benchmarks-scale.md"
NS = "default"


# -- the API/Prometheus process ----------------------------------------------------------------------------------


def serve(count: int) -> None:
    """Serve the emulator and the scripted Prometheus; seed ``count`` Deployments and Canaries; obey stdin."""
    from emulator import CoalmineEmulator, serving
    from operator_harness import CANARIES, DEPLOYMENTS, canary, deployment

    async def main() -> None:
        emulator = CoalmineEmulator(request_log_limit=50)
        analysis = {
            "interval": "10s",
            "stepWeight": 10,
            "maxWeight": 50,
            "threshold": 2,
            "comparison": {"errorRate": {}, "minRequests": 100},
        }
        for index in range(count):
            name = f"app-{index:04d}"
            emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
            body = canary(name, analysis=analysis)
            body["spec"]["progressDeadlineSeconds"] = 600
            emulator.create_object(CANARIES, body, NS)
        # Seeded and validated; from here on the stand-in API server skips schema validation: its CPU must not
        # limit the operator measured (a real API server validates on cores of its own).
        emulator.store.validate = False
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        # The scripted Prometheus answers from a process of its own: its threads would otherwise share the
        # emulator's GIL, and the emulator would become what limits the benchmark.
        prometheus = subprocess.Popen(
            [sys.executable, __file__, "--serve-prometheus", str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert prometheus.stdout is not None
            prometheus_url = prometheus.stdout.readline().strip()
            async with serving(emulator) as url:
                urls = {"api": url, "prometheus": prometheus_url, "prometheus_pid": prometheus.pid}
                urls["api_pid"] = os.getpid()
                print(json.dumps(urls), flush=True)

                def commands() -> None:
                    for line in sys.stdin:
                        command = line.strip()
                        if command == "rollout":
                            loop.call_soon_threadsafe(rollout, emulator, count)
                        elif command == "report":  # read here, so the operator's process holds only the operator
                            answer = asyncio.run_coroutine_threadsafe(report(emulator, count), loop).result()
                            print(json.dumps(answer), flush=True)
                    loop.call_soon_threadsafe(done.set)

                threading.Thread(target=commands, daemon=True).start()
                await done.wait()
        finally:
            if prometheus.stdin is not None:
                prometheus.stdin.close()
            prometheus.wait(timeout=30)

    async def report(emulator: Any, how_many: int) -> dict[str, dict[str, int]]:
        """Each Canary's phase counted, and the looks its judge took (one per look that read metrics)."""
        phases: dict[str, int] = {}
        looks: dict[str, int] = {}
        for index in range(how_many):
            name = f"app-{index:04d}"
            status = (emulator.read_object(CANARIES, NS, name) or {}).get("status") or {}
            phase = str(status.get("phase", "-"))
            phases[phase] = phases.get(phase, 0) + 1
            judge = status.get("judge") or {}
            looks[name] = int(((judge.get("error-rate") or {}).get("test") or {}).get("looks", 0))
        return {"phases": phases, "looks": looks, "writes": {"api": emulator.writes, **emulator.writes_by}}

    def rollout(emulator: Any, how_many: int) -> None:
        for index in range(how_many):
            name = f"app-{index:04d}"
            containers = emulator.read_object(DEPLOYMENTS, NS, name)["spec"]["template"]["spec"]["containers"]
            patched = [{**containers[0], "image": f"{name}:2"}]
            emulator.patch_object(DEPLOYMENTS, NS, name, {"spec": {"template": {"spec": {"containers": patched}}}})

    asyncio.run(main())


def serve_prometheus(count: int) -> None:
    """Serve the scripted Prometheus (every target healthy) until stdin closes; print its URL first. It knows the
    ``count`` workloads, so a batched (namespace-wide) query is answered for all of them, as a real one would be."""
    from operator_harness import Script, ScriptedPrometheus

    names = [f"app-{index:04d}" for index in range(count)]
    with ScriptedPrometheus(Script(), workloads=lambda: names) as prometheus:
        prometheus.record = False  # counts only: a list of every query would grow for the whole run
        print(prometheus.url, flush=True)
        sys.stdin.read()


# -- measuring the operator --------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """Tick times per Canary and look lags, filled by a wrapper around the tick."""

    tick_s: float
    interval_s: float
    measuring: bool = False
    last_slot: dict[str, float] = field(default_factory=dict)
    tick_lags: list[float] = field(default_factory=list)
    look_lags: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    ticks: int = 0

    def tick(self, name: str, slot: float, decided: float, took: float) -> None:
        """A tick for ``slot`` (the time the operator scheduled it for, its ``now``) decided at ``decided``."""
        previous = self.last_slot.get(name)
        self.last_slot[name] = slot
        if not self.measuring:
            return
        self.ticks += 1
        self.durations.append(took)
        # The lag is from the slot to the decision. A tick more than a period late runs for the latest slot it has
        # passed; the slot it skipped counts, from its own time.
        due = previous + self.tick_s if previous is not None and slot - previous > 1.5 * self.tick_s else slot
        self.tick_lags.append(max(0.0, decided - due))

    def look(self, name: str, before: Mapping[str, Any], after: Mapping[str, Any], now: float) -> None:
        from controller.rollout.status import parse_time

        old, new = before.get("lastAnalysisTime"), after.get("lastAnalysisTime")
        if not self.measuring or not old or not new or old == new:
            return
        due = float(parse_time(old) or 0.0) + self.interval_s
        self.look_lags.append(max(0.0, now - due))


def instrument(recorder: Recorder) -> None:
    """Wrap the handler's ``reconcile`` to time every tick (the handler module looks it up at call time)."""
    from controller.handlers import common as handler_module

    original = handler_module.reconcile

    async def timed(ctx: Any, body: Any, now: float, **kwargs: Any) -> Any:
        name = str(body["metadata"]["name"])
        started = time.monotonic()
        result = await original(ctx, body, now, **kwargs)
        decided = time.time()
        recorder.tick(name, now, decided, time.monotonic() - started)
        if result.status_patch is not None:
            recorder.look(name, dict(body.get("status") or {}), result.status_patch, decided)
        return result

    handler_module.reconcile = timed  # type: ignore[assignment]


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid``."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Result:
    canaries: int
    init_s: float
    tick_p50: float
    tick_p99: float
    look_p50: float
    look_p99: float
    baseline_rss_mb: float
    rss_mb: float
    peak_rss_mb: float
    cpu_cores: float
    ticks_per_s: float
    duration_p50: float
    duration_p99: float
    looks: int
    queries_per_look: float
    prometheus_queries_per_s: float
    api_writes_per_s: float
    api_cpu_cores: float
    prometheus_cpu_cores: float
    phases: dict[str, int]
    shard: str = ""  # "I/N" for one of N shard processes (``--shards``); its ``canaries`` are every shard's
    writes_by_kind: dict[str, int] = dataclasses.field(default_factory=dict)  # "PATCH canaries/status": count


class Link:
    """How a measuring operator talks to the stand-ins' process: ask for the report, start the rollout.

    Alone, it writes to the server's stdin itself; as one of several shards (``--shards``), to the parent
    process, which relays to the server and starts the rollout once every shard asked (a barrier)."""

    def __init__(self, send: Any, receive: Any, *, barrier: bool = False) -> None:
        self._send, self._receive, self._barrier = send, receive, barrier
        self._lock = threading.Lock()

    def ask(self, command: str) -> Any:
        with self._lock:
            self._send.write(command + "\n")
            self._send.flush()
            if command == "rollout" and not self._barrier:
                return None  # the server starts it and says nothing; the parent answers once every shard asked
            return json.loads(self._receive.readline())


async def measure(
    count: int,
    tick_s: float,
    interval_s: float,
    duration_s: float,
    batch: bool = True,
    shard: tuple[int, int] = (0, 1),
    kube_threads: int | None = None,
) -> Result:
    """Measure one operator process. With ``shard`` (I, N) other than (0, 1) it is one of N shard processes
    started by :func:`measure_shards`: the stand-ins are the parent's, ``count`` is every shard's Canaries."""
    import kubernetes.client
    from emulator import running_operator

    from controller.operator.context import OperatorConfig
    from controller.operator.runtime import (
        build_context,
        build_registry,
        configure_settings,
        limit_malloc_arenas,
        tune_garbage_collector,
    )
    from controller.operator.sharding import Shard

    limit_malloc_arenas()  # as `coalmine run` does, before any thread starts

    alone = shard == (0, 1)
    server = (
        subprocess.Popen(
            [sys.executable, __file__, "--serve", str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if alone
        else None
    )
    try:
        if server is not None:
            assert server.stdout is not None and server.stdin is not None
            urls = json.loads(await asyncio.to_thread(server.stdout.readline))
            link = Link(server.stdin, server.stdout)
        else:
            urls = json.loads(sys.stdin.readline())
            link = Link(sys.stdout, sys.stdin, barrier=True)

        class Emulator:  # what running_operator needs from the emulator: its URL
            url = urls["api"]

            async def wait_for_watch(self, resource: str, *, timeout: float) -> None:
                return None

        config = OperatorConfig(
            tick_seconds=tick_s,
            metrics_server=urls["prometheus"],
            namespaces=(NS,),
            batch_looks=batch,
            shard=Shard(*shard),
            **({} if kube_threads is None else {"kube_threads": kube_threads}),
        )
        ctx = build_context(config, kubernetes.client.Configuration(host=urls["api"]))
        settings = __import__("kopf").OperatorSettings()
        configure_settings(settings, finalizer=config.shard.finalizer)
        settings.posting.enabled = False
        recorder = Recorder(tick_s=tick_s, interval_s=interval_s)
        instrument(recorder)
        tune_garbage_collector()  # as `coalmine run` does

        def report() -> dict[str, dict[str, int]]:
            """Phases and looks, read by the emulator's process (a list of every Canary here would inflate the
            operator's memory)."""
            answer: dict[str, dict[str, int]] = link.ask("report")
            return answer

        baseline = rss_mb()  # interpreter, kopf, kubernetes, numpy/scipy: before any Canary is seen
        started = time.monotonic()
        async with running_operator(
            Emulator(),  # type: ignore[arg-type]
            registry=build_registry(config),
            settings=settings,
            memo={"ctx": ctx},
            startup_timeout=120,
            shutdown_timeout=30,
        ):
            while (await asyncio.to_thread(report))["phases"].get("Initialized", 0) < count:
                if time.monotonic() - started > 600:
                    raise RuntimeError(f"initialisation of {count} canaries took more than 10 minutes")
                await asyncio.sleep(max(1.0, count / 200))  # listing every Canary is not free either
            init_s = time.monotonic() - started
            link.ask("rollout")
            await asyncio.sleep(2 * tick_s)  # let the new revisions be picked up
            writes_before = (await asyncio.to_thread(report))["writes"]
            writes0 = writes_before["api"]
            queries0 = sum(json.loads(urllib_open(urls["prometheus"] + "/-/stats").read()).values())
            recorder.measuring = True
            cpu0, wall0, api_cpu0 = time.process_time(), time.monotonic(), process_cpu(urls["api_pid"])
            prometheus_cpu0 = process_cpu(urls["prometheus_pid"])
            rss_samples = []
            while time.monotonic() - wall0 < duration_s:
                await asyncio.sleep(1.0)
                rss_samples.append(rss_mb())
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            api_cpu = process_cpu(urls["api_pid"]) - api_cpu0
            prometheus_cpu = process_cpu(urls["prometheus_pid"]) - prometheus_cpu0
            recorder.measuring = False
            with urllib_open(urls["prometheus"] + "/-/stats") as response:  # queries first, then the looks
                queries: dict[str, int] = json.loads(response.read())
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            final_report = await asyncio.to_thread(report)
            looks, final = final_report["looks"], final_report["phases"]
            writes = final_report["writes"]["api"] - writes0
            by_kind = {k: v - writes_before.get(k, 0) for k, v in final_report["writes"].items() if k != "api"}
    finally:
        if server is not None:
            if server.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    server.stdin.close()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    # Every query Prometheus answered since the rollout began (the looks' too), per look taken since then; one
    # look alone asks 3 (a threshold, the counts' baseline and window), so below 3 is what batching saved.
    sent = sum(queries.values())
    return Result(
        canaries=count,
        init_s=init_s,
        tick_p50=percentile(recorder.tick_lags, 0.5),
        tick_p99=percentile(recorder.tick_lags, 0.99),
        look_p50=percentile(recorder.look_lags, 0.5),
        look_p99=percentile(recorder.look_lags, 0.99),
        baseline_rss_mb=baseline,
        rss_mb=statistics.fmean(rss_samples[-5:]),
        peak_rss_mb=peak,
        cpu_cores=cpu / wall,
        ticks_per_s=recorder.ticks / wall,
        duration_p50=percentile(recorder.durations, 0.5),
        duration_p99=percentile(recorder.durations, 0.99),
        looks=sum(looks.values()),
        queries_per_look=sent / max(1, sum(looks.values())),
        prometheus_queries_per_s=(sent - queries0) / wall,
        api_writes_per_s=writes / wall,
        api_cpu_cores=api_cpu / wall,
        prometheus_cpu_cores=prometheus_cpu / wall,
        phases=final,
        shard="" if alone else f"{shard[0]}/{shard[1]}",
        writes_by_kind={kind: n for kind, n in by_kind.items() if n},
    )


def measure_shards(per_shard: int, shards: int, args: argparse.Namespace) -> list[Result]:
    """``shards`` operator processes, ``coalmine run --shard I/N`` each, sharing one emulated API server and one
    scripted Prometheus with ``per_shard × shards`` Canaries; one result per shard. The machine's cores are shared
    by all of them and by the stand-ins."""
    total = per_shard * shards
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(total)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdin is not None and server.stdout is not None
    urls = server.stdout.readline()
    relay = threading.Lock()
    waiting = threading.Barrier(shards, action=lambda: _send(server, "rollout"))
    results: list[Result | None] = [None] * shards

    def serve_worker(index: int, worker: subprocess.Popen[str]) -> None:
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(urls)
        worker.stdin.flush()
        for line in worker.stdout:
            command = line.strip()
            if command == "report":
                with relay:
                    answer = _send(server, "report", reply=True)
                worker.stdin.write(answer)
                worker.stdin.flush()
            elif command == "rollout":
                waiting.wait()
                worker.stdin.write("{}\n")
                worker.stdin.flush()
            elif command.startswith("{"):
                results[index] = Result(**json.loads(command))

    workers = []
    for index in range(shards):
        command = [sys.executable, __file__, "--one", str(total), "--shard", f"{index}/{shards}", "--tick"]
        command += [str(args.tick), "--interval", str(args.interval), "--duration", str(args.duration)]
        command += ["--no-batch"] if args.no_batch else []
        command += [] if args.kube_threads is None else ["--kube-threads", str(args.kube_threads)]
        worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        thread = threading.Thread(target=serve_worker, args=(index, worker), daemon=True)
        thread.start()
        workers.append((worker, thread))
    for worker, thread in workers:
        worker.wait()
        thread.join(timeout=10)
    server.stdin.close()
    server.wait(timeout=60)
    if any(result is None for result in results):
        raise RuntimeError("a shard process ended without a result")
    return [result for result in results if result is not None]


def _send(server: subprocess.Popen[str], command: str, *, reply: bool = False) -> str:
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(command + "\n")
    server.stdin.flush()
    return server.stdout.readline() if reply else ""


def urllib_open(url: str) -> Any:
    import urllib.request

    return urllib.request.urlopen(url, timeout=10)


# -- report ------------------------------------------------------------------------------------------------------


def _who(result: Result) -> str:
    if not result.shard:
        return f"{result.canaries:,}"
    of = int(result.shard.split("/")[1])
    return f"{result.canaries // of:,} (shard {result.shard} of {result.canaries:,})"


def table(results: list[Result], tick_s: float, interval_s: float, duration_s: float) -> str:
    lines = [
        f"Tick {tick_s:g} s, analysis interval {interval_s:g} s, measured for {duration_s:g} s while every Canary "
        "progresses (one threshold metric and the error-rate comparison: 3 Prometheus queries per look unbatched).",
        "",
        "| Canaries | init (s) | tick lag p50 / p99 (s) | look lag p50 / p99 (s) | RSS: idle / running / peak (MB) "
        "| operator CPU (cores) | API / Prometheus CPU (cores) | ticks/s (wanted) | tick time p50 / p99 (s) "
        "| looks | Prometheus queries per look (per s) | API writes/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {_who(r)} | {r.init_s:.0f} | {r.tick_p50:.2f} / {r.tick_p99:.2f} | {r.look_p50:.2f} / "
            f"{r.look_p99:.2f} | {r.baseline_rss_mb:.0f} / {r.rss_mb:.0f} / {r.peak_rss_mb:.0f} | "
            f"{r.cpu_cores:.2f} | {r.api_cpu_cores:.2f} / {r.prometheus_cpu_cores:.2f} | "
            f"{r.ticks_per_s:.0f} ({r.canaries / (int(r.shard.split('/')[1]) if r.shard else 1) / tick_s:.0f}) | "
            f"{r.duration_p50:.2f} / {r.duration_p99:.2f} | {r.looks:,} | "
            f"{r.queries_per_look:.3f} ({r.prometheus_queries_per_s:.1f}) | {r.api_writes_per_s:.0f} |"
        )
    for r in results:
        if r.writes_by_kind and not r.shard:  # a shard's counts are every writer's: not one process's per tick
            ticks = max(1.0, r.ticks_per_s * duration_s)
            kinds = sorted(r.writes_by_kind.items(), key=lambda kv: -kv[1])
            per_tick = " · ".join(f"{kind} {n / ticks:.2f}" for kind, n in kinds)
            total = sum(r.writes_by_kind.values()) / ticks
            lines += ["", f"API writes per tick at {r.canaries:,} Canaries ({total:.2f}): {per_tick}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,500", help="comma-separated Canary counts")
    parser.add_argument("--tick", type=float, default=2.0, help="operator tick in seconds (production default 2)")
    parser.add_argument("--interval", type=float, default=10.0, help="analysis interval in seconds (fixed at 10)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to measure while progressing")
    parser.add_argument("--no-batch", action="store_true", help="every look sends its own queries (for comparison)")
    parser.add_argument(
        "--kube-threads", type=int, default=None, help="the operator's Kubernetes worker threads (default: its own)"
    )
    parser.add_argument("--no-write", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--section", default="tick-2s", help="which results block of the doc to replace")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # measure one size in this process
    parser.add_argument("--shards", type=int, default=1, help="operator processes (--shard I/N), each with --sizes")
    parser.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)  # this process's shard (with --one)
    parser.add_argument("--serve-prometheus", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_prometheus is not None:
        serve_prometheus(args.serve_prometheus)
        return
    if args.serve is not None:
        serve(args.serve)
        return
    logging.basicConfig(level=logging.ERROR)
    if args.one is not None:
        index, of = (int(part) for part in args.shard.split("/"))
        result = asyncio.run(
            measure(
                args.one,
                args.tick,
                args.interval,
                args.duration,
                batch=not args.no_batch,
                shard=(index, of),
                kube_threads=args.kube_threads,
            )
        )
        print(json.dumps(dataclasses.asdict(result)), flush=True)
        return
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        if args.shards > 1:
            shard_results = measure_shards(size, args.shards, args)
            for shard_result in shard_results:
                print(table([shard_result], args.tick, args.interval, args.duration).splitlines()[-1])
            results += shard_results
            continue
        command = [sys.executable, __file__, "--one", str(size), "--tick", str(args.tick)]
        command += ["--interval", str(args.interval), "--duration", str(args.duration)]
        command += ["--no-batch"] if args.no_batch else []
        command += [] if args.kube_threads is None else ["--kube-threads", str(args.kube_threads)]
        output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        result = Result(**json.loads(output.strip().splitlines()[-1]))
        print(table([result], args.tick, args.interval, args.duration).splitlines()[-1], "phases:", result.phases)
        results.append(result)
    report = table(results, args.tick, args.interval, args.duration)
    print(report)
    if not args.no_write:
        text = DOC.read_text() if DOC.exists() else "# Scale benchmark\n"
        marker, end = f"<!-- results:{args.section} -->", f"<!-- /results:{args.section} -->"
        if marker in text:
            head, _, rest = text.partition(marker)
            DOC.write_text(f"{head}{marker}\n{report}\n{end}{rest.partition(end)[2]}")
        else:
            DOC.write_text(f"{text.rstrip()}\n\n{marker}\n{report}\n{end}\n")


if __name__ == "__main__":
    main()
