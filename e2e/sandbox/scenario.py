"""The sandbox scenario: one healthy release promoted, one faulty release rolled back, watched and drawn.

``python -m e2e.sandbox`` / ``coalmine sandbox`` / ``make demo``. Steps:

1. bring up the stack (:class:`e2e.sandbox.stack.Stack`): emulated API, workload stand-in, router, Prometheus,
   the real operator, and a bounded load generator (``rps`` requests per second);
2. apply the ``podinfo`` Deployment (0.5 % errors, 50 ms) and its Canary — routed by a VirtualService, or with
   ``provider="gatewayapi"`` by an HTTPRoute (the router and the observer follow it); wait for ``Initialized``;
3. release a healthy version (same error rate) and wait for ``Succeeded``;
4. release a faulty one (``ERROR_RATE=0.1``) and wait for ``Failed``;
5. draw the PNG (:mod:`e2e.sandbox.chart`) and print a summary: each release's outcome, decision time and reason.

A live view runs meanwhile. On a terminal (:class:`e2e.sandbox.liveview.TerminalView`): the plugin's ``kubectl
coalmine get -w`` table, redrawn in place at the bottom, with the narration and one line per change of phase, weight
or message printed above it, ending on the last state; elsewhere (a pipe, a CI log) the same lines without the
table. Everything is stopped and the temporary directory removed on exit, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from controller.kube.api import CANARIES, DEPLOYMENTS
from e2e.sandbox import manifests
from e2e.sandbox.chart import ReleaseMark, Thresholds, draw
from e2e.sandbox.liveview import ChangeLog, TerminalView
from e2e.sandbox.observe import Sample, Sampler, error_rates
from e2e.sandbox.stack import Stack

TERMINAL = ("Succeeded", "Failed")
ROUTED_BY = {"istio": "a VirtualService", "gatewayapi": "an HTTPRoute, gatewayapi:v1"}
BANNER = """\
Coalmine sandbox: an emulated Kubernetes API and a stand-in data plane (router, workload, backends) on 127.0.0.1.
The operator, the judge, the HTTP traffic and Prometheus are real. Nothing leaves this machine."""


@dataclass(frozen=True)
class Options:
    """What the command line chose."""

    output: Path | None = None
    quick: bool = False
    rps: float = 40.0
    live: bool | None = None  # None: the plugin's live view when stdout is a terminal
    keep: bool = False  # keep the work directory with every process's log
    scrape_interval_s: float = 1.0  # Prometheus' scrape interval (a real cluster's is often 15 s or 30 s)
    provider: str = "istio"  # istio: a VirtualService; gatewayapi: an HTTPRoute (spec.provider gatewayapi:v1)
    echo: Callable[[str], None] = print

    @property
    def timing(self) -> manifests.Timing:
        """6 s looks and a 15 s metric window at 1 s scrapes. Slower scrapes stretch both: a look must span at
        least one scrape (else it sees nothing new), and Flagger's ``rate(...[interval])`` needs two samples."""
        scrape = math.ceil(self.scrape_interval_s)
        interval_s, metric_interval_s = max(6, scrape), max(15, 3 * scrape)
        return manifests.Timing(interval_s=interval_s, metric_interval_s=metric_interval_s, min_requests=30)

    @property
    def deadline_s(self) -> float:
        """The longest one rollout may take before the sandbox gives up on it: about 15 looks (90 s at 6 s)."""
        looks = 15 if self.quick else 25
        return float(looks * self.timing.interval_s)


@dataclass(frozen=True)
class Outcome:
    """How one release ended."""

    release: manifests.Release
    phase: str
    decided_after_s: float
    reason: str

    @property
    def as_expected(self) -> bool:
        return self.phase == self.release.expect


@dataclass
class Result:
    """The scenario's record (mutable while it runs)."""

    outcomes: list[Outcome] = field(default_factory=list)
    picture: Path | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return len(self.outcomes) == len(RELEASES) and all(o.as_expected for o in self.outcomes)


BASELINE = manifests.Release("6.7.0", 0.005)
RELEASES = (manifests.Release("6.7.1", 0.005, expect="Succeeded"), manifests.Release("6.7.2", 0.1, expect="Failed"))


def default_output() -> Path:
    return Path("out") / f"sandbox-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.png"


def wait_for_phase(
    sampler: Sampler, phases: tuple[str, ...], timeout_s: float, *, after: float, on_change: Callable[[Sample], None]
) -> Sample | None:
    """The first sample taken after ``after`` whose phase is one of ``phases`` (None on timeout)."""
    deadline = time.monotonic() + timeout_s
    seen = len(sampler.samples)
    while time.monotonic() < deadline:
        fresh = sampler.samples[seen:]
        seen += len(fresh)
        for sample in fresh:
            on_change(sample)
            if sample.t >= after and sample.phase in phases:
                return sample
        time.sleep(0.1)
    return None


def release_marks(releases: list[tuple[float, str]], outcomes: list[Outcome]) -> list[ReleaseMark]:
    """What the picture marks per release: when it was released and, once it ended, when and how."""
    marks = []
    for index, (released_at, version) in enumerate(releases):
        outcome = outcomes[index] if index < len(outcomes) else None
        if outcome is None:
            marks.append(ReleaseMark(released_at, version))
        else:
            marks.append(ReleaseMark(released_at, version, released_at + outcome.decided_after_s, outcome.phase))
    return marks


def run(options: Options) -> Result:
    """Run the scenario (see the module docstring); the caller prints the summary from the result."""
    echo = options.echo  # while the terminal view is open, through it (above its frame)
    result = Result()
    timing = options.timing
    echo(BANNER)
    stack = Stack(keep=options.keep, scrape_interval_s=options.scrape_interval_s, provider=options.provider)
    terminal: TerminalView | None = None
    sampler: Sampler | None = None
    try:
        echo("Starting the emulated API, workload stand-in, router, Prometheus and the operator …")
        stack.up()
        echo(f"  work dir {stack.workdir}; Prometheus {stack.prometheus_url}; router http://{stack.router_address}")
        epoch_zero = time.time()
        api, ns, name = stack.cluster.api, stack.namespace, stack.service
        sampler = Sampler(api, ns, name, provider=options.provider).start()
        budget = 30 + options.deadline_s * len(RELEASES)
        stack.start_load(options.rps, budget)
        live = sys.stdout.isatty() if options.live is None else options.live
        if live:  # one writer on the terminal: the table and every line above it come from this process
            terminal = TerminalView(stack.cluster, ns).start()
            echo = terminal.echo
        view: Callable[[Sample], None] = terminal if terminal is not None else ChangeLog(echo)
        canary = manifests.canary(ns, name, timing, provider=options.provider)
        api.create(DEPLOYMENTS, ns, manifests.deployment(ns, name, BASELINE))
        api.create(CANARIES, ns, canary)
        routed_by = ROUTED_BY[options.provider]
        echo(
            f"Applied Deployment {name} ({BASELINE.version}, 0.5 % errors) and its Canary (routed by {routed_by}); "
            "waiting for Initialized"
        )
        if wait_for_phase(sampler, ("Initialized",), 60, after=0, on_change=view) is None:
            raise RuntimeError("the Canary was not initialised within 60 s; run with --keep and read operator.log")
        releases: list[tuple[float, str]] = []
        for index, release in enumerate(RELEASES):
            if index:
                # The canary workload keeps its name across releases: let the last release's traffic age out of
                # the metric windows, or the next rollout's first looks would judge a mix of both.
                echo(f"Waiting {timing.metric_interval_s + 2} s for the last release's traffic to leave the windows")
                time.sleep(timing.metric_interval_s + 2)
            echo(f"Releasing {release.version} with ERROR_RATE={release.error_rate:g} (expect {release.expect})")
            released_at = sampler.now()
            releases.append((released_at, release.version))
            api.patch(DEPLOYMENTS, ns, name, {"spec": {"template": {"spec": manifests.release_patch(release)}}})
            # the operator needs a tick to notice the new revision: wait for a phase that is not the old terminal one
            began = wait_for_phase(sampler, ("Progressing",), 30, after=released_at, on_change=view)
            ended = (
                wait_for_phase(sampler, TERMINAL, options.deadline_s, after=began.t, on_change=view)
                if began is not None
                else None
            )
            if ended is None:
                last = sampler.latest()
                result.outcomes.append(
                    Outcome(release, "Timeout", options.deadline_s, last.message if last else "no status")
                )
                break
            result.outcomes.append(Outcome(release, ended.phase, ended.t - released_at, ended.message))
        sampler.stop()
        result.samples = list(sampler.samples)
        if terminal is not None:
            terminal.close()  # the frame left on screen is the state the last release ended in
            terminal, echo = None, options.echo
        rates = error_rates(stack.prometheus_url, ns, epoch_zero - 5, time.time())
        output = options.output or default_output()
        title = "Coalmine sandbox: a healthy release, then a faulty one"
        marks = release_marks(releases, result.outcomes)
        thresholds = Thresholds.of_canary(canary)
        result.picture = draw(
            output, result.samples, rates, marks, epoch_zero=epoch_zero, thresholds=thresholds, title=title
        )
    finally:
        if sampler is not None:
            sampler.stop()
        if terminal is not None:
            terminal.close()  # give the terminal back (cursor shown) on an error or Ctrl-C too
        stack.down()
        if options.keep:
            echo(f"Logs kept in {stack.workdir}")
    return result


def summary(result: Result) -> list[str]:
    """The closing lines: one per release, then where the picture is."""
    lines = ["", "Summary:"]
    for outcome in result.outcomes:
        mark = "as expected" if outcome.as_expected else f"EXPECTED {outcome.release.expect}"
        lines.append(
            f"  {outcome.release.version} (ERROR_RATE={outcome.release.error_rate:g}): {outcome.phase} after "
            f"{outcome.decided_after_s:.0f} s ({mark}) — {outcome.reason}"
        )
    if result.picture is not None:
        lines.append(f"Picture: {result.picture}")
    return lines + KEEP_EXPLORING


KEEP_EXPLORING = [
    "",
    "Keep exploring: the same world (emulated API, real operator, Prometheus and traffic), held up for you:",
    "  .venv/bin/coalmine sandbox --hold --kubeconfig /tmp/coalmine-sandbox.kubeconfig",
    "It prints what to try; among it, in another terminal:",
    "  export KUBECONFIG=/tmp/coalmine-sandbox.kubeconfig",
    "  .venv/bin/kubectl-coalmine get -w -n test            # the rollout live, as you release",
    "  .venv/bin/kubectl-coalmine dashboard -n test         # the same in your browser",
    "  .venv/bin/coalmine judge -f examples/demo-canary.yaml --prometheus <the URL it prints> --start -15m --end now",
]
"""How to go on after ``make demo`` (the summary's last lines)."""
