"""Chaos bench: 100 ``kill -9``s of the operator during sandbox rollouts, and the tally of what went wrong.

``python bench/chaos.py [--kills 100] [--seed 7] [--markdown docs/benchmarks-chaos.md]``

Runs :func:`e2e.sandbox.chaos.run_chaos` (see there for what is checked) and prints one table: kills, rollouts,
correct outcomes, weight violations, wrong promotion counts, duplicate and lost Events, duplicate and lost
notifications, and redeliveries of an already-sent notification id. Needs Debian's prometheus (``make prometheus``).
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the checkout's e2e is not installed: the path above finds it
from e2e.sandbox.chaos import ChaosReport, run_chaos
from e2e.sandbox.stack import terminate_on_signals


def table(report: ChaosReport) -> str:
    rows = [f"| {name} | {value} |" for name, value in report.tally().items()]
    return "\n".join(["| measure | count |", "|---|---|", *rows])


def details(report: ChaosReport) -> str:
    lines = ["| # | release | expected | outcome | kills | problems |", "|---|---|---|---|---|---|"]
    for index, rollout in enumerate(report.rollouts, 1):
        problems = [
            *rollout.weight_violations,
            *([f"promotions: {rollout.promotions}"] if rollout.promoted_wrongly else []),
            *rollout.duplicate_events,
            *(f"lost: {m}" for m in rollout.lost_events),
            *rollout.duplicate_notifications,
            *(f"lost: {m}" for m in rollout.lost_notifications),
        ]
        lines.append(
            f"| {index} | {rollout.release.version} (ERROR_RATE={rollout.release.error_rate:g}) | "
            f"{rollout.release.expect} | {rollout.phase} | {rollout.kills} | {'; '.join(problems) or 'none'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=100, help="at least this many kills")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the result as a Markdown page")
    args = parser.parse_args(argv)
    terminate_on_signals()  # SIGTERM stops the sandbox cleanly too
    report = run_chaos(min_kills=args.kills, min_rollouts=4, seed=args.seed, echo=lambda line: print(line, flush=True))
    summary = table(report)
    print(summary)
    print(f"\n{report.operator_starts} operator starts, {report.elapsed_s:.0f} s")
    if args.markdown is not None:
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        args.markdown.write_text(
            "# Chaos benchmark: killing the operator during rollouts\n\n"
            f"`python bench/chaos.py --kills {args.kills} --seed {args.seed}`, run {when} on {platform.machine()} "
            f"({report.elapsed_s:.0f} s, {report.operator_starts} operator starts). What each line means is in "
            "[the sandbox page](sandbox.md#the-chaos-test).\n\n"
            f"{summary}\n\n## Each rollout\n\n{details(report)}\n"
        )
    clean = all(r.clean for r in report.rollouts) and report.kills >= args.kills
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
