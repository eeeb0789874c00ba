"""Metric providers: the one interface the operator and ``coalmine judge`` read metrics through.

Like Flagger, a provider is a small interface and a factory keyed by the spec's provider ``type``. Unlike Flagger, an
unknown type is an error (:class:`UnknownProviderType`) — never a silent fallback to Prometheus, which would turn a
typo into checks against the wrong server.

Every failure is a :class:`ProviderError` naming the query, so a look can record which metric failed and why while
the other metrics still count. "No data" is not an error: it is a :class:`QueryResult` with ``value`` None, which the
judge turns into its own outcome (never a pass).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from controller.providers.counting import Series
from controller.providers.queries import compact as compact

__all__ = [
    "AmbiguousResult",
    "AsyncMetricProvider",
    "MetricProvider",
    "ProviderAuthError",
    "ProviderConfig",
    "ProviderConfigError",
    "ProviderError",
    "ProviderResponseError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "QueryRejected",
    "QueryResult",
    "UnknownProviderType",
    "create_async_provider",
    "create_provider",
    "provider_types",
]


class ProviderError(Exception):
    """The root of every provider failure. ``query`` is the PromQL that failed (None for configuration errors)."""

    def __init__(self, message: str, query: str | None = None) -> None:
        self.query = query
        super().__init__(message if query is None else f"{message} (query: {compact(query)})")


class ProviderConfigError(ProviderError):
    """The provider cannot be built: bad address, incomplete credentials."""


class UnknownProviderType(ProviderConfigError):
    """No provider is registered for this ``type``."""


class ProviderUnavailable(ProviderError):
    """The server could not be reached (connection refused, DNS, TLS handshake)."""


class ProviderTimeout(ProviderUnavailable):
    """The server did not answer within the timeout."""


class ProviderAuthError(ProviderError):
    """The server refused our credentials (HTTP 401/403)."""


class QueryRejected(ProviderError):
    """The server refused the query itself (HTTP 400/422: a PromQL syntax or evaluation error)."""


class ProviderResponseError(ProviderError):
    """Any other HTTP error, or an answer that is not a well-formed Prometheus API response."""


class AmbiguousResult(ProviderError):
    """Several series came back where one value was expected (or two series for the same arm)."""


@dataclass(frozen=True)
class QueryResult:
    """One instant value. ``value`` None means no data (an empty vector or NaN); ``no_data_reason`` says which."""

    query: str
    value: float | None
    no_data_reason: str = ""

    @property
    def no_data(self) -> bool:
        return self.value is None


class MetricProvider(Protocol):
    """What a look needs from a metrics backend, blocking (``coalmine judge``; thread-safe).

    ``at`` is the evaluation time (epoch seconds; None = now) so a past window (``coalmine judge``) is read exactly
    as a live one.
    """

    def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        """One value; no data as ``QueryResult.value`` None; several series raise :class:`AmbiguousResult`."""
        ...

    def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        """One value per value of label ``by`` (e.g. per ``destination_workload``); NaN series are left out."""
        ...

    def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        """Every series the query returns with all its labels and values: one value per series for an instant
        vector, its raw samples (oldest first) for a range vector. Used by the looks' counter differences."""
        ...

    def is_online(self) -> bool:
        """True when the server answers a trivial query with the expected value."""
        ...


class AsyncMetricProvider(Protocol):
    """:class:`MetricProvider` as coroutines, for the operator's event loop; ``aclose`` releases its connections.

    Same answers and the same errors as the blocking provider: both parse with the same functions.
    """

    async def run_query(self, query: str, *, at: float | None = None) -> QueryResult: ...

    async def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]: ...

    async def run_series(self, query: str, *, at: float | None = None) -> list[Series]: ...

    async def is_online(self) -> bool: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class ProviderConfig:
    """A provider as a Canary's ``metricsServer`` or a MetricTemplate's ``spec.provider`` describes it.

    ``credentials`` is the referenced Secret's data, already base64-decoded (the operator reads the Secret):
    ``token`` for a bearer token, or ``username`` and ``password`` for basic auth.
    """

    address: str
    type: str = "prometheus"
    credentials: Mapping[str, str] = field(default_factory=dict)
    insecure_skip_verify: bool = False
    timeout_s: float = 10.0
    retries: int = 0
    max_connections: int = 32
    """Connections per server, all kept alive: as many as queries can be in flight at once (the operator's
    ``concurrency``), so none is opened and closed per query; more queries wait for a free one."""


ProviderFactory = Callable[[ProviderConfig], MetricProvider]
AsyncProviderFactory = Callable[[ProviderConfig], AsyncMetricProvider]


def _prometheus(config: ProviderConfig) -> MetricProvider:
    # Imported here so the pure query builders in this package load without the HTTP client stack.
    from controller.providers.prometheus import PrometheusProvider

    return PrometheusProvider.from_config(config)


def _async_prometheus(config: ProviderConfig) -> AsyncMetricProvider:
    from controller.providers.prometheus import AsyncPrometheusProvider

    return AsyncPrometheusProvider(config)


_REGISTRY: Mapping[str, ProviderFactory] = {"prometheus": _prometheus}
_ASYNC_REGISTRY: Mapping[str, AsyncProviderFactory] = {"prometheus": _async_prometheus}


def provider_types() -> tuple[str, ...]:
    """The provider types this build supports (for validation and error messages)."""
    return tuple(sorted(_REGISTRY))


def _unknown(config: ProviderConfig) -> UnknownProviderType:
    supported = ", ".join(provider_types())
    return UnknownProviderType(f"unknown metric provider type {config.type!r}; supported: {supported}")


def create_provider(config: ProviderConfig) -> MetricProvider:
    """Build the blocking provider for ``config.type``; an unknown type raises :class:`UnknownProviderType`."""
    factory = _REGISTRY.get(config.type)
    if factory is None:
        raise _unknown(config)
    return factory(config)


def create_async_provider(config: ProviderConfig) -> AsyncMetricProvider:
    """Build the event-loop provider for ``config.type`` (close it with ``await provider.aclose()``); an unknown
    type raises :class:`UnknownProviderType`."""
    factory = _ASYNC_REGISTRY.get(config.type)
    if factory is None:
        raise _unknown(config)
    return factory(config)
