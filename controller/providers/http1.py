"""One HTTP/1.1 exchange over an open socket, parsed by a small reader instead of ``http.client``.

Why: the operator sends about six requests per tick (three Prometheus queries, an Event, a route change, a
status write), thousands of ticks a minute, and its scale benchmark is CPU-bound. ``http.client`` sends the request
line, headers and body in separate writes and parses every answer's headers with the ``email`` package; with
urllib3's bookkeeping on top, an exchange costs about 200 µs of CPU, of which the bytes on the wire need about 40.
:class:`Channel` keeps what those layers guarantee and drops the rest:

- the request goes out in one write; header names and values with line breaks (header injection) and targets
  with spaces or control characters are refused with ``ValueError``, as ``http.client`` refuses them;
- the answer is read completely: ``Content-Length``, ``Transfer-Encoding: chunked`` (trailers skipped) or, for
  neither, until the server closes; interim ``1xx`` answers are skipped; ``gzip``/``deflate`` bodies are decoded;
- limits as ``http.client``'s: a line of at most 64 KiB, at most 100 headers;
- whether the connection may be reused (HTTP/1.1 without ``Connection: close``, HTTP/1.0 with ``keep-alive``,
  and the body's end known).

Connecting (TCP, TLS, hostname checks, proxies' tunnels) stays with urllib3's connection classes; a
:class:`Channel` is given the connected socket. Failures are the standard ones: ``OSError`` (``TimeoutError`` when
the socket's timeout passes), :class:`http.client.RemoteDisconnected` when the server closes before answering
(what a reused connection the server had already closed looks like), and :class:`MalformedAnswer` for bytes that
are not an HTTP answer. After any failure the channel must be closed, not reused.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.providers.cooperative import cooperating, wait_for_tls, wait_readable, wait_writable

__all__ = ["Answer", "Channel", "Headers", "MalformedAnswer", "encode_request"]

MAX_LINE = 65536
MAX_HEADERS = 100
_READ_SIZE = 65536
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class MalformedAnswer(http.client.HTTPException):
    """What the server sent is not an HTTP/1.x answer (a bad status line, header, length or chunk)."""


class Headers(dict[str, str]):
    """An answer's headers keyed by lower-case name; ``get``/``[]``/``in`` ignore case, like urllib3's and
    ``requests``' header mappings. A repeated header's values are joined with ``", "``."""

    __slots__ = ()

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


@dataclass(slots=True)
class Answer:
    """A whole answer: status, reason, headers, the (decoded) body, and whether the connection may be reused."""

    status: int
    reason: str
    headers: Headers
    data: bytes
    reusable: bool

    def get_redirect_location(self) -> str | bool | None:
        """As urllib3's responses answer it (its ``Retry`` asks): the ``Location`` of a redirect, else False."""
        if self.status in _REDIRECTS:
            location: str | None = self.headers.get("location")
            return location
        return False


def encode_request(method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    """The request's bytes. ``headers`` must include ``Host``; ``Content-Length`` is added for a body (and for an
    empty POST/PUT/PATCH, as ``http.client`` does)."""
    if _UNSAFE_TARGET.search(target) or _UNSAFE_TARGET.search(method):
        raise ValueError(f"the request target {target!r} or method {method!r} has a space or control character")
    lines = [f"{method} {target} HTTP/1.1"]
    for name, value in headers.items():
        if ":" in name or _UNSAFE_TARGET.search(name) or "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"invalid header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    if body is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")  # UnicodeEncodeError is a ValueError too
    return head + body if body else head


class Channel:
    """A connected socket and its read buffer: one request at a time, each answer read completely.

    Call :meth:`prepare` before each exchange: in a plain thread the socket blocks (``timeout`` bounds each read);
    inside :func:`~controller.providers.cooperative.run_cooperatively` it is non-blocking and every wait for the
    server is a wait on the event loop, bounded the same way.
    """

    __slots__ = ("_buffer", "_cooperative", "_start", "_timeout", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._start = 0  # where the unread bytes of the buffer begin
        self._cooperative = False
        self._timeout: float | None = sock.gettimeout()

    def close(self) -> None:
        self._buffer.clear()
        self._start = 0

    def prepare(self, timeout: float | None) -> None:
        """Bound each wait of the next exchange by ``timeout`` seconds (None: no bound), in the caller's mode."""
        self._cooperative = cooperating()
        self._timeout = timeout
        self.sock.settimeout(0.0 if self._cooperative else timeout)

    def exchange(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None = None) -> Answer:
        """Send the request and read its whole answer (raises as the module doc says)."""
        self.send(encode_request(method, target, headers, body))
        return self.read_answer(method)

    def send(self, data: bytes) -> None:
        """Send all of ``data``."""
        if not self._cooperative:
            self.sock.sendall(data)
            return
        view = memoryview(data)
        while view:
            try:
                view = view[self.sock.send(view) :]
            except (BlockingIOError, InterruptedError):
                wait_writable(self.sock, self._timeout)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as error:
                wait_for_tls(error, self.sock, self._timeout)

    def _fill(self) -> bool:
        """Read what the server sent next into the buffer; False when it has closed the connection."""
        if self._start:
            del self._buffer[: self._start]
            self._start = 0
        while True:
            try:
                chunk = self.sock.recv(_READ_SIZE)
            except (BlockingIOError, InterruptedError):
                if not self._cooperative:
                    raise
                wait_readable(self.sock, self._timeout)
                continue
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as error:
                if not self._cooperative:
                    raise
                wait_for_tls(error, self.sock, self._timeout)
                continue
            if not chunk:
                return False
            self._buffer += chunk
            return True

    def _take(self, end: int) -> bytes:
        data = bytes(self._buffer[self._start : end])
        self._start = end
        return data

    def read_answer(self, method: str) -> Answer:
        while True:
            version, status, reason = self._status_line()
            headers = self._headers()
            if not 100 <= status < 200 or status == 101:
                break
        persistent = _persistent(version, headers.get("connection", ""))
        if method == "HEAD" or status in _NO_BODY or 100 <= status < 200:
            data, delimited = b"", True
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            data, delimited = self._chunked(), True
        elif "content-length" in headers:
            data, delimited = self._exactly(_content_length(headers["content-length"])), True
        else:
            data, delimited = self._until_closed(), False
        if self._start == len(self._buffer):  # all read: do not keep the answer's bytes while idle
            self._buffer.clear()
            self._start = 0
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity" and data:
            data = _decoded(data, encoding)
        return Answer(status, reason, headers, data, persistent and delimited)

    def _line(self) -> bytes:
        """The next line with its line break (without one at the end of the stream; empty after it)."""
        searched = self._start
        while True:
            found = self._buffer.find(b"\n", searched)
            if found >= 0:
                if found + 1 - self._start > MAX_LINE:
                    break
                return self._take(found + 1)
            if len(self._buffer) - self._start > MAX_LINE:
                break
            searched = len(self._buffer) - self._start  # relative: _fill moves the unread bytes to the front
            if not self._fill():
                return self._take(len(self._buffer))
            searched += self._start
        raise MalformedAnswer("a line of the answer is longer than 64 KiB")

    def _status_line(self) -> tuple[bytes, int, str]:
        line = self._line()
        if not line:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        version, _, rest = line.rstrip(b"\r\n").partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise MalformedAnswer(f"not an HTTP/1.x status line: {line[:80]!r}")
        return version, int(code), reason.decode("latin-1").strip()

    def _headers(self) -> Headers:
        headers = Headers()
        last = ""
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return headers
            if not line:
                raise MalformedAnswer("the answer ended inside its headers")
            if line[:1] in (b" ", b"\t") and last:  # an obsolete folded continuation line
                dict.__setitem__(headers, last, headers[last] + " " + line.strip().decode("latin-1"))
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise MalformedAnswer(f"not a header line: {line[:80]!r}")
            last = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            known = dict.get(headers, last)
            dict.__setitem__(headers, last, text if known is None else f"{known}, {text}")
        raise MalformedAnswer(f"more than {MAX_HEADERS} headers")

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) - self._start < size:
            if not self._fill():
                raise MalformedAnswer(f"the answer ended after {len(self._buffer) - self._start} of {size} bytes")
        return self._take(self._start + size)

    def _until_closed(self) -> bytes:
        while self._fill():
            pass
        return self._take(len(self._buffer))

    def _chunked(self) -> bytes:
        parts = []
        while True:
            line = self._line()
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise MalformedAnswer(f"not a chunk size: {line[:80]!r}") from None
            if size < 0:
                raise MalformedAnswer(f"not a chunk size: {line[:80]!r}")
            if size == 0:
                break
            parts.append(self._exactly(size))
            if self._line() not in (b"\r\n", b"\n"):
                raise MalformedAnswer("a chunk is longer than its size says")
        while True:  # trailers, up to the blank line
            line = self._line()
            if line in (b"\r\n", b"\n"):
                return b"".join(parts)
            if not line:
                raise MalformedAnswer("the answer ended inside its trailers")


def _persistent(version: bytes, connection: str) -> bool:
    tokens = {token.strip() for token in connection.lower().split(",")}
    return "keep-alive" in tokens if version == b"HTTP/1.0" else "close" not in tokens


def _content_length(value: str) -> int:
    """A Content-Length; a repeated header must repeat one value (RFC 9110 §8.6)."""
    lengths = {part.strip() for part in value.split(",")}
    if len(lengths) != 1:
        raise MalformedAnswer(f"conflicting Content-Length values {value!r}")
    text = lengths.pop()
    if not text.isdigit():
        raise MalformedAnswer(f"not a Content-Length: {value!r}")
    return int(text)


def _decoded(data: bytes, encoding: str) -> bytes:
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(data, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:  # some servers send raw deflate without the zlib wrapper
                return zlib.decompress(data, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise MalformedAnswer(f"cannot decode a {encoding} body: {exc}") from None
    raise MalformedAnswer(f"unsupported Content-Encoding {encoding!r}")
