"""``coalmine sandbox``: the local sandbox (``make demo``), which lives in the source checkout's ``e2e/sandbox``.

The sandbox needs the emulated API and the stand-in data plane, which are not part of the installed package. This
command imports them lazily and, from an installed copy without the checkout, says where to run it instead.
"""

from __future__ import annotations

import importlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

CHECKOUT_HINT = (
    "the sandbox runs from a source checkout: clone the Coalmine repository and run `make demo` there "
    "(it needs e2e/ and tests/emulator/, which are not installed with the package)"
)


class Provider(StrEnum):
    """What the sandbox's Canary routes by (``spec.provider``); its router follows the same object."""

    ISTIO = "istio"  # a VirtualService
    GATEWAYAPI = "gatewayapi"  # a Gateway API HTTPRoute (gatewayapi:v1)


def sandbox_command(
    output: Annotated[Path | None, typer.Option(help="Where to write the PNG (default out/sandbox-TIME.png).")] = None,
    quick: Annotated[bool, typer.Option(help="Shorter pauses and waits (about a minute and a half).")] = False,
    rps: Annotated[float, typer.Option(min=1, max=50, help="Requests per second of the load generator.")] = 40.0,
    live: Annotated[
        bool | None, typer.Option("--live/--no-live", help="The plugin's live view (default: when on a terminal).")
    ] = None,
    keep: Annotated[bool, typer.Option(help="Keep the work directory with every process's log.")] = False,
    scrape_interval: Annotated[
        str | None,
        typer.Option(help="Prometheus' scrape interval, 1s-60s (default 1s; real clusters often use 15s or 30s)."),
    ] = None,
    provider: Annotated[
        Provider,
        typer.Option(help="Route by an Istio VirtualService (istio) or a Gateway API HTTPRoute (gatewayapi)."),
    ] = Provider.ISTIO,
    hold: Annotated[
        bool, typer.Option(help="No scripted releases: keep the sandbox up for your own kubectl until Ctrl-C.")
    ] = False,
    kubeconfig: Annotated[
        Path | None, typer.Option(help="With --hold: write the sandbox's kubeconfig here (never over a real one).")
    ] = None,
) -> None:
    """Watch a real rollout on 127.0.0.1: emulated API and data plane; real operator, judge, traffic, Prometheus."""
    checkout = Path(__file__).resolve().parents[2]  # an editable install runs from the checkout itself
    if (checkout / "e2e" / "sandbox").is_dir() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        entry = importlib.import_module("e2e.sandbox.__main__")
    except ModuleNotFoundError as error:
        if error.name is not None and error.name.split(".")[0] in ("e2e", "tests"):
            typer.echo(f"coalmine sandbox: {CHECKOUT_HINT}", err=True)
            raise typer.Exit(2) from error
        raise
    args = [*(["--output", str(output)] if output else []), *(["--quick"] if quick else []), "--rps", f"{rps:g}"]
    if live is not None:
        args.append("--live" if live else "--no-live")
    if keep:
        args.append("--keep")
    if scrape_interval is not None:
        args += ["--scrape-interval", scrape_interval]
    if provider is not Provider.ISTIO:
        args += ["--provider", provider.value]
    if hold:
        args.append("--hold")
    if kubeconfig is not None:
        args += ["--kubeconfig", str(kubeconfig)]
    raise typer.Exit(int(entry.main(args)))
