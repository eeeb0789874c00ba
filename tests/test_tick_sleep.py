"""The tick daemon's sleep (controller.handlers.common._sleep_unless): it ends at its time or at once when the
daemon is stopped, and leaves nothing behind (no callbacks on the stop signal, no exceptions as garbage)."""

from __future__ import annotations

import asyncio
import gc
import time

from controller.handlers.common import _sleep_unless


async def test_the_sleep_lasts_its_time_and_leaves_no_callback_on_the_stop_signal() -> None:
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = time.monotonic()
    await _sleep_unless(stop, 0.1)
    assert 0.09 <= time.monotonic() - started < 2
    assert not stop.done()
    assert not stop._callbacks  # type: ignore[attr-defined]  # the sleep's wake-up was removed


async def test_a_stopped_daemon_wakes_at_once() -> None:
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_later(0.05, stop.set_result, None)
    started = time.monotonic()
    await _sleep_unless(stop, 30)
    assert time.monotonic() - started < 5


async def test_thousands_of_sleeps_leave_no_cyclic_garbage() -> None:
    """kopf's ``stopped.wait(t)`` left a TimeoutError and two tasks per sleep for the garbage collector."""
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(2000):
            await _sleep_unless(stop, 0)
        leftover = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert leftover < 200
