"""Reading Prometheus' answers: the pure half of :mod:`controller.providers.prometheus`, shared by both clients.

An answer is status, body and (for a redirect) the location; what it means is decided here, without I/O: the
``data.result`` or the error the status and body mean (:func:`answer_result`), then one value
(:func:`instant_value`), one value per label value (:func:`vector_values`, batched looks) or whole series
(:func:`series_list`, the counts). Non-finite and negative numbers are passed on, never turned into a pass: the
judge treats them as bad data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

from controller.providers import AmbiguousResult, ProviderAuthError, ProviderResponseError, QueryRejected, QueryResult
from controller.providers.counting import Series

_MAX_LISTED_SERIES = 5

Labels = Mapping[str, str]


def _error_detail(body: bytes) -> str:
    """Prometheus' ``error`` field of a JSON error body, or the body itself on one line, shortened."""
    text = body.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    text = " ".join(text.split())
    return text[:200] or "empty body"


def _json(body: bytes) -> Any:
    """orjson, or the standard library for what orjson refuses (``NaN``/``Infinity`` literals, huge integers)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def answer_result(status: int, body: bytes, query: str, address: str, location: str | None = None) -> Any:
    """``data.result`` of an answer, or the error the status and body mean (the same for both clients)."""
    if status in (401, 403):
        raise ProviderAuthError(f"prometheus at {address} refused the credentials (HTTP {status})", query)
    if status in (400, 422):
        raise QueryRejected(f"prometheus at {address} rejected the query (HTTP {status}): {_error_detail(body)}", query)
    if 300 <= status < 400:
        where = f" to {location}" if location else ""
        raise ProviderResponseError(
            f"prometheus at {address} answered HTTP {status} (a redirect{where}); redirects are not followed: "
            "set the address the server points to",
            query,
        )
    if status != 200:
        raise ProviderResponseError(f"prometheus at {address} answered HTTP {status}: {_error_detail(body)}", query)
    try:
        return _json(body)["data"]["result"]
    except ValueError:
        raise ProviderResponseError(f"prometheus at {address} answered with invalid JSON", query) from None
    except (KeyError, TypeError):
        raise ProviderResponseError(f"prometheus at {address} answered without data.result", query) from None


def _number(raw: Any, query: str) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ProviderResponseError(f"the query returned a non-numeric value {raw!r}", query) from None


def _samples(result: Any, query: str) -> list[tuple[Labels, float]]:
    """Instant samples of a ``result``: a scalar ``[ts, "v"]`` or a vector of series (a matrix is rejected)."""
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


def _describe(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def instant_value(result: Any, query: str) -> QueryResult:
    """One value. Empty vector or NaN: no data. Several series: :class:`AmbiguousResult`. ±Inf is kept: the judge
    treats a non-finite value as bad data, never as a pass."""
    samples = _samples(result, query)
    if not samples:
        return QueryResult(query, None, "empty result")
    if len(samples) > 1:
        listed = ", ".join(_describe(labels) for labels, _ in samples[:_MAX_LISTED_SERIES])
        more = f" and {len(samples) - _MAX_LISTED_SERIES} more" if len(samples) > _MAX_LISTED_SERIES else ""
        raise AmbiguousResult(
            f"expected one series, got {len(samples)}: {listed}{more}; aggregate the query (e.g. sum(...))", query
        )
    value = samples[0][1]
    if math.isnan(value):
        return QueryResult(query, None, "NaN")
    return QueryResult(query, value)


def vector_values(result: Any, query: str, by: str) -> dict[str, float]:
    """One value per value of label ``by``; NaN series are left out (no data for that key)."""
    values: dict[str, float] = {}
    seen: set[str] = set()
    for labels, value in _samples(result, query):
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


def series_list(result: Any, query: str) -> list[Series]:
    """Series of an instant (``value``) or range (``values``) ``result``, ``__name__`` dropped, NaN samples dropped.
    Negative and infinite samples are kept: the counts pass them on and the judge rejects them as bad data."""
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
