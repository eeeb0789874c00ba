"""When each object's ticks run: a fixed grid per object, its phase spread over the period by a hash of its uid.

Why a grid with a phase: ticks are what the operator spends its CPU on, and ticks that start together queue
together. An object's daemon starts when kopf first sees it, so the objects created together, and every object when
the operator (re)starts, would otherwise tick in one burst every period: with 500 Canaries at a 10 s tick, half of
the ticks waited more than a second for the ones ahead of them. Spread by the uid's hash, the same number of ticks
arrives evenly over the period and each is done long before the next arrives.

The engine is given the slot's time as its ``now``, not the moment the event loop got round to it. A look falls due
``interval`` after the previous look's ``now``; with slots exactly one period apart, a tick period equal to the
interval makes every tick look, however late the busy loop woke it. A tick that is later than a whole period runs
for the latest slot it has passed (missed slots are not made up, as Kubernetes controllers resync), so ``now`` is
never more than a period behind the clock and never goes backwards.

Pure functions of (uid, period, time); the daemon in :mod:`controller.handlers.common` sleeps between slots.
"""

from __future__ import annotations

import math
import zlib

__all__ = ["first_slot", "latest_slot", "tick_phase"]


def tick_phase(uid: str, period: float) -> float:
    """The object's offset within the period, in ``[0, period)``: the same for every operator process."""
    return zlib.crc32(uid.encode()) / 2**32 * period


def latest_slot(now: float, phase: float, period: float) -> float:
    """The last slot at or before ``now``."""
    return phase + math.floor((now - phase) / period) * period


def first_slot(now: float, phase: float, period: float) -> float:
    """The first slot at or after ``now`` (a daemon's first tick runs at once; it joins its grid here)."""
    slot = latest_slot(now, phase, period)
    return slot if slot >= now else slot + period
