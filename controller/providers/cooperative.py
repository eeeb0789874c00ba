"""Blocking-style code that waits on the event loop instead of in a thread: greenlets, as SQLAlchemy's asyncio does.

Why: a tick's reads and writes (the Kubernetes API, Prometheus) are written as plain blocking calls, and used to
run in worker threads. At two thousand Canaries that is hundreds of hand-offs a second between the event loop and
the threads, each a pass of the GIL: the benchmark spent about as much CPU handing the GIL around as doing the
work, and the operator topped out near 130 of 200 ticks a second at well under one core.

:func:`run_cooperatively` runs such a blocking function in a greenlet on the event loop's own thread. The sockets
it uses (:class:`controller.providers.http1.Channel`) are non-blocking while it runs: where a thread would block,
the greenlet hands the loop a future (:func:`wait_readable`, :func:`sleep`) and resumes when it is done, so other
ticks run meanwhile and no thread or GIL hand-off is involved. Outside :func:`run_cooperatively` (the CLI, tests,
the watch threads) the same code blocks as before.

What cannot wait on the loop is handed to a worker thread (:func:`offload`): connecting (DNS, TCP, the TLS
handshake, through urllib3's connection classes) and requests through a proxy (urllib3 end to end).

The rules for code run this way: it must not block otherwise (no ``time.sleep``, no blocking socket calls except
through :func:`offload`) and must not hold a ``threading`` lock across a wait — other greenlets run on the same
thread and would deadlock on it. A cancelled caller (the operator shutting down) raises ``CancelledError`` at the
greenlet's current wait, as an ``await`` would.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

import greenlet  # type: ignore[import-untyped]  # no type information shipped

__all__ = [
    "await_only",
    "cooperating",
    "offload",
    "run_cooperatively",
    "sleep",
    "wait_for_tls",
    "wait_readable",
    "wait_writable",
]

P = ParamSpec("P")
T = TypeVar("T")


class _Cooperative(greenlet.greenlet):  # type: ignore[misc]  # greenlet ships no stubs for subclassing
    """A greenlet started by :func:`run_cooperatively`; its parent is the loop's greenlet that drives it."""


def cooperating() -> bool:
    """True inside :func:`run_cooperatively` (waits go to the event loop), False in a plain thread."""
    return isinstance(greenlet.getcurrent(), _Cooperative)


def await_only(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` on the event loop from inside :func:`run_cooperatively`, and return its result."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Cooperative):
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never awaited: no "coroutine was never awaited" warning on top of the error
        raise RuntimeError("await_only() called outside run_cooperatively()")
    return cast(T, current.parent.switch(awaitable))


async def run_cooperatively(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking-style ``function`` on the loop's thread, its waits on the loop (see the module doc).

    Like ``asyncio.to_thread``, it runs in a copy of the caller's context variables.
    """
    task = _Cooperative(function)
    task.gr_context = contextvars.copy_context()
    step = task.switch(*args, **kwargs)
    while not task.dead:
        try:
            value = await step
        except BaseException as error:
            step = task.throw(error)
        else:
            step = task.switch(value)
    return cast(T, step)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("timed out"))


def _wait_fd(sock: socket.socket, timeout: float | None, *, writing: bool) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()
    if fd < 0:
        raise OSError("the socket is closed")
    (loop.add_writer if writing else loop.add_reader)(fd, _settle, future)
    expiry = loop.call_later(timeout, _expire, future) if timeout is not None else None
    try:
        await_only(future)
    finally:
        (loop.remove_writer if writing else loop.remove_reader)(fd)
        if expiry is not None:
            expiry.cancel()


def wait_readable(sock: socket.socket, timeout: float | None) -> None:
    """Until ``sock`` has something to read; ``TimeoutError`` after ``timeout`` seconds (None: no limit)."""
    _wait_fd(sock, timeout, writing=False)


def wait_writable(sock: socket.socket, timeout: float | None) -> None:
    """Until ``sock`` can take more bytes; ``TimeoutError`` after ``timeout`` seconds (None: no limit)."""
    _wait_fd(sock, timeout, writing=True)


def wait_for_tls(error: ssl.SSLError, sock: socket.socket, timeout: float | None) -> None:
    """Wait for what a non-blocking TLS socket asked for (``SSLWantReadError`` or ``SSLWantWriteError``)."""
    if isinstance(error, ssl.SSLWantWriteError):
        wait_writable(sock, timeout)
    else:
        wait_readable(sock, timeout)


def sleep(seconds: float) -> None:
    """``time.sleep`` that, inside :func:`run_cooperatively`, lets the loop run meanwhile."""
    if seconds <= 0:
        return
    if cooperating():
        await_only(asyncio.sleep(seconds))
    else:
        time.sleep(seconds)


def offload(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call blocking ``function``: in a worker thread when inside :func:`run_cooperatively`, else directly."""
    if not cooperating():
        return function(*args, **kwargs)
    return await_only(asyncio.to_thread(function, *args, **kwargs))
