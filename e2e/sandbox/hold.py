"""``coalmine sandbox --hold --kubeconfig PATH``: the sandbox without the scripted releases, kept up for you.

It starts the same stack as the scenario (emulated API with Coalmine's CRDs, workload stand-in, router for the
``podinfo`` Service in namespace ``test``, real Prometheus, the real operator) and a bounded load generator through
the router, writes a kubeconfig for the emulated API to ``PATH``, prints how to use it with your own ``kubectl``,
and stays up until Ctrl-C or SIGTERM, then stops every process and removes its work directory (and the
kubeconfig it wrote). Your releases are yours: ``kubectl apply -f examples/demo-canary.yaml``, then
``kubectl set env deployment/podinfo ERROR_RATE=0.1`` (the stand-in backend reads ``ERROR_RATE``, ``LATENCY_MS``
and ``VERSION`` from the pod template's env).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from e2e.sandbox.stack import Stack

LOAD_BUDGET_S = 12 * 3600.0  # the load generator stops by itself after this, even if nobody stops the sandbox


@dataclass(frozen=True)
class HoldOptions:
    """What ``--hold`` was given."""

    kubeconfig: Path
    rps: float = 40.0
    scrape_interval_s: float = 1.0
    keep: bool = False
    provider: str = "istio"  # which routing object the router follows: VirtualService (istio) or HTTPRoute
    echo: Callable[[str], None] = print


SANDBOX_CONTEXT = "emulator"  # the context name of the kubeconfig the emulated API writes


def refuse_to_overwrite(path: Path) -> str | None:
    """Why ``path`` must not be written, or None. Only a missing file or a sandbox's own kubeconfig is replaced:
    ``--kubeconfig ~/.kube/config`` must never clobber a real cluster's credentials."""
    if not path.exists():
        return None
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        config = None
    if isinstance(config, dict) and config.get("current-context") == SANDBOX_CONTEXT:
        return None  # left behind by a sandbox that was killed: ours to replace
    return f"{path} exists and is not a sandbox kubeconfig; choose another path (e.g. /tmp/coalmine-sandbox.kubeconfig)"


def usage(options: HoldOptions, stack: Stack) -> list[str]:
    """What to do with the held sandbox (printed once it is up)."""
    config = options.kubeconfig.resolve()
    return [
        "The sandbox is up and held. Use it with your own kubectl:",
        "",
        f"  export KUBECONFIG={config}",
        "  kubectl apply -f examples/demo-canary.yaml        # namespace test, Service podinfo",
        "  kubectl get canaries -n test -w",
        "  kubectl set image -n test deployment/podinfo podinfod=ghcr.io/stefanprodan/podinfo:6.7.2",
        "  kubectl set env -n test deployment/podinfo ERROR_RATE=0.1   # a faulty release",
        "  kubectl coalmine get -w -n test",
        "  kubectl coalmine dashboard -n test                  # the same in your browser",
        f"  coalmine judge -f examples/demo-canary.yaml --prometheus {stack.prometheus_url} --start -15m --end now",
        "",
        f"Prometheus: {stack.prometheus_url} (scraping every {options.scrape_interval_s:g} s); "
        f"traffic: {options.rps:g} requests/s through http://{stack.router_address}/",
        f"Logs: {stack.workdir}",
        "Only the podinfo Service in namespace test has a data plane. Ctrl-C or SIGTERM stops everything.",
        *(
            [
                "The router follows the HTTPRoute podinfo: give your Canary spec.provider: gatewayapi:v1 "
                "and analysis.querySet: istio (the sandbox exports Istio's series).",
            ]
            if options.provider == "gatewayapi"
            else []
        ),
    ]


def hold(options: HoldOptions, stop: threading.Event | None = None) -> int:
    """Run the held sandbox until ``stop`` is set or Ctrl-C/SIGTERM (``KeyboardInterrupt``); 0 when it ended."""
    echo = options.echo
    stack = Stack(keep=options.keep, scrape_interval_s=options.scrape_interval_s, provider=options.provider)
    wrote = False
    try:
        echo("Starting the emulated API, workload stand-in, router, Prometheus and the operator …")
        stack.up()
        options.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stack.kubeconfig, options.kubeconfig)
        wrote = True
        stack.start_load(options.rps, LOAD_BUDGET_S)
        for line in usage(options, stack):
            echo(line)
        waiter = stop or threading.Event()
        try:
            while not waiter.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
        echo("Stopping the sandbox …")
    finally:
        stack.down()
        if wrote:
            options.kubeconfig.unlink(missing_ok=True)
    echo("Stopped: every sandbox process is gone.")
    return 0
