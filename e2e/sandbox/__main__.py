"""``python -m e2e.sandbox [--quick] [--output PNG] [--rps N] [--live/--no-live] [--keep]``: the sandbox.

Exit status 0 when every release ended as expected, 1 when one did not, 130 on Ctrl-C (after cleaning up).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from e2e.sandbox.scenario import Options, run, summary
from e2e.sandbox.stack import terminate_on_signals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coalmine sandbox", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=None, help="where to write the PNG (default out/sandbox-….png)")
    parser.add_argument("--quick", action="store_true", help="shorter pauses and waits (used by the tests)")
    parser.add_argument("--rps", type=float, default=40.0, help="requests per second of the load generator (1-50)")
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=None, help="the plugin's live view")
    parser.add_argument("--keep", action="store_true", help="keep the work directory with every process's log")
    args = parser.parse_args(argv)
    if not 1 <= args.rps <= 50:
        parser.error("--rps must be between 1 and 50 (the sandbox shares your machine)")
    terminate_on_signals()
    try:
        result = run(Options(output=args.output, quick=args.quick, rps=args.rps, live=args.live, keep=args.keep))
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
