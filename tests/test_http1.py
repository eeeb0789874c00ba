"""The small HTTP/1.1 reader the Kubernetes and Prometheus clients exchange through (controller/providers/http1.py).

Each test plays a server's bytes into a socket pair and checks what a caller gets: the body by every framing a
server may use, whether the connection may be reused, and clear errors for what is not HTTP.
"""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
from collections.abc import Iterator

import pytest

from controller.providers.http1 import Answer, Channel, MalformedAnswer, encode_request


@pytest.fixture
def pair() -> Iterator[tuple[Channel, socket.socket]]:
    client, server = socket.socketpair()
    client.settimeout(5)
    channel = Channel(client)
    try:
        yield channel, server
    finally:
        channel.close()
        client.close()
        server.close()


def _answer(pair: tuple[Channel, socket.socket], raw: bytes, method: str = "GET", close: bool = False) -> Answer:
    channel, server = pair
    server.sendall(raw)
    if close:
        server.shutdown(socket.SHUT_WR)
    return channel.read_answer(method)


def test_content_length_body_and_headers_by_any_case(pair: tuple[Channel, socket.socket]) -> None:
    answer = _answer(pair, b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}')
    assert (answer.status, answer.reason, answer.data) == (200, "OK", b'{"a":1}')
    headers = answer.headers
    assert headers["content-type"] == headers.get("Content-Type") == "application/json"
    assert "CONTENT-LENGTH" in headers
    assert answer.reusable


def test_two_answers_in_a_row_on_one_connection_are_kept_apart(pair: tuple[Channel, socket.socket]) -> None:
    channel, server = pair
    server.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" + b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ntwo"
    )
    assert channel.read_answer("GET").data == b"one"
    second = channel.read_answer("POST")
    assert (second.status, second.data) == (201, b"two")


def test_chunked_body_with_extensions_and_trailers(pair: tuple[Channel, socket.socket]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
    answer = _answer(pair, raw)
    assert answer.data == b"Wikipedia" and answer.reusable


def test_interim_answers_are_skipped(pair: tuple[Channel, socket.socket]) -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    answer = _answer(pair, raw)
    assert (answer.status, answer.data) == (200, b"ok")


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_answers_without_a_body_do_not_wait_for_one(
    pair: tuple[Channel, socket.socket], method: str, status: int
) -> None:
    answer = _answer(pair, f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode(), method=method)
    assert answer.data == b"" and answer.reusable


def test_a_body_without_a_length_is_read_until_close_and_the_connection_not_reused(
    pair: tuple[Channel, socket.socket],
) -> None:
    answer = _answer(pair, b"HTTP/1.1 200 OK\r\n\r\nall of it", close=True)
    assert answer.data == b"all of it" and not answer.reusable


@pytest.mark.parametrize(
    ("version", "connection", "reusable"),
    [("1.1", "", True), ("1.1", "Close", False), ("1.0", "", False), ("1.0", "keep-alive", True)],
)
def test_reuse_follows_the_version_and_the_connection_header(
    pair: tuple[Channel, socket.socket], version: str, connection: str, reusable: bool
) -> None:
    extra = f"Connection: {connection}\r\n" if connection else ""
    answer = _answer(pair, f"HTTP/{version} 200 OK\r\n{extra}Content-Length: 0\r\n\r\n".encode())
    assert answer.reusable is reusable


def test_gzip_bodies_are_decoded(pair: tuple[Channel, socket.socket]) -> None:
    body = gzip.compress(b'{"zipped":true}')
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    assert _answer(pair, raw).data == b'{"zipped":true}'


def test_repeated_and_folded_headers_are_joined(pair: tuple[Channel, socket.socket]) -> None:
    raw = b"HTTP/1.1 200 OK\r\nWarning: a\r\nWarning: b\r\nX-Long: one\r\n two\r\nContent-Length: 0\r\n\r\n"
    headers = _answer(pair, raw).headers
    assert headers["warning"] == "a, b" and headers["x-long"] == "one two"


def test_a_server_closing_before_answering_is_remote_disconnected(pair: tuple[Channel, socket.socket]) -> None:
    with pytest.raises(http.client.RemoteDisconnected):
        _answer(pair, b"", close=True)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not a header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "ended after 5 of 10 bytes"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "not a chunk size"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", "more than 100 headers"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 1\r\n\r\nx", "unsupported Content-Encoding"),
    ],
)
def test_what_is_not_http_is_a_malformed_answer_naming_the_problem(
    pair: tuple[Channel, socket.socket], raw: bytes, message: str
) -> None:
    with pytest.raises(MalformedAnswer, match=message):
        _answer(pair, raw, close=True)


def test_a_silent_server_times_out(pair: tuple[Channel, socket.socket]) -> None:
    channel, _ = pair
    channel.sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        channel.read_answer("GET")


def test_the_request_goes_out_whole_with_its_length() -> None:
    raw = encode_request("PATCH", "/a?b=c", {"Host": "h:1", "Content-Type": "application/json"}, b"{}")
    assert raw == b"PATCH /a?b=c HTTP/1.1\r\nHost: h:1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    assert encode_request("POST", "/", {"Host": "h"}, None).endswith(b"Content-Length: 0\r\n\r\n")
    assert b"Content-Length" not in encode_request("GET", "/", {"Host": "h"}, None)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a b", {"Host": "h"}),
        ("/a\r\nX: injected", {"Host": "h"}),
        ("/", {"Host": "h", "Authorization": "Bearer x\r\nX-Injected: 1"}),
        ("/", {"Host": "h", "Bad Name": "v"}),
        ("/", {"Host": "h", "Authorization": "Bearer \u2603"}),
    ],
)
def test_header_injection_and_unsendable_values_are_refused(target: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_request("GET", target, headers, None)


def test_exchange_over_a_real_server_thread() -> None:
    """The whole round trip: the request as the server reads it, and its answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.create_connection(listener.getsockname(), timeout=5) as sock:
        channel = Channel(sock)
        answer = channel.exchange("GET", "/ping", {"Host": "localhost"})
        channel.close()
    thread.join(5)
    listener.close()
    assert answer.data == b"pong"
    assert seen[0].startswith(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n")
