"""Keep-alive connections to one server, and one request over them with urllib3's retry rules.

Why not ``urllib3.HTTPConnectionPool.urlopen``: on every call it re-validates and percent-normalises the whole
request target in Python (about 30 µs for a PromQL query string that is already encoded) and does about 80 µs of
other bookkeeping (timeouts cloned, the answer wired back to its pool, proxy checks), where the exchange itself on
a kept-alive connection costs about 130 µs. This module keeps what matters from urllib3: the connections are its
``HTTPConnection``/``HTTPSConnection`` (TLS, hostname checks, ``TCP_NODELAY``), its answers are read the same way,
and failures go through its ``Retry`` as ``urlopen`` sends them, so callers see the same errors.

A connection the server closed while idle is noticed before reuse (as urllib3 does); if the server closes it
between that check and our request, the request is sent once more on a new connection, without using up a
retry, as browsers and Go's ``net/http`` do: the server never saw it.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from urllib3 import BaseHTTPResponse, HTTPConnectionPool
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util import Timeout, parse_url
from urllib3.util.retry import Retry

__all__ = ["OriginPool"]

# What a reused connection raises when the server had closed it just before our request.
_CLOSED_BY_SERVER = (http.client.RemoteDisconnected, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def _close_all(connections: list[HTTPConnection]) -> None:
    while connections:
        connections.pop().close()


class OriginPool:
    """Idle keep-alive connections to one ``scheme://host:port``, newest first; safe to share between threads.

    At most ``max_idle`` idle connections are kept; more concurrent requests open connections that are closed after
    use. ``label`` is the urllib3 pool for the same origin, named in errors exactly as ``urlopen`` names itself.
    """

    def __init__(self, origin: str, *, tls: Mapping[str, Any], max_idle: int, label: HTTPConnectionPool) -> None:
        parts = parse_url(origin)
        if parts.host is None:
            raise ValueError(f"no host in {origin!r}")
        self._connect: Callable[[], HTTPConnection] = (
            partial(HTTPSConnection, parts.host, parts.port, **tls)
            if parts.scheme == "https"
            else partial(HTTPConnection, parts.host, parts.port)
        )
        self._idle: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle
        self._label = label
        self._closed = False
        # A provider dropped without close() must not leave its sockets open (urllib3's pools do the same).
        weakref.finalize(self, _close_all, self._idle)

    def close(self) -> None:
        """Close the idle connections; those in use are closed when they come back."""
        with self._lock:
            self._closed = True
            _close_all(self._idle)

    def urlopen(
        self, method: str, target: str, headers: Mapping[str, str], timeout: Timeout, retries: Retry
    ) -> BaseHTTPResponse:
        """Send ``method target`` (already percent-encoded) and read the whole answer, retrying as ``retries`` says.

        Raises urllib3's exceptions as ``HTTPConnectionPool.urlopen`` does (``MaxRetryError``, ``ReadTimeoutError``,
        ...); with ``raise_on_status`` off, the last answer is returned when the status retries run out.
        """
        while True:
            try:
                response = self._exchange(method, target, headers, timeout)
            except u3.HTTPError as error:
                retries = retries.increment(method, target, error=error, _pool=self._label)
                retries.sleep()
                continue
            if not retries.is_retry(method, response.status, bool(response.headers.get("Retry-After"))):
                return response
            try:
                retries = retries.increment(method, target, response=response, _pool=self._label)
            except u3.MaxRetryError:
                if retries.raise_on_status:
                    raise
                return response
            retries.sleep(response)

    def _exchange(self, method: str, target: str, headers: Mapping[str, str], timeout: Timeout) -> BaseHTTPResponse:
        conn, reused = self._checkout()
        try:
            try:
                response = self._send(conn, method, target, headers, timeout)
            except u3.ProtocolError as exc:
                if not (reused and isinstance(exc.__cause__, _CLOSED_BY_SERVER)):
                    raise
                conn.close()
                response = self._send(conn, method, target, headers, timeout)  # reconnects
        except BaseException:
            conn.close()
            raise
        self._checkin(conn)
        return response

    def _send(
        self, conn: HTTPConnection, method: str, target: str, headers: Mapping[str, str], timeout: Timeout
    ) -> BaseHTTPResponse:
        """One request and its answer, read completely; socket errors as urllib3's pool reports them."""
        if timeout.total is not None:  # the read timeout is what is left of the total once connected
            timeout = timeout.clone()
            timeout.start_connect()
        try:
            conn.timeout = Timeout.resolve_default_timeout(timeout.connect_timeout)
            # The server may close after answering early; its answer is still readable (as urllib3 reads it).
            with contextlib.suppress(BrokenPipeError):
                conn.request(method, target, headers=headers)
            conn.timeout = Timeout.resolve_default_timeout(timeout.read_timeout)
            return conn.getresponse()
        except u3.HTTPError:
            raise
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise u3.SSLError(exc) from exc
        except TimeoutError as exc:
            raise u3.ReadTimeoutError(self._label, target, f"Read timed out. (read timeout={conn.timeout})") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise u3.ProtocolError("Connection aborted.", exc) from exc

    def _checkout(self) -> tuple[HTTPConnection, bool]:
        """The newest idle connection still open (and True), or a new one, connected on first use (and False)."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.is_connected:
                    return conn, True
                conn.close()
        return self._connect(), False

    def _checkin(self, conn: HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()
