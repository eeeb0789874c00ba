"""``kubectl coalmine``: see, gate and steer Coalmine rollouts (the ``kubectl-coalmine`` console script).

kubectl runs any ``kubectl-<name>`` executable on PATH as ``kubectl <name>``, so ``pip install coalmine`` is the
whole installation. Reads (``get``, ``status``, ``explain``) never write; the actions (``promote``, ``abort``,
``pause``, ``resume``, ``retry``) write one annotation, ``coalmine.dev/request``, and never ``spec`` — a Canary
lives in Git and must not drift. The operator carries the request out; see :mod:`controller.cli.kubectl.actions`.

This module only declares the commands and their flags; reading, rendering and waiting live in
:mod:`controller.cli.kubectl`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console, RenderableType
from rich.live import Live

from controller.cli.console import version_callback, whole_help_when_piped
from controller.cli.dashboard.command import dashboard_command
from controller.cli.kubectl.access import PluginError, connect, find_rollout, list_events, list_rollouts
from controller.cli.kubectl.actions import RequestResult, precheck, send_request
from controller.cli.kubectl.render import detail_view, explain_view, rollout_table
from controller.cli.kubectl.summary import events_about, now_epoch, summarize
from controller.cli.kubectl.waiting import wait_for_rollout
from controller.cli.kubectl.workloads import rollout_workloads
from controller.rollout.durations import DurationError, parse_duration
from controller.rollout.phases import ManualAction

app = typer.Typer(
    name="kubectl-coalmine",
    help="See, gate and steer Coalmine rollouts (Canaries and BlueGreens).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

whole_help_when_piped()

WATCH_INTERVAL_S = 2.0


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


NameArg = Annotated[str, typer.Argument(help="Name of the Canary (or BlueGreen).", show_default=False)]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig context's, else 'default')."),
]
KubeconfigOpt = Annotated[
    str | None, typer.Option("--kubeconfig", help="Kubeconfig file(s) (default: $KUBECONFIG, ~/.kube/config).")
]
ContextOpt = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: the current one).")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml.")]
WaitOpt = Annotated[str, typer.Option("--wait", help="How long to wait for the operator to handle the request.")]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Write the request and return at once (exit 0).")]


@app.callback()
def main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=version_callback("kubectl-coalmine"), help="Print the version."
        ),
    ] = False,
) -> None:
    """See, gate and steer Coalmine rollouts (Canaries and BlueGreens)."""


@contextlib.contextmanager
def _reporting_errors() -> Iterator[None]:
    """Turn a :class:`PluginError` into one line on stderr and its exit code."""
    try:
        yield
    except PluginError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def _seconds(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def _print_data(data: Any, output: Output) -> None:
    if output is Output.JSON:
        typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


@app.command("get")
def get_command(
    name: Annotated[str | None, typer.Argument(help="Show one rollout in detail.", show_default=False)] = None,
    namespace: NamespaceOpt = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="List every namespace.")] = False,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep refreshing (every 2s) until Ctrl-C.")] = False,
    timeout: Annotated[str | None, typer.Option("--timeout", help="With -w: stop after this long (e.g. 5m).")] = None,
    output: OutputOpt = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """List Canaries and BlueGreens, or show one in detail (steps, checks, evidence, conditions, Events)."""
    if name and all_namespaces:
        raise typer.BadParameter("a NAME cannot be combined with --all-namespaces", param_hint="-A")
    limit = _seconds(timeout, "--timeout") if timeout else None
    with _reporting_errors():
        cluster = connect(kubeconfig, context, namespace)

        def snapshot() -> tuple[RenderableType, Any]:
            now = now_epoch()
            if name:
                obj = find_rollout(cluster, cluster.namespace, name)
                summary = summarize(obj)
                events = events_about(list_events(cluster, cluster.namespace, summary.kind, name), summary.kind, name)
                workloads = rollout_workloads(cluster, cluster.namespace, obj)
                data = {**summary.detail(now, events), "workloads": workloads}
                return detail_view(summary, events, now, workloads), data
            summaries = [summarize(o) for o in list_rollouts(cluster, None if all_namespaces else cluster.namespace)]
            return rollout_table(summaries, now), {"items": [s.row(now) for s in summaries]}

        if watch:
            _watch(snapshot, output, limit)
            return
        view, data = snapshot()
        if output is Output.TABLE:
            if not data.get("items", True):
                where = "any namespace" if all_namespaces else f"namespace {cluster.namespace}"
                typer.echo(f"No Canaries or BlueGreens found in {where}.", err=True)
                return
            _console().print(view)
        else:
            _print_data(data, output)


def _watch(snapshot: Callable[[], tuple[RenderableType, Any]], output: Output, limit: float | None) -> None:
    """Refresh until Ctrl-C or ``limit``: live in a terminal; elsewhere (a pipe) print each change once."""
    console = _console()
    deadline = None if limit is None else time.monotonic() + limit

    def pause() -> bool:
        if deadline is not None and time.monotonic() + WATCH_INTERVAL_S > deadline:
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False
        time.sleep(WATCH_INTERVAL_S)
        return True

    with contextlib.suppress(KeyboardInterrupt):
        if console.is_terminal and output is Output.TABLE:
            view, _ = snapshot()
            with Live(view, console=console, auto_refresh=False) as live:
                while pause():
                    live.update(snapshot()[0], refresh=True)
            return
        last: str | None = None
        while True:
            view, data = snapshot()
            key = _change_key(data)
            if key != last:
                if output is Output.TABLE:
                    console.print(view)
                else:
                    typer.echo(
                        json.dumps(data, default=str) if output is Output.JSON else "---\n" + yaml.safe_dump(data)
                    )
                last = key
            if not pause():
                return


def _change_key(data: Any) -> str:
    """What counts as a change for ``-w``: everything but the ever-growing AGE."""
    if isinstance(data, dict):
        return json.dumps({k: _change_key(v) for k, v in data.items() if k != "age"}, sort_keys=True, default=str)
    if isinstance(data, list):
        return json.dumps([_change_key(item) for item in data], default=str)
    return json.dumps(data, default=str)


@app.command("status")
def status_command(
    name: NameArg,
    namespace: NamespaceOpt = None,
    timeout: Annotated[str, typer.Option("--timeout", help="Give up after this long (exit 2).")] = "10m",
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Wait for the current rollout to end: exit 0 Succeeded, 1 Failed, 2 timed out (for CI pipelines)."""
    limit = _seconds(timeout, "--timeout")
    with _reporting_errors():
        cluster = connect(kubeconfig, context, namespace)
        outcome = wait_for_rollout(cluster, cluster.namespace, name, timeout_s=limit, say=typer.echo)
    verdict = {0: "succeeded", 1: "failed", 2: "timed out"}[int(outcome.result)]
    typer.echo(f"{name} {verdict} ({outcome.phase})" + (f": {outcome.message}" if outcome.message else ""))
    raise typer.Exit(int(outcome.result))


def _act(
    action: ManualAction,
    name: str,
    namespace: str | None,
    wait: str,
    no_wait: bool,
    kubeconfig: str | None,
    context: str | None,
) -> None:
    wait_s = 0.0 if no_wait else _seconds(wait, "--wait")
    with _reporting_errors():
        cluster = connect(kubeconfig, context, namespace)
        obj = find_rollout(cluster, cluster.namespace, name)
        refusal = precheck(action, obj)
        if refusal is not None:
            raise PluginError(refusal)
        outcome = send_request(cluster, obj, action, wait_s=wait_s, say=typer.echo)
    if outcome.result is RequestResult.HANDLED and not no_wait:
        typer.echo(f"handled: {name} is now {outcome.phase}" + (f" — {outcome.message}" if outcome.message else ""))
        for event in outcome.events:
            typer.echo(f"  {event.type} {event.reason}: {event.message}")
    elif outcome.result is RequestResult.IGNORED:
        typer.echo(f"ignored by the operator: {outcome.message}", err=True)
    elif outcome.result is RequestResult.NO_ANSWER:
        typer.echo(f"no answer: {outcome.message}", err=True)
    raise typer.Exit(int(outcome.result))


def _action_command(action: ManualAction, doc: str) -> Callable[..., None]:
    def command(
        name: NameArg,
        namespace: NamespaceOpt = None,
        wait: WaitOpt = "30s",
        no_wait: NoWaitOpt = False,
        kubeconfig: KubeconfigOpt = None,
        context: ContextOpt = None,
    ) -> None:
        _act(action, name, namespace, wait, no_wait, kubeconfig, context)

    command.__doc__ = doc
    return command


@app.command("promote")
def promote_command(
    name: NameArg,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps and promote.")] = False,
    namespace: NamespaceOpt = None,
    wait: WaitOpt = "30s",
    no_wait: NoWaitOpt = False,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Approve what is waiting (a manual pause, a confirm-* gate); --full skips the remaining steps."""
    action = ManualAction.PROMOTE_FULL if full else ManualAction.PROMOTE
    _act(action, name, namespace, wait, no_wait, kubeconfig, context)


app.command("abort")(
    _action_command(ManualAction.ABORT, "Roll back now: all traffic to the primary, the canary scaled down.")
)
app.command("pause")(
    _action_command(ManualAction.PAUSE, "Hold the rollout where it is (no steps, no deadline) until resumed.")
)
app.command("resume")(_action_command(ManualAction.RESUME, "Continue a rollout paused with 'pause'."))
app.command("retry")(
    _action_command(ManualAction.RETRY, "Re-run a Failed rollout of the same revision (no pod-template change needed).")
)


@app.command("explain")
def explain_command(
    name: NameArg,
    namespace: NamespaceOpt = None,
    output: OutputOpt = Output.TABLE,
    kubeconfig: KubeconfigOpt = None,
    context: ContextOpt = None,
) -> None:
    """Why the controller decided what it did: status, conditions, the last look's evidence, judge state, Events."""
    with _reporting_errors():
        cluster = connect(kubeconfig, context, namespace)
        obj = find_rollout(cluster, cluster.namespace, name)
        summary = summarize(obj)
        events = events_about(list_events(cluster, cluster.namespace, summary.kind, name), summary.kind, name)
    if output is Output.TABLE:
        _console().print(explain_view(summary, events))
        return
    _print_data(summary.explanation(events), output)


app.command("dashboard")(dashboard_command)
