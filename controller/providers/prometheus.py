"""The Prometheus provider, through ``prometheus_api_client.PrometheusConnect`` (pinned 0.7.2).

How the client is used, and why:

- Timeout: ``PrometheusConnect(timeout=...)`` passes it to every session call (annotated ``int`` in 0.7.2 but
  handed over untouched, so fractions work). The same value goes to Prometheus as the ``timeout`` query
  parameter, so the server stops evaluating a query nobody waits for any more.
- Retries: the client's default ``Retry`` makes 3 attempts with exponential backoff on connection errors and
  5xx, which turns one unreachable server into ~6 s of sleeping per query, several queries per tick. We pass our own
  ``Retry`` (``retries``, default 0: the next analysis tick is the retry) with ``raise_on_status=False`` so the
  final HTTP status reaches us instead of a bare ``RetryError``, and ``read=False``: a query that timed out is not
  sent again (that would only multiply the wait), and the timeout surfaces as ``requests.ReadTimeout`` rather than
  a generic connection error.
- Auth: a bearer token goes in the ``headers`` argument, basic auth in ``auth``; both are sent with every request.
- Transport: the client is given a :class:`~controller.providers.transport.PooledSession`, a ``requests.Session``
  that sends over urllib3's connections, kept alive and shared by the worker threads (at most ``max_connections``
  idle), and reads the proxy and CA-bundle settings from the environment once. Plain ``requests`` spent ~440 µs of
  CPU per query in its own layers and rescanned ``os.environ`` on every call, a large share of the operator's CPU
  with thousands of Canaries (``bench/scale.py``); a query now costs ~40% of what it did. The ``Retry`` above is
  the session's; ``insecure_skip_verify`` (Flagger's ``insecureSkipVerify``) turns TLS verification off on it.
- Errors: on a non-200 answer 0.7.2 raises ``PrometheusApiClientException("HTTP Status Code N (b'body')")``
  without the status as an attribute, so :func:`_http_error` reads the status and Prometheus' JSON ``error`` back
  out of that message (the format is fixed in the pinned version). ``custom_query`` also drops the result type;
  :func:`_samples` tells scalar, vector and matrix apart by shape.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from typing import Any, cast

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from prometheus_api_client.prometheus_connect import PrometheusConnect
from urllib3.util.retry import Retry

from controller.providers import (
    AmbiguousResult,
    ProviderAuthError,
    ProviderConfig,
    ProviderConfigError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    QueryRejected,
    QueryResult,
)
from controller.providers.counting import Series
from controller.providers.queries import prom_duration
from controller.providers.transport import DEFAULT_MAX_CONNECTIONS, PooledSession

_STATUS = re.compile(r"^HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)
_RETRY_STATUSES = (502, 503, 504)
_MAX_LISTED_SERIES = 5

Labels = Mapping[str, str]


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


def _http_error(exc: PrometheusApiClientException, query: str, address: str) -> ProviderError:
    """Map the client's status-in-the-message exception to our error tree."""
    match = _STATUS.match(str(exc))
    if match is None:
        return ProviderResponseError(f"prometheus at {address}: {exc}", query)
    status = int(match.group(1))
    detail = _error_detail(match.group(2))
    if status in (401, 403):
        return ProviderAuthError(f"prometheus at {address} refused the credentials (HTTP {status})", query)
    if status in (400, 422):
        return QueryRejected(f"prometheus at {address} rejected the query (HTTP {status}): {detail}", query)
    return ProviderResponseError(f"prometheus at {address} answered HTTP {status}: {detail}", query)


def _error_detail(body_repr: str) -> str:
    """Prometheus' ``error`` field from the ``repr`` of the response body, or the body itself, shortened."""
    try:
        body = ast.literal_eval(body_repr)
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    except (ValueError, SyntaxError):
        text = body_repr
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    text = " ".join(text.split())
    return text[:200] or "empty body"


def _number(raw: Any, query: str) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ProviderResponseError(f"the query returned a non-numeric value {raw!r}", query) from None


def _samples(result: Any, query: str) -> list[tuple[Labels, float]]:
    """Instant samples from ``custom_query``'s ``result``: a scalar ``[ts, "v"]`` or a vector of series."""
    if not isinstance(result, list):
        raise ProviderResponseError("malformed Prometheus answer: 'result' is not a list", query)
    if len(result) == 2 and not isinstance(result[0], dict):
        return [({}, _number(result[1], query))]
    samples: list[tuple[Labels, float]] = []
    for series in result:
        if not isinstance(series, dict):
            raise ProviderResponseError("malformed Prometheus answer: a series is not an object", query)
        if "values" in series:
            raise QueryRejected("the query returns a range vector; a look needs one instant value", query)
        value = series.get("value")
        if not isinstance(value, list) or len(value) != 2:
            raise ProviderResponseError("malformed Prometheus answer: a series has no 'value'", query)
        labels = series.get("metric") or {}
        samples.append(({str(k): str(v) for k, v in labels.items()}, _number(value[1], query)))
    return samples


def _series(result: Any, query: str) -> list[Series]:
    """Series from ``custom_query``'s ``result``, instant (``value``) or range (``values``); NaN samples dropped."""
    if not isinstance(result, list) or (len(result) == 2 and not isinstance(result[0], dict)):
        raise ProviderResponseError("malformed Prometheus answer: expected a vector or a matrix of series", query)
    found: list[Series] = []
    for series in result:
        if not isinstance(series, dict):
            raise ProviderResponseError("malformed Prometheus answer: a series is not an object", query)
        points = series.get("values") if "values" in series else [series.get("value")]
        if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
            raise ProviderResponseError("malformed Prometheus answer: a series has no 'value' or 'values'", query)
        values = [number for number in (_number(point[1], query) for point in points) if not math.isnan(number)]
        labels = {str(k): str(v) for k, v in (series.get("metric") or {}).items() if k != "__name__"}
        found.append(Series(labels, values))
    return found


def _describe(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class PrometheusProvider:
    """A :class:`~controller.providers.MetricProvider` for one Prometheus server (blocking; call from a thread)."""

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
        address = address.strip().rstrip("/")
        if not address.startswith(("http://", "https://")):
            raise ProviderConfigError(f"prometheus address must start with http:// or https://, got {address!r}")
        if timeout_s <= 0:
            raise ProviderConfigError(f"the provider timeout must be positive, got {timeout_s} s")
        headers, basic = auth_from_credentials(credentials or {})
        retry = Retry(
            total=retries,
            connect=retries,
            read=False,
            status=retries,
            backoff_factor=0.5,
            status_forcelist=_RETRY_STATUSES,
            raise_on_status=False,
        )
        session = PooledSession.for_address(
            address, verify=not insecure_skip_verify, retry=retry, max_connections=max_connections
        )
        self.address = address
        self.timeout_s = timeout_s
        # 0.7.2 annotates ``timeout`` as int; the session takes any positive number (see the module docstring).
        self._client = PrometheusConnect(
            url=address, headers=headers, retry=retry, session=session, timeout=cast(int, timeout_s)
        )
        if basic is not None:
            # Set after construction: 0.7.2 annotates ``auth`` as a non-optional tuple; it is a plain attribute.
            self._client.auth = basic

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

    def _instant(self, query: str, at: float | None) -> list[tuple[Labels, float]]:
        return _samples(self._result(query, at), query)

    def _result(self, query: str, at: float | None) -> Any:
        params = {"timeout": prom_duration(self.timeout_s)}
        if at is not None:
            params["time"] = f"{at:.3f}"
        try:
            result = self._client.custom_query(query, params=params)
        except PrometheusApiClientException as exc:
            raise _http_error(exc, query, self.address) from exc
        except requests.Timeout as exc:
            raise ProviderTimeout(
                f"prometheus at {self.address} did not answer within {self.timeout_s:g} s", query
            ) from exc
        except requests.exceptions.InvalidJSONError as exc:
            raise ProviderResponseError(f"prometheus at {self.address} answered with invalid JSON", query) from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"prometheus at {self.address} is unreachable: {exc}", query) from exc
        except (KeyError, TypeError) as exc:
            raise ProviderResponseError(f"prometheus at {self.address} answered without data.result", query) from exc
        return result

    def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        """Each series with its labels (``__name__`` dropped) and values; a range vector gives its raw samples."""
        return _series(self._result(query, at), query)

    def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        """One value at ``at``. Empty vector or NaN: no data. Several series: :class:`AmbiguousResult`."""
        samples = self._instant(query, at)
        if not samples:
            return QueryResult(query, None, "empty result")
        if len(samples) > 1:
            listed = ", ".join(_describe(labels) for labels, _ in samples[:_MAX_LISTED_SERIES])
            more = f" and {len(samples) - _MAX_LISTED_SERIES} more" if len(samples) > _MAX_LISTED_SERIES else ""
            raise AmbiguousResult(
                f"expected one series, got {len(samples)}: {listed}{more}; aggregate the query (e.g. sum(...))",
                query,
            )
        value = samples[0][1]
        if math.isnan(value):
            return QueryResult(query, None, "NaN")
        return QueryResult(query, value)

    def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        """One value per value of label ``by``; NaN series are left out (no data for that key)."""
        values: dict[str, float] = {}
        seen: set[str] = set()
        for labels, value in self._instant(query, at):
            key = labels.get(by)
            if key is None:
                raise AmbiguousResult(
                    f"a series {_describe(labels)} has no label {by!r}; aggregate with 'by ({by})'", query
                )
            if key in seen:
                raise AmbiguousResult(f"several series for {by}={key!r}; aggregate with 'by ({by})'", query)
            seen.add(key)
            if not math.isnan(value):
                values[key] = value
        return values

    def is_online(self) -> bool:
        """Flagger's check: ``vector(1)`` must answer 1 (also proves the credentials work)."""
        try:
            result = self.run_query("vector(1)")
        except ProviderError:
            return False
        return result.value == 1.0
