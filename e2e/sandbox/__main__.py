"""``python -m e2e.sandbox [--quick] [--output PNG] [--rps N] [--live/--no-live] [--keep] [--scrape-interval 15s]
[--provider istio|gatewayapi] [--hold --kubeconfig PATH]``: the sandbox.

Exit status 0 when every release ended as expected, 1 when one did not, 130 on Ctrl-C (after cleaning up).
With ``--hold`` there are no scripted releases: the sandbox stays up for your own kubectl until Ctrl-C/SIGTERM
(exit status 0 then).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from controller.rollout.durations import DurationError, parse_duration
from e2e.sandbox.hold import HoldOptions, hold, refuse_to_overwrite
from e2e.sandbox.manifests import PROVIDERS
from e2e.sandbox.scenario import Options, run, summary
from e2e.sandbox.stack import terminate_on_signals

SCRAPE_RANGE_S = (1.0, 60.0)


def scrape_interval(text: str) -> float:
    """``--scrape-interval``: a duration (``15s``, ``1m``) or plain seconds, 1 s to 60 s."""
    try:
        seconds = float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except DurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    low, high = SCRAPE_RANGE_S
    if not low <= seconds <= high:
        raise argparse.ArgumentTypeError(f"{text}: must be between {low:g} s and {high:g} s")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coalmine sandbox", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=None, help="where to write the PNG (default out/sandbox-….png)")
    parser.add_argument("--quick", action="store_true", help="shorter pauses and waits (used by the tests)")
    parser.add_argument("--rps", type=float, default=40.0, help="requests per second of the load generator (1-50)")
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=None, help="the plugin's live view")
    parser.add_argument("--keep", action="store_true", help="keep the work directory with every process's log")
    parser.add_argument(
        "--scrape-interval", type=scrape_interval, default=1.0, help="Prometheus' scrape interval (default 1s)"
    )
    parser.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="istio",
        help="route the Canary by a VirtualService (istio) or a Gateway API HTTPRoute (gatewayapi)",
    )
    parser.add_argument("--hold", action="store_true", help="no scripted releases: stay up for your own kubectl")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="with --hold: write the kubeconfig here")
    args = parser.parse_args(argv)
    if not 1 <= args.rps <= 50:
        parser.error("--rps must be between 1 and 50 (the sandbox shares your machine)")
    if args.hold != (args.kubeconfig is not None):
        parser.error("--hold and --kubeconfig PATH go together")
    if args.kubeconfig is not None and (reason := refuse_to_overwrite(args.kubeconfig)) is not None:
        parser.error(f"--kubeconfig: {reason}")
    terminate_on_signals()
    if args.hold:
        try:
            return hold(HoldOptions(args.kubeconfig, args.rps, args.scrape_interval, args.keep, args.provider))
        except RuntimeError as error:
            print(f"sandbox failed: {error}", file=sys.stderr)
            return 1
    options = Options(
        output=args.output,
        quick=args.quick,
        rps=args.rps,
        live=args.live,
        keep=args.keep,
        scrape_interval_s=args.scrape_interval,
        provider=args.provider,
    )
    try:
        result = run(options)
    except KeyboardInterrupt:
        print("\nInterrupted: every sandbox process was stopped.", file=sys.stderr)
        return 130
    except RuntimeError as error:
        print(f"sandbox failed: {error}", file=sys.stderr)
        return 1
    for line in summary(result):
        print(line)
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
