"""A bounded load generator: a steady request rate for a fixed time, then a tally by status and version.

``python -m e2e.sandbox.loadgen --url http://127.0.0.1:P --rps 20 --duration 60``

Requests are scheduled open-loop (one every ``1/rps`` s, whether or not earlier ones have answered, like real
users), with at most ``--concurrency`` in flight: a request that would exceed it is counted as ``skipped`` rather
than queued, so a slow canary shows up as latency and errors, not as a silently lower rate. Hard limits: never
more than ``--max-requests`` (default ``rps × duration``, at most 1,000,000) and never longer than ``duration``
plus one request timeout. The report (JSON on stdout, ``--progress`` adds a line per ``--progress`` seconds on
stderr) counts responses by status code (``error`` for connection failures and timeouts) and by the
``X-Version`` header the backends send.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aiohttp

from e2e.sandbox.backend import VERSION_HEADER

ABSOLUTE_MAX_REQUESTS = 1_000_000


@dataclass
class LoadReport:
    """What was sent and what came back (mutable while the run lasts; read it after :func:`run_load`)."""

    sent: int = 0
    skipped: int = 0
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    by_version: collections.Counter[str] = field(default_factory=collections.Counter)
    elapsed_s: float = 0.0

    @property
    def answered(self) -> int:
        return sum(n for status, n in self.by_status.items() if status != "error")

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "skipped": self.skipped,
            "answered": self.answered,
            "by_status": dict(sorted(self.by_status.items())),
            "by_version": dict(sorted(self.by_version.items())),
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--header wants 'Name: value', got {value!r}")
    return name.strip(), content.strip()


async def run_load(
    url: str,
    rps: float,
    duration_s: float,
    *,
    max_requests: int | None = None,
    concurrency: int = 64,
    timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
    progress_s: float = 0.0,
    report: LoadReport | None = None,
) -> LoadReport:
    """Send ``rps`` requests per second to ``url`` for ``duration_s`` seconds (bounded; see the module docstring).

    Pass a ``report`` to watch the counts while it runs (the sandbox's live view does).
    """
    if rps <= 0 or duration_s <= 0:
        raise ValueError("rps and duration must be positive")
    report = report if report is not None else LoadReport()
    budget = min(ABSOLUTE_MAX_REQUESTS, max_requests if max_requests is not None else math.ceil(rps * duration_s))
    gate = asyncio.Semaphore(concurrency)
    in_flight: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    next_progress = started + progress_s if progress_s > 0 else math.inf

    async def one(session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(url, headers=dict(headers or {})) as response:
                await response.read()
                report.by_status[str(response.status)] += 1
                report.by_version[response.headers.get(VERSION_HEADER, "unknown")] += 1
        except (aiohttp.ClientError, TimeoutError):
            report.by_status["error"] += 1
        finally:
            gate.release()

    client_timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=client_timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        for index in range(budget):
            due = started + index / rps
            if due - started >= duration_s:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if time.monotonic() >= next_progress:
                print(json.dumps(report.as_dict()), file=sys.stderr, flush=True)
                next_progress += progress_s
            if gate.locked():
                report.skipped += 1
                continue
            await gate.acquire()
            report.sent += 1
            task = asyncio.create_task(one(session))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=timeout_s + 1.0)
        for task in list(in_flight):
            task.cancel()
    report.elapsed_s = time.monotonic() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="where to send GET requests")
    parser.add_argument("--rps", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds to run")
    parser.add_argument("--max-requests", type=int, default=None, help="hard cap (default rps × duration)")
    parser.add_argument("--concurrency", type=int, default=64, help="most requests in flight")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--header", type=_header, action="append", default=[], help="'Name: value' (repeatable)")
    parser.add_argument("--progress", type=float, default=0.0, help="print the running tally every N s (stderr)")
    args = parser.parse_args(argv)
    if args.rps <= 0 or args.duration <= 0 or args.concurrency <= 0:
        parser.error("--rps, --duration and --concurrency must be positive")
    report = asyncio.run(
        run_load(
            args.url,
            args.rps,
            args.duration,
            max_requests=args.max_requests,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            headers=dict(args.header),
            progress_s=args.progress,
        )
    )
    print(json.dumps(report.as_dict()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
