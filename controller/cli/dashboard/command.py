"""The ``kubectl coalmine dashboard`` command: connect like the other verbs, start the watches, serve, print the URL.

Kept apart from :mod:`.server` so registering the verb in :mod:`controller.cli.plugin` costs the other verbs no
imports: the HTTP server and watches load only when the dashboard starts.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from controller.cli.kubectl.access import PluginError, connect

DEFAULT_PORT = 3100
"""Argo Rollouts' dashboard port, so people find it where they expect."""


def dashboard_command(
    port: Annotated[int, typer.Option("--port", "-p", help="Local port (127.0.0.1 only).")] = DEFAULT_PORT,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig context's, else 'default')."),
    ] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Show every namespace.")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds a button waits for the operator's answer (the verbs' --wait).")
    ] = 10.0,
    kubeconfig: Annotated[
        str | None, typer.Option("--kubeconfig", help="Kubeconfig file(s) (default: $KUBECONFIG, ~/.kube/config).")
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Kubeconfig context (default: the current one).")
    ] = None,
) -> None:
    """Serve a web dashboard on http://127.0.0.1:PORT: rollouts, their evidence, and the promote/abort/pause/resume/
    retry buttons, with your kubeconfig's permissions."""
    from controller.cli.dashboard.api import DashboardApi
    from controller.cli.dashboard.live import Hub, Watchers
    from controller.cli.dashboard.server import DashboardServer

    try:
        cluster = connect(kubeconfig, context, namespace)
    except PluginError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    scope = None if all_namespaces else cluster.namespace
    hub = Hub()
    try:
        server = DashboardServer(DashboardApi(cluster, scope, hub, default_wait_s=wait), port)
    except OSError as exc:
        typer.echo(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc} (try --port)", err=True)
        raise typer.Exit(1) from None
    watchers = Watchers(cluster, scope, hub)
    watchers.start()
    server.start_background()
    where = "all namespaces" if scope is None else f"namespace {scope}"
    typer.echo(f"Coalmine dashboard for {where}: {server.url}  (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopping")
    finally:
        server.close()
        watchers.stop()
