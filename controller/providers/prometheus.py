"""The Prometheus provider over httpx: :class:`PrometheusProvider` (blocking, ``coalmine judge``) and
:class:`AsyncPrometheusProvider` (the operator's event loop).

Both send the same request and read the answer with the same pure functions (:func:`query_params`,
:func:`transport_error`, and :mod:`controller.providers.prometheus_answer` for the answer itself), so
the two cannot drift: only the send loop (retries, the resend of a stale keep-alive request) exists twice, once
blocking and once awaiting. What is sent, and why:

- ``GET <address>/api/v1/query?query=…&timeout=…[&time=…]``. The ``timeout`` parameter is the client's timeout, so
  Prometheus stops evaluating a query nobody waits for any more; ``time`` is the look's evaluation instant.
- One client per provider, its connections kept alive and bounded (``httpx.Limits``: at most ``max_connections``,
  as many kept idle). A query waiting longer than the timeout for a free connection is a :class:`ProviderTimeout`
  saying so, not a silent queue.
- Retries: ``retries`` (default 0: the next analysis tick is the retry) more attempts on connection errors and HTTP
  502/503/504 only, the second one after 1 s, then doubling. A query that timed out is never sent again (that would
  only multiply the wait). A request the server hung up on *on a reused keep-alive connection*, before any answer,
  is sent once more on a new one without using a retry, as urllib3 did: the server closed an idle connection just
  as we reused it.
- Credentials (``token``, or ``username`` + ``password``) become the ``Authorization`` header of every request.
  Redirects are not followed: a 3xx is a :class:`ProviderResponseError` naming where it points, so a token is only
  ever sent to the address beside it.
- Proxies come from the environment as httpx reads them (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, once, when
  the provider is built). TLS verifies against the CA bundle the environment names (``REQUESTS_CA_BUNDLE``,
  ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``, as before) or certifi's, read once; ``insecure_skip_verify`` turns it off.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from controller.providers import (
    ProviderConfig,
    ProviderConfigError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    QueryResult,
)
from controller.providers.counting import Series
from controller.providers.prometheus_answer import answer_result, instant_value, series_list, vector_values
from controller.providers.queries import prom_duration

DEFAULT_MAX_CONNECTIONS = 32
RETRY_STATUSES = frozenset({502, 503, 504})
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
_HEADERS = {"User-Agent": "coalmine", "Accept": "application/json"}

# --- pure: credentials, the request, a failed exchange ----------------------------------------------------------------


def auth_from_credentials(
    credentials: Mapping[str, str],
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Headers and basic-auth tuple from a Secret's decoded data: ``token``, or ``username`` + ``password``.

    Anything ambiguous or incomplete is a :class:`ProviderConfigError` rather than a request without credentials
    that would fail later with a less obvious 401.
    """
    token = credentials.get("token")
    username = credentials.get("username")
    password = credentials.get("password")
    if token is not None and (username is not None or password is not None):
        raise ProviderConfigError("the provider Secret has both 'token' and 'username'/'password'; keep one")
    if token is not None:
        if not token.strip():
            raise ProviderConfigError("the provider Secret's 'token' is empty")
        return {"Authorization": f"Bearer {token.strip()}"}, None
    if username is not None or password is not None:
        if username is None or password is None:
            raise ProviderConfigError("basic auth needs both 'username' and 'password' in the provider Secret")
        return {}, (username, password)
    if credentials:
        keys = ", ".join(sorted(credentials))
        raise ProviderConfigError(f"the provider Secret has none of 'token', 'username'/'password' (it has: {keys})")
    return {}, None


def query_params(query: str, at: float | None, timeout_s: float) -> dict[str, str]:
    """The query string of ``/api/v1/query``: the PromQL, Prometheus' own timeout, the evaluation time."""
    params = {"query": query, "timeout": prom_duration(timeout_s)}
    if at is not None:
        params["time"] = f"{at:.3f}"
    return params


def transport_error(exc: httpx.HTTPError, query: str, address: str, timeout_s: float) -> ProviderError:
    """The provider error for an exchange that got no answer (the same for both clients)."""
    if isinstance(exc, httpx.PoolTimeout):
        return ProviderTimeout(
            f"prometheus at {address}: no connection was free within {timeout_s:g} s (all in use by other queries)",
            query,
        )
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"prometheus at {address} did not answer within {timeout_s:g} s", query)
    if isinstance(exc, httpx.LocalProtocolError):
        # h11's message quotes the offending header, which may be the token: never put it in an error or Event.
        return ProviderUnavailable(
            f"prometheus at {address} is unreachable: the request has an invalid header "
            "(a line break in the provider Secret's credentials?)",
            query,
        )
    return ProviderUnavailable(f"prometheus at {address} is unreachable: {exc or type(exc).__name__}", query)


# --- the client settings both providers share -------------------------------------------------------------------------


def _verify(insecure_skip_verify: bool) -> ssl.SSLContext | bool:
    """TLS verification: off, or one context trusting the environment's CA bundle (file or directory) or certifi's."""
    if insecure_skip_verify:
        return False
    bundle = next((os.environ[name] for name in _CA_BUNDLE_VARIABLES if os.environ.get(name)), None)
    if bundle is None:
        return True  # httpx's own context: certifi's bundle
    context = ssl.create_default_context()
    try:
        if os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
        else:
            context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderConfigError(f"cannot read the CA bundle {bundle!r}: {exc}") from None
    return context


@dataclass(frozen=True)
class _Settings:
    address: str
    url: str
    timeout_s: float
    retries: int
    client: Mapping[str, Any]
    """Keyword arguments of ``httpx.Client``/``httpx.AsyncClient`` (they take the same)."""

    @classmethod
    def of(cls, config: ProviderConfig) -> _Settings:
        address = config.address.strip().rstrip("/")
        if not address.startswith(("http://", "https://")):
            raise ProviderConfigError(f"prometheus address must start with http:// or https://, got {address!r}")
        if config.timeout_s <= 0:
            raise ProviderConfigError(f"the provider timeout must be positive, got {config.timeout_s} s")
        if config.retries < 0 or config.max_connections < 1:
            raise ProviderConfigError("retries must be ≥ 0 and max_connections ≥ 1")
        try:
            httpx.URL(address)
        except httpx.InvalidURL as exc:
            raise ProviderConfigError(f"invalid prometheus address {address!r}: {exc}") from None
        headers, basic = auth_from_credentials(config.credentials)
        client = {
            "headers": {**_HEADERS, **headers},
            "auth": httpx.BasicAuth(*basic) if basic is not None else None,
            "timeout": httpx.Timeout(config.timeout_s),
            "limits": httpx.Limits(
                max_connections=config.max_connections, max_keepalive_connections=config.max_connections
            ),
            "verify": _verify(config.insecure_skip_verify),
            "follow_redirects": False,
            "trust_env": True,
        }
        return cls(address, f"{address}/api/v1/query", config.timeout_s, config.retries, client)

    def built(self, factory: Callable[..., Any]) -> Any:
        """The client, with a proxy httpx cannot use (SOCKS, a bad URL) as a configuration error."""
        try:
            return factory(**self.client)
        except ImportError as exc:  # httpx without socksio, for a socks:// proxy in the environment
            raise ProviderConfigError(f"SOCKS proxies are not supported; use an HTTP(S) proxy ({exc})") from None
        except (ValueError, httpx.InvalidURL) as exc:
            raise ProviderConfigError(f"invalid proxy in the environment: {exc}") from None


class _Trace:
    """Whether an exchange opened a new connection and got an answer's headers (httpcore's ``trace`` events)."""

    def __init__(self) -> None:
        self.opened = self.answered = False

    def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        if name == "connection.connect_tcp.started":
            self.opened = True
        elif name == "http11.receive_response_headers.complete":
            self.answered = True

    async def acall(self, name: str, info: Mapping[str, Any]) -> None:
        self(name, info)


Outcome = httpx.Response | httpx.HTTPError


class _Exchange:
    """One query's attempts: whether to send again and the final answer, decided alike for both send loops."""

    def __init__(self, settings: _Settings, query: str, at: float | None) -> None:
        self.settings, self.query = settings, query
        self.params = query_params(query, at, settings.timeout_s)
        self.attempt, self.resent = 0, False

    def again(self, trace: _Trace, outcome: Outcome) -> float | None:
        """Seconds to wait before sending again, or None when ``outcome`` is final."""
        if isinstance(outcome, httpx.HTTPError):
            hang_up = isinstance(outcome, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)
            if hang_up and not trace.opened and not trace.answered and not self.resent:
                self.resent = True  # a reused connection the server had closed: not a retry
                return 0.0
            retry = isinstance(outcome, httpx.ConnectError | httpx.ConnectTimeout)
        else:
            retry = outcome.status_code in RETRY_STATUSES
        if not retry or self.attempt >= self.settings.retries:
            return None
        self.attempt += 1
        # At once, then 1 s, 2 s, 4 s… (urllib3's backoff factor 0.5, as before).
        return 0.0 if self.attempt <= 1 else min(0.5 * 2 ** (self.attempt - 1), 30.0)

    def result(self, outcome: Outcome) -> Any:
        """``data.result`` of the final outcome, or its provider error."""
        settings = self.settings
        if isinstance(outcome, httpx.HTTPError):
            raise transport_error(outcome, self.query, settings.address, settings.timeout_s) from outcome
        location = outcome.headers.get("location")
        return answer_result(outcome.status_code, outcome.content, self.query, settings.address, location)


# --- the providers ----------------------------------------------------------------------------------------------------


class PrometheusProvider:
    """A :class:`~controller.providers.MetricProvider` for one Prometheus server (blocking; thread-safe)."""

    def __init__(
        self,
        address: str,
        *,
        credentials: Mapping[str, str] | None = None,
        insecure_skip_verify: bool = False,
        timeout_s: float = 10.0,
        retries: int = 0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        config = ProviderConfig(
            address=address,
            credentials=credentials or {},
            insecure_skip_verify=insecure_skip_verify,
            timeout_s=timeout_s,
            retries=retries,
            max_connections=max_connections,
        )
        self._settings = _Settings.of(config)
        self.address, self.timeout_s = self._settings.address, timeout_s
        self._client: httpx.Client = self._settings.built(httpx.Client)
        self._in_flight = threading.BoundedSemaphore(max_connections)
        # A provider dropped without close() (a CLI run, a test) still closes its kept-alive sockets.
        weakref.finalize(self, self._client.close)

    @classmethod
    def from_config(cls, config: ProviderConfig) -> PrometheusProvider:
        return cls(
            config.address,
            credentials=config.credentials,
            insecure_skip_verify=config.insecure_skip_verify,
            timeout_s=config.timeout_s,
            retries=config.retries,
            max_connections=config.max_connections,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _get(self, exchange: _Exchange, trace: _Trace) -> httpx.Response:
        """One exchange, with at most ``max_connections`` in flight: httpcore's blocking pool can close a connection
        it has just handed to a waiting thread when threads queue in it (encode/httpcore#1110), so they queue here."""
        if not self._in_flight.acquire(timeout=self._settings.timeout_s):
            raise httpx.PoolTimeout("no connection free")
        try:
            return self._client.get(self._settings.url, params=exchange.params, extensions={"trace": trace})
        finally:
            self._in_flight.release()

    def _result(self, query: str, at: float | None) -> Any:
        exchange = _Exchange(self._settings, query, at)
        while True:
            trace = _Trace()
            outcome: Outcome
            try:
                outcome = self._get(exchange, trace)
            except httpx.HTTPError as exc:
                outcome = exc
            delay = exchange.again(trace, outcome)
            if delay is None:
                return exchange.result(outcome)
            time.sleep(delay)

    def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        """One value at ``at``. Empty vector or NaN: no data. Several series: :class:`AmbiguousResult`."""
        return instant_value(self._result(query, at), query)

    def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        """One value per value of label ``by``; NaN series are left out (no data for that key)."""
        return vector_values(self._result(query, at), query, by)

    def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        """Each series with its labels (``__name__`` dropped) and values; a range vector gives its raw samples."""
        return series_list(self._result(query, at), query)

    def is_online(self) -> bool:
        """Flagger's check: ``vector(1)`` must answer 1 (also proves the credentials work)."""
        try:
            return self.run_query("vector(1)").value == 1.0
        except ProviderError:
            return False


class AsyncPrometheusProvider:
    """An :class:`~controller.providers.AsyncMetricProvider` for one Prometheus server, on the event loop.

    One ``httpx.AsyncClient`` (bounded connections) per provider; use it from one event loop and ``aclose`` it.
    """

    def __init__(self, config: ProviderConfig) -> None:
        self._settings = _Settings.of(config)
        self.address, self.timeout_s = self._settings.address, config.timeout_s
        self._client: httpx.AsyncClient = self._settings.built(httpx.AsyncClient)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncPrometheusProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _result(self, query: str, at: float | None) -> Any:
        exchange, url = _Exchange(self._settings, query, at), self._settings.url
        while True:
            trace = _Trace()
            outcome: Outcome
            try:
                outcome = await self._client.get(url, params=exchange.params, extensions={"trace": trace.acall})
            except httpx.HTTPError as exc:
                outcome = exc
            delay = exchange.again(trace, outcome)
            if delay is None:
                return exchange.result(outcome)
            await asyncio.sleep(delay)

    async def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        """As :meth:`PrometheusProvider.run_query`."""
        return instant_value(await self._result(query, at), query)

    async def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        """As :meth:`PrometheusProvider.run_vector`."""
        return vector_values(await self._result(query, at), query, by)

    async def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        """As :meth:`PrometheusProvider.run_series`."""
        return series_list(await self._result(query, at), query)

    async def is_online(self) -> bool:
        """As :meth:`PrometheusProvider.is_online`."""
        try:
            return (await self.run_query("vector(1)")).value == 1.0
        except ProviderError:
            return False


__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "AsyncPrometheusProvider",
    "PrometheusProvider",
    "answer_result",
    "auth_from_credentials",
    "instant_value",
    "query_params",
    "series_list",
    "transport_error",
    "vector_values",
]
