"""Keep-alive connections to one server, and one request over them with urllib3's retry rules.

Why not ``urllib3.HTTPConnectionPool.urlopen``: on every call it re-validates and percent-normalises the whole
request target in Python (about 30 µs for a PromQL query string that is already encoded) and does about 80 µs of
other bookkeeping (timeouts cloned, the answer wired back to its pool, proxy checks), and ``http.client`` under it
sends in several writes and parses headers with the ``email`` package. This module keeps what matters from urllib3:
the connections are made by its ``HTTPConnection``/``HTTPSConnection`` (TLS, hostname checks, ``TCP_NODELAY``) or
by a urllib3 pool's own factory (so the Kubernetes client's TLS settings apply unchanged), and failures go through
its ``Retry`` as ``urlopen`` sends them, so callers see the same errors. The exchange itself is
:class:`~controller.providers.http1.Channel`'s: one write, a small parser, about a fifth of the CPU.

A connection the server closed while idle is noticed before reuse (as urllib3 does); if the server closes it
between that check and our request, the request is sent once more on a new connection, without using up a
retry, as browsers and Go's ``net/http`` do: the server never answered, and the server had closed the connection
before our request reached it. (Coalmine's writes are safe to repeat in any case: Events have deterministic names
and replacements carry a ``resourceVersion``.)

Inside :func:`~controller.providers.cooperative.run_cooperatively` (the operator's ticks) the exchange waits on the
event loop instead of blocking a thread; connecting, which urllib3 does blocking, goes to a worker thread, and
retry pauses are loop sleeps. The idle connections are shared by threads and ticks alike.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, cast

from urllib3 import BaseHTTPResponse, HTTPConnectionPool
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import Timeout, parse_url
from urllib3.util.retry import Retry

from controller.providers.cooperative import cooperating, offload, sleep
from controller.providers.http1 import Answer, Channel, encode_request

__all__ = ["OriginPool"]

# What a reused connection raises when the server had closed it just before our request.
_CLOSED_BY_SERVER = (http.client.RemoteDisconnected, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Link:
    """One connection: urllib3's (which connects and owns the socket) and, once connected, its channel."""

    __slots__ = ("channel", "conn")

    def __init__(self, conn: HTTPConnection) -> None:
        self.conn = conn
        self.channel: Channel | None = None

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.conn.close()


def _pause(retries: Retry, response: BaseHTTPResponse | None = None) -> None:
    """``retries.sleep(response)`` (``Retry-After`` or the backoff), letting the event loop run when cooperating."""
    if not cooperating():
        retries.sleep(response)
        return
    delay = retries.get_retry_after(response) if response is not None and retries.respect_retry_after_header else None
    sleep(delay if delay else retries.get_backoff_time())  # as Retry.sleep: a zero Retry-After means the backoff


def _close_all(links: list[_Link]) -> None:
    while links:
        links.pop().close()


def host_header(scheme: str, host: str, port: int | None) -> str:
    """The ``Host`` header ``http.client`` would send: the port only when it is not the scheme's default."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


class OriginPool:
    """Idle keep-alive connections to one ``scheme://host:port``, newest first; safe to share between threads.

    At most ``max_idle`` idle connections are kept; more concurrent requests open connections that are closed after
    use. ``label`` is the urllib3 pool for the same origin, named in errors exactly as ``urlopen`` names itself.
    Build it with :meth:`for_origin` (TLS settings given) or :meth:`over_pool` (a urllib3 pool's connections).
    """

    def __init__(
        self, connect: Callable[[], HTTPConnection], host: str, *, max_idle: int, label: HTTPConnectionPool
    ) -> None:
        self._connect = connect
        self._host = host
        self._idle: list[_Link] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle
        self._label = label
        self._closed = False
        # A pool dropped without close() must not leave its sockets open (urllib3's pools do the same).
        weakref.finalize(self, _close_all, self._idle)

    @classmethod
    def for_origin(cls, origin: str, *, tls: Mapping[str, Any], max_idle: int, label: HTTPConnectionPool) -> OriginPool:
        """Connections to ``origin`` made with urllib3's connection classes and the TLS keyword arguments given."""
        parts = parse_url(origin)
        if parts.host is None:
            raise ValueError(f"no host in {origin!r}")
        connect: Callable[[], HTTPConnection] = (
            partial(HTTPSConnection, parts.host, parts.port, **tls)
            if parts.scheme == "https"
            else partial(HTTPConnection, parts.host, parts.port)
        )
        host = host_header(parts.scheme or "http", parts.host, parts.port)
        return cls(connect, host, max_idle=max_idle, label=label)

    @classmethod
    def over_pool(cls, pool: HTTPConnectionPool, *, max_idle: int) -> OriginPool:
        """Connections made exactly as ``pool`` makes its own (its TLS, client certificate and hostname settings).

        ``_new_conn`` is urllib3's factory method for a pool's connections (stable since urllib3 1.x); using it is
        what keeps, say, the Kubernetes client's ``ssl_ca_cert``/``cert_file``/``tls_server_name`` in force.
        """
        connect = cast(Callable[[], HTTPConnection], pool._new_conn)
        return cls(connect, host_header(pool.scheme, pool.host, pool.port), max_idle=max_idle, label=pool)

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            self._closed = True
            _close_all(self._idle)

    def urlopen(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        timeout: Timeout,
        retries: Retry,
        body: bytes | None = None,
    ) -> Answer:
        """Send ``method target`` (already percent-encoded) and read the whole answer, retrying as ``retries`` says.

        Raises urllib3's exceptions as ``HTTPConnectionPool.urlopen`` does (``MaxRetryError``, ``ReadTimeoutError``,
        ...); with ``raise_on_status`` off, the last answer is returned when the status retries run out. A header
        or target that cannot be sent raises ``ValueError``.
        """
        headers = {"Host": self._host, **headers}
        while True:
            try:
                response = self._exchange(method, target, headers, body, timeout)
            except u3.HTTPError as error:
                retries = retries.increment(method, target, error=error, _pool=self._label)
                _pause(retries)
                continue
            if not retries.is_retry(method, response.status, bool(response.headers.get("Retry-After"))):
                return response
            as_urllib3 = cast(BaseHTTPResponse, response)  # Retry reads status, headers and the redirect only
            try:
                retries = retries.increment(method, target, response=as_urllib3, _pool=self._label)
            except u3.MaxRetryError:
                if retries.raise_on_status:
                    raise
                return response
            _pause(retries, as_urllib3)

    def _exchange(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None, timeout: Timeout
    ) -> Answer:
        link, reused = self._checkout()
        try:
            try:
                response = self._send(link, method, target, headers, body, timeout)
            except u3.ProtocolError as exc:
                if not (reused and isinstance(exc.__cause__, _CLOSED_BY_SERVER)):
                    raise
                link.close()
                link = _Link(self._connect())
                response = self._send(link, method, target, headers, body, timeout)
        except BaseException:
            link.close()
            raise
        if response.reusable:
            self._checkin(link)
        else:
            link.close()
        return response

    def _send(
        self,
        link: _Link,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeout: Timeout,
    ) -> Answer:
        """One request and its answer, read completely; socket errors as urllib3's pool reports them."""
        if timeout.total is not None:  # the read timeout is what is left of the total once connected
            timeout = timeout.clone()
            timeout.start_connect()
        conn = link.conn
        try:
            if link.channel is None:
                conn.timeout = Timeout.resolve_default_timeout(timeout.connect_timeout)
                offload(conn.connect)  # DNS, TCP and TLS through urllib3: in a worker thread when cooperating
                link.channel = Channel(cast(Any, conn.sock))
            link.channel.prepare(Timeout.resolve_default_timeout(timeout.read_timeout))
            # The server may close after answering early; its answer is still readable (as urllib3 reads it).
            with contextlib.suppress(BrokenPipeError):
                link.channel.send(encode_request(method, target, headers, body))
            return link.channel.read_answer(method)
        except u3.HTTPError:
            raise
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise u3.SSLError(exc) from exc
        except TimeoutError as exc:
            message = f"Read timed out. (read timeout={timeout.read_timeout})"
            raise u3.ReadTimeoutError(self._label, target, message) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise u3.ProtocolError("Connection aborted.", exc) from exc

    def _checkout(self) -> tuple[_Link, bool]:
        """The newest idle connection still open (and True), or a new one, connected on first use (and False)."""
        with self._lock:
            while self._idle:
                link = self._idle.pop()
                if link.conn.is_connected:
                    return link, True
                link.close()
        return _Link(self._connect()), False

    def _checkin(self, link: _Link) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(link)
                return
        link.close()
