"""Blocking-style code run cooperatively on the event loop (controller.providers.cooperative), and the HTTP clients
over it: waits go to the loop (other work runs meanwhile), results, errors, timeouts and cancellation arrive as a
thread would see them, and HTTPS keeps its settings."""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from kubernetes.client import Configuration
from test_prometheus_provider import _answer_json, _Pki, _scripted, pki  # noqa: F401 (pki: a fixture)
from urllib3 import Timeout
from urllib3 import exceptions as u3
from urllib3.util.retry import Retry

from controller.kube.api import DEPLOYMENTS
from controller.kube.client import KubeClient
from controller.kube.errors import ApiUnavailable
from controller.providers.cooperative import (
    await_only,
    cooperating,
    offload,
    run_cooperatively,
    sleep,
    wait_readable,
)
from controller.providers.keepalive import OriginPool

TIMEOUT = Timeout(connect=5, read=5)


class _LoopTicks:
    """Counts the event loop's turns every 10 ms: a count near the elapsed time shows the loop was never blocked."""

    def __init__(self) -> None:
        self.count = 0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._task.cancel()


def _pool(url: str) -> OriginPool:
    from urllib3 import HTTPConnectionPool

    host, port = url.removeprefix("http://").split(":")
    label = HTTPConnectionPool(host, int(port))
    return OriginPool.for_origin(url, tls={}, max_idle=4, label=label)


async def test_the_function_s_result_and_its_exception_come_back_as_from_a_thread() -> None:
    def answer(a: int, *, b: int) -> int:
        assert cooperating()
        return a + b

    def fail() -> None:
        raise KeyError("missing")

    assert await run_cooperatively(answer, 2, b=3) == 5
    with pytest.raises(KeyError, match="missing"):
        await run_cooperatively(fail)
    assert not cooperating()
    with pytest.raises(RuntimeError, match="outside run_cooperatively"):
        await_only(asyncio.sleep(0))


async def test_a_wait_for_a_socket_lets_other_work_run_on_the_same_thread() -> None:
    """The first function waits for bytes only the second sends: blocking the thread would never finish."""
    left, right = socket.socketpair()
    left.setblocking(False)
    threads: list[int] = []

    def receive() -> bytes:
        threads.append(threading.get_ident())
        wait_readable(left, timeout=5)
        return left.recv(16)

    def send() -> None:
        threads.append(threading.get_ident())
        right.sendall(b"hello")

    try:
        received, _ = await asyncio.wait_for(
            asyncio.gather(run_cooperatively(receive), run_cooperatively(send)), timeout=10
        )
    finally:
        left.close()
        right.close()
    assert received == b"hello"
    assert threads == [threading.get_ident()] * 2  # both on the loop's own thread


async def test_a_wait_times_out_and_leaves_nothing_registered_with_the_loop() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)

    def wait_briefly() -> None:
        wait_readable(left, timeout=0.05)

    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await run_cooperatively(wait_briefly)
        assert time.monotonic() - started < 2
        right.sendall(b"x")  # the same socket can be waited for again: the reader was removed
        await run_cooperatively(wait_readable, left, 5)
    finally:
        left.close()
        right.close()


async def test_cancelling_the_caller_interrupts_the_function_at_its_wait() -> None:
    seen: list[str] = []

    def wait_long() -> None:
        try:
            sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled at the wait")
            raise

    task = asyncio.create_task(run_cooperatively(wait_long))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled at the wait"]


async def test_sleep_and_offload_let_the_loop_run_and_offload_uses_a_worker_thread() -> None:
    def slow_then_where() -> tuple[int, int]:
        sleep(0.2)
        return threading.get_ident(), offload(threading.get_ident)

    ticks = _LoopTicks()
    try:
        here, there = await run_cooperatively(slow_then_where)
    finally:
        ticks.stop()
    assert ticks.count >= 5  # the loop ran during the sleep
    assert here == threading.get_ident() != there
    assert offload(threading.get_ident) == threading.get_ident()  # outside: called directly


async def test_context_variables_are_the_caller_s() -> None:
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="unset")
    variable.set("the caller's")
    assert await run_cooperatively(variable.get) == "the caller's"


def _slowly(handler: BaseHTTPRequestHandler, _: int) -> None:
    time.sleep(0.3)
    _answer_json(handler, 200, b'{"ok": true}')


async def test_an_http_exchange_waits_on_the_loop_and_reuses_its_connection() -> None:
    with _scripted(_slowly) as server:
        pool = _pool(server.url)
        ticks = _LoopTicks()
        try:
            answers = [await run_cooperatively(pool.urlopen, "GET", "/x", {}, TIMEOUT, Retry(0)) for _ in range(2)]
        finally:
            ticks.stop()
            pool.close()
    assert [json.loads(a.data) for a in answers] == [{"ok": True}] * 2
    assert ticks.count >= 20  # two answers 0.3 s late each: the loop kept running meanwhile
    assert server.connections == 1


async def test_a_slow_answer_is_a_read_timeout_as_in_a_thread() -> None:
    with _scripted(_slowly) as server:
        pool = _pool(server.url)
        try:
            with pytest.raises(u3.MaxRetryError) as raised:  # as urllib3's urlopen reports it, retries used up
                await run_cooperatively(pool.urlopen, "GET", "/x", {}, Timeout(connect=5, read=0.05), Retry(0))
            assert isinstance(raised.value.reason, u3.ReadTimeoutError)
        finally:
            pool.close()


async def test_https_to_the_api_server_keeps_its_ca_and_one_connection(pki: _Pki) -> None:  # noqa: F811
    body = json.dumps({"kind": "Deployment", "metadata": {"name": "app", "namespace": "ns"}}).encode()

    def answer(handler: Any, _: int) -> None:
        _answer_json(handler, 200, body)

    with _scripted(answer, tls=pki.server_context()) as server:
        address = server.url.replace("127.0.0.1", "localhost")
        configuration = Configuration(host=address)
        configuration.ssl_ca_cert = str(pki.ca)
        trusting = KubeClient.from_configuration(configuration, timeout_s=5)

        def read_three() -> list[str]:
            return [(trusting.get(DEPLOYMENTS, "ns", "app") or {})["metadata"]["name"] for _ in range(3)]

        try:
            names = await run_cooperatively(read_three)
        finally:
            trusting.close()
        assert names == ["app"] * 3
        assert server.connections == 1
        untrusting = KubeClient.from_configuration(Configuration(host=address), timeout_s=5)
        try:
            with pytest.raises(ApiUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await run_cooperatively(untrusting.get, DEPLOYMENTS, "ns", "app")
        finally:
            untrusting.close()


async def test_a_retry_after_pause_is_a_loop_sleep() -> None:
    def busy_then_fine(handler: BaseHTTPRequestHandler, earlier: int) -> None:
        if earlier == 0:
            handler.send_response(503)
            handler.send_header("Retry-After", "1")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        _answer_json(handler, 200, b'{"ok": true}')

    retries = Retry(total=2, status_forcelist=[503], allowed_methods=["GET"])
    with _scripted(busy_then_fine) as server:
        pool = _pool(server.url)
        ticks = _LoopTicks()
        started = time.monotonic()
        try:
            answer = await run_cooperatively(pool.urlopen, "GET", "/x", {}, TIMEOUT, retries)
        finally:
            ticks.stop()
            pool.close()
    assert answer.status == 200
    assert time.monotonic() - started >= 0.9  # the server's Retry-After was obeyed
    assert ticks.count >= 40  # and the loop ran meanwhile
