"""A ``requests.Session`` for ``PrometheusConnect`` that sends with urllib3's connections, without ``requests``.

Why: ``PrometheusConnect`` (0.7.2) sends every query with ``Session.request``. Per request, ``requests`` merges
session and environment settings, prepares the request (cookies, hooks, URL re-quoting), looks up its adapter and
wraps urllib3's answer: about 440 µs of CPU on top of what urllib3 needs, and the operator's scale benchmark is
CPU-bound (three queries per look, thousands of Canaries). :class:`PooledSession` keeps the ``requests`` surface that
``PrometheusConnect`` uses (``request``/``get`` returning a ``requests.Response`` with ``status_code``, ``content``,
``json()``, ``ok``) and raises ``requests``' exceptions, but decides once, when it is built, what ``requests``
decides on every call:

- Proxy: ``HTTP(S)_PROXY``/``ALL_PROXY``/``NO_PROXY`` with ``requests``' own rules, read once (a running operator's
  environment does not change); ``user:password@`` in the proxy URL becomes ``Proxy-Authorization``.
- TLS: verification on (a CA bundle file or directory; by default ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or
  ``SSL_CERT_FILE``, else certifi's bundle like ``requests``) or off; one ``SSLContext`` for all connections. A
  bundle that cannot be read is a :class:`~controller.providers.ProviderConfigError` now, not on every query.
- Connections: kept alive and shared by all threads, up to ``max_connections`` idle ones per server (the
  operator's default ``worker_threads``); more concurrent queries open extra connections that are closed after use.
  Requests to the provider's own server skip even ``urllib3.urlopen`` (see :mod:`controller.providers.keepalive`):
  with it, a query cost ~300 µs of CPU, without it ~240 µs, against ~620 µs through ``requests``.
- Retries: the given urllib3 ``Retry`` (connection errors, ``status_forcelist``), as ``HTTPAdapter(max_retries=...)``.
  Redirects are followed like ``requests`` does (at most 30; 303 becomes GET; ``Authorization`` is dropped when
  the host changes) and do not use up retries.
- Errors: urllib3's exceptions become the ``requests`` exceptions ``HTTPAdapter`` raises (``ConnectTimeout``,
  ``ReadTimeout``, ``SSLError``, ``ProxyError``, ``RetryError``, ``ConnectionError``); invalid JSON still raises
  from ``Response.json()``.

No ``Accept-Encoding`` is sent: Prometheus' answers to instant queries are small, and decompressing them would cost
the CPU this module exists to save. With verification off, urllib3's ``InsecureRequestWarning`` is not repeated on
every query to the provider's own server: ``insecureSkipVerify`` is an explicit choice. Arguments
``PrometheusConnect`` never passes (cookies, files, bodies, hooks, streaming, per-call proxies or TLS settings) raise
``TypeError`` instead of being ignored.
"""

from __future__ import annotations

import base64
import os
import re
import ssl
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_encoding_from_headers,
    get_environ_proxies,
    select_proxy,
)
from urllib3 import exceptions as u3
from urllib3.util import Timeout
from urllib3.util.retry import Retry
from urllib3.util.ssl_ import create_urllib3_context

from controller.providers import ProviderConfigError, jsonwire
from controller.providers.cooperative import offload
from controller.providers.http1 import Answer
from controller.providers.keepalive import OriginPool

if TYPE_CHECKING:
    from requests.models import _JSON
    from requests.sessions import (
        _Auth,
        _Cert,
        _Data,
        _Files,
        _HeadersUpdateMapping,
        _HooksInput,
        _Params,
        _TextMapping,
        _Timeout,
        _Verify,
    )

__all__ = ["DEFAULT_MAX_CONNECTIONS", "PooledSession", "ca_bundle_from_environment"]

DEFAULT_MAX_CONNECTIONS = 32
_MAX_REDIRECTS = 30  # requests.models.DEFAULT_REDIRECT_LIMIT
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
_DEFAULT_HEADERS = {"User-Agent": "coalmine", "Accept": "application/json"}
_MAX_CACHED_TIMEOUTS = 16
# A target with these needs urllib3's percent-encoding: only urlopen applies it (keepalive.py sends targets as is).
_UNSENDABLE = re.compile(r"[^\x21-\x7e]")


def ca_bundle_from_environment() -> str | None:
    """The CA bundle the environment names (``requests``' variables, then OpenSSL's ``SSL_CERT_FILE``), if any."""
    for name in _CA_BUNDLE_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


@lru_cache(maxsize=64)
def _basic_auth(username: str, password: str) -> str:
    """``Authorization: Basic`` as ``requests`` builds it (latin-1), computed once per credential pair."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode("latin-1")).decode("ascii")


def _tls_settings(verify: bool | str) -> dict[str, Any]:
    """Pool keyword arguments for TLS: no verification, or one context that trusts ``verify``'s bundle."""
    if verify is False:
        return {"cert_reqs": "CERT_NONE"}
    bundle = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    try:
        if os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
        else:
            context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ProviderConfigError(f"cannot read the CA bundle {bundle!r}: {exc}") from None
    return {"cert_reqs": "CERT_REQUIRED", "ssl_context": context}


def _pool_manager(proxy: str | None, max_connections: int, tls: dict[str, Any]) -> urllib3.PoolManager:
    if proxy is None:
        return urllib3.PoolManager(maxsize=max_connections, block=False, **tls)
    if proxy.lower().startswith("socks"):
        raise ProviderConfigError(f"SOCKS proxies are not supported (proxy {proxy!r}); use an HTTP(S) proxy")
    headers = {}
    username, password = get_auth_from_url(proxy)
    if username:
        headers["Proxy-Authorization"] = _basic_auth(username, password)
    return urllib3.ProxyManager(proxy, proxy_headers=headers, maxsize=max_connections, block=False, **tls)


def _as_requests_error(exc: Exception) -> requests.RequestException:
    """urllib3's exception as the ``requests`` one ``HTTPAdapter.send`` would raise."""
    if isinstance(exc, u3.MaxRetryError):
        reason = exc.reason
        if isinstance(reason, u3.ConnectTimeoutError) and not isinstance(reason, u3.NewConnectionError):
            return requests.ConnectTimeout(exc)
        if isinstance(reason, u3.ResponseError):
            return requests.exceptions.RetryError(exc)
        if isinstance(reason, u3.ProxyError):
            return requests.exceptions.ProxyError(exc)
        if isinstance(reason, u3.SSLError):
            return requests.exceptions.SSLError(exc)
        return requests.ConnectionError(exc)
    if isinstance(exc, u3.ProxyError):
        return requests.exceptions.ProxyError(exc)
    if isinstance(exc, u3.SSLError):
        return requests.exceptions.SSLError(exc)
    if isinstance(exc, u3.ReadTimeoutError):
        return requests.ReadTimeout(exc)
    if isinstance(exc, u3.ConnectTimeoutError):
        return requests.ConnectTimeout(exc)
    if isinstance(exc, u3.DecodeError):
        return requests.exceptions.ContentDecodingError(exc)
    if isinstance(exc, u3.LocationParseError):
        return requests.exceptions.InvalidURL(exc)
    return requests.ConnectionError(exc)


def _query_string(params: _Params) -> str:
    """``params`` encoded as ``requests`` does: ``None`` values dropped, sequences repeated, ``+`` for spaces."""
    if isinstance(params, str):
        return params
    if isinstance(params, bytes):
        return params.decode("ascii")
    source = cast(Any, params)
    items: Iterable[tuple[Any, Any]] = source.items() if hasattr(source, "items") else source
    pairs: list[tuple[Any, Any]] = []
    for key, values in items:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            values = [values]
        pairs.extend((key, value) for value in values if value is not None)
    return urlencode(pairs)


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


class _Response(requests.Response):
    """A ``requests.Response`` whose ``json()`` parses with :mod:`controller.providers.jsonwire`."""

    def json(self, **kwargs: Any) -> Any:
        if kwargs or not self.content:
            return super().json(**kwargs)
        try:
            return jsonwire.loads(self.content)
        except ValueError as exc:
            raise requests.exceptions.JSONDecodeError(str(exc), self.text, 0) from exc


def _response(raw: urllib3.BaseHTTPResponse | Answer, url: str) -> requests.Response:
    """urllib3's fully read answer as the ``requests.Response`` ``PrometheusConnect`` reads."""
    response = _Response()
    response.status_code = raw.status
    response.reason = raw.reason or ""
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response._content = raw.data
    response.url = url
    return response


class PooledSession(requests.Session):
    """A ``requests.Session`` that sends without ``requests``' per-call layers (see the module doc).

    Requests to ``origin`` (the server's base URL) go straight over kept-alive connections
    (:class:`~controller.providers.keepalive.OriginPool`); through a proxy, or after a redirect to another server,
    they go through urllib3's pool manager. Thread-safe: everything is decided when the session is built, and both
    kinds of pool are safe to share between threads.
    """

    def __init__(
        self,
        origin: str,
        *,
        verify: bool | str = True,
        proxy: str | None = None,
        retry: Retry | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = verify
        self.proxies = {} if proxy is None else {"all": proxy}
        self.headers = CaseInsensitiveDict(_DEFAULT_HEADERS)
        self._retry = retry if retry is not None else Retry(0, read=False)
        tls = _tls_settings(verify)
        self._manager = _pool_manager(proxy, max_connections, tls)
        self._timeouts: dict[object, Timeout] = {}
        parts = urlsplit(origin)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._origin_auth = get_auth_from_url(origin) if parts.username else None
        self._direct: OriginPool | None = None
        try:
            label = self._manager.connection_from_url(origin)
            if proxy is None:
                self._direct = OriginPool.for_origin(origin, tls=tls, max_idle=max_connections, label=label)
        except (u3.LocationParseError, ValueError) as exc:
            raise ProviderConfigError(f"invalid server address {origin!r}: {exc}") from None

    @classmethod
    def for_address(
        cls,
        address: str,
        *,
        verify: bool = True,
        retry: Retry | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> PooledSession:
        """A session for ``address`` with the proxy and CA bundle the environment sets, read now and only now."""
        proxy = select_proxy(address, get_environ_proxies(address))
        bundle = ca_bundle_from_environment() if verify else None
        return cls(
            address,
            verify=bundle or verify,
            proxy=(proxy if "://" in proxy else f"http://{proxy}") if proxy else None,
            retry=retry,
            max_connections=max_connections,
        )

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self._manager.clear()
        super().close()

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        params: _Params | None = None,
        data: _Data | None = None,
        headers: _HeadersUpdateMapping | None = None,
        cookies: requests.cookies.RequestsCookieJar | _TextMapping | None = None,
        files: _Files | None = None,
        auth: _Auth | None = None,
        timeout: _Timeout | None = None,
        allow_redirects: bool = True,
        proxies: _TextMapping | None = None,
        hooks: _HooksInput | None = None,
        stream: bool | None = None,
        verify: _Verify | None = None,
        cert: _Cert | None = None,
        json: _JSON | None = None,
    ) -> requests.Response:
        """Send one request and read the whole answer; ``requests``' semantics for what is accepted."""
        unsupported = {
            "data": data,
            "cookies": cookies,
            "files": files,
            "proxies": proxies,
            "hooks": hooks,
            "stream": stream,
            "cert": cert,
            "json": json,
        }
        given = sorted(name for name, value in unsupported.items() if value)
        if given:
            raise TypeError(f"PooledSession.request does not take {', '.join(given)}")
        if verify is not None and verify != self.verify:
            raise TypeError(f"PooledSession verifies TLS as built (verify={self.verify!r}), not per request")
        method = (method.decode("ascii") if isinstance(method, bytes) else method).upper()
        url = url.decode("utf-8") if isinstance(url, bytes) else url
        if params:
            url += ("&" if "?" in url else "?") + _query_string(params)
        return self._send(method, url, self._headers(url, headers, auth), self._timeout(timeout), allow_redirects)

    def _headers(self, url: str, extra: _HeadersUpdateMapping | None, auth: _Auth | None) -> dict[str, str]:
        merged = {name: _text(value) for name, value in self.headers.items()}
        if extra:
            for name, value in extra.items():
                if value is None:
                    merged.pop(name, None)
                else:
                    merged[name] = _text(value)
        if auth is None and self._origin_auth is not None and url.startswith(self._origin + "/"):
            auth = self._origin_auth
        if auth is not None:
            if not isinstance(auth, tuple):
                raise TypeError("PooledSession takes basic auth as a (username, password) tuple only")
            merged["Authorization"] = _basic_auth(*auth)
        return merged

    def _timeout(self, timeout: _Timeout | None) -> Timeout:
        """urllib3's ``Timeout`` for a ``requests`` timeout (seconds, or a (connect, read) pair), built once."""
        found = self._timeouts.get(timeout)
        if found is None:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
            found = Timeout(connect=connect, read=read)
            if len(self._timeouts) < _MAX_CACHED_TIMEOUTS:
                self._timeouts[timeout] = found
        return found

    def _send(
        self, method: str, url: str, headers: dict[str, str], timeout: Timeout, follow: bool
    ) -> requests.Response:
        raw = self._open(method, url, headers, timeout)
        redirects = 0
        while follow and raw.status in _REDIRECT_STATUSES and raw.headers.get("Location"):
            redirects += 1
            if redirects > _MAX_REDIRECTS:
                raise requests.TooManyRedirects(f"Exceeded {_MAX_REDIRECTS} redirects.")
            target = urljoin(url, raw.headers["Location"])
            if (raw.status == 303 and method != "HEAD") or (raw.status in (301, 302) and method == "POST"):
                method = "GET"
            if cast(Callable[[str, str], bool], self.should_strip_auth)(url, target):
                headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
            url = target
            raw = self._open(method, url, headers, timeout)
        return _response(raw, url)

    def _open(
        self, method: str, url: str, headers: dict[str, str], timeout: Timeout
    ) -> urllib3.BaseHTTPResponse | Answer:
        """One exchange (with the configured retries, without redirects), the answer read completely."""
        try:
            if self._direct is not None and url.startswith(self._origin + "/") and not _UNSENDABLE.search(url):
                return self._direct.urlopen(method, url[len(self._origin) :], headers, timeout, self._retry)
            # urllib3 end to end (a proxy, another server): blocking, so in a worker thread when cooperating.
            return offload(
                self._manager.urlopen,
                method,
                url,
                headers=headers,
                timeout=timeout,
                retries=self._retry,
                redirect=False,
            )
        except (u3.HTTPError, OSError) as exc:
            raise _as_requests_error(exc) from exc
        except ValueError as exc:  # http.client refuses a header with a line break (requests: InvalidHeader)
            raise requests.exceptions.InvalidHeader(str(exc)) from exc
