"""What one operator process shares between ticks: its settings, API client, metric providers and HTTP clients.

Kept in kopf's ``memo`` (never a module-level singleton) so tests can run several operators in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import httpx

from controller.kube.api import KubeApi
from controller.metrics import OperatorMetrics
from controller.notify.config import ProviderConfig as AlertConfig
from controller.notify.delivery import ClientPool, DeliveryStats
from controller.operator.leader import Leadership
from controller.operator.owners import TargetIndex
from controller.operator.sharding import EVERYTHING, Shard
from controller.providers import AsyncMetricProvider, ProviderConfig, create_async_provider
from controller.providers.shared import SharedAnswers, ShareStats

if TYPE_CHECKING:
    from controller.operator.writes import WrittenStatus

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class OperatorConfig:
    """Settings of ``coalmine run``.

    ``tick_seconds`` is how often every Canary is looked at (its analysis interval decides when a look is due);
    ``metrics_server`` is the default Prometheus address, overridden by a Canary's ``spec.metricsServer`` and by a
    MetricTemplate's provider address; ``hook_secret`` signs webhook requests (HMAC-SHA256) when set.
    ``concurrency`` bounds how many ticks' requests (the Kubernetes and Prometheus clients) are in flight at
    once across all Canaries (see :meth:`OperatorContext.blocking`), and so how many connections are kept to each
    server: unbounded, thousands of Canaries due together would open a connection each.
    """

    tick_seconds: float = 2.0
    metrics_server: str = "http://prometheus.istio-system:9090"
    query_timeout_s: float = 10.0
    hook_secret: bytes | None = None
    default_alert: AlertConfig | None = None
    namespaces: tuple[str, ...] = ()
    kubernetes_timeout_s: float = 30.0
    instance: str = "coalmine"
    concurrency: int = 64
    kube_threads: int = 32
    """Worker threads for the official (blocking) Kubernetes client (:meth:`OperatorContext.blocking`). Bounded on
    purpose: each runnable thread competes with the event loop for the GIL, and with 64 of them the loop waited
    whole switch intervals between its own steps. Measured by ``bench/scale.py`` at 2,000 Canaries (10 s tick):
    8 threads were the queue itself (109 of 200 ticks/s, p99 tick lag 30 s); 32 did 185 of 200 (p99 11 s), at
    about 80 MB more while the backlog lasts."""
    default_provider: str = "istio"
    """The router of Canaries/BlueGreens without ``spec.provider`` (Flagger's ``-mesh-provider``)."""
    selector: tuple[tuple[str, str | None], ...] = ()
    """Only Canaries/BlueGreens with these labels (value None: the label is present, any value), for sharding."""
    batch_looks: bool = True
    """Looks of one namespace share their count and built-in queries, on a grid of ``tick_seconds``
    (:mod:`controller.providers.batching`); off, every look reads its own series at its own instants."""
    shard: Shard = EVERYTHING
    """Only Canaries/BlueGreens whose ``namespace/name`` hashes to this shard (``coalmine run --shard I/N``; see
    :mod:`controller.operator.sharding`); the default is every object."""
    trusted_template_namespaces: tuple[str, ...] = ()
    """Namespaces whose MetricTemplates may read other namespaces' series with the annotation
    ``coalmine.dev/reads-other-namespaces: "true"`` (``coalmine run`` adds its own namespace to
    ``--trusted-template-namespaces``); elsewhere the annotation is ignored (:mod:`controller.providers.confine`)."""
    namespace_labels: tuple[str, ...] = ()
    """Labels that hold a namespace besides :data:`~controller.providers.confine.DEFAULT_NAMESPACE_LABELS`
    (``--namespace-labels``): a query's selectors may be confined with any of them."""


def selector_string(selector: Sequence[tuple[str, str | None]]) -> str | None:
    """``OperatorConfig.selector`` as a Kubernetes label selector (``k=v,k2``); None when empty."""
    return ",".join(key if value is None else f"{key}={value}" for key, value in selector) or None


def parse_selector(items: Sequence[str]) -> tuple[tuple[str, str | None], ...]:
    """``KEY=VALUE`` (the label has this value) or ``KEY`` (the label is present) items of ``--selector``.

    Raises ValueError for an empty key or a key given twice (two values can never both match).
    """
    parsed: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not key:
            raise ValueError(f"selector {item!r}: expected KEY=VALUE or KEY")
        if key in parsed:
            raise ValueError(f"selector {item!r}: label {key!r} given twice")
        parsed[key] = value.strip() if sep else None
    return tuple(parsed.items())


@dataclass
class OperatorContext:
    """Live resources of one operator process (see module doc)."""

    config: OperatorConfig
    api: KubeApi
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(follow_redirects=False))
    alert_clients: ClientPool = field(default_factory=ClientPool)
    alert_stats: DeliveryStats = field(default_factory=DeliveryStats)
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    query_stats: ShareStats = field(default_factory=ShareStats)
    """How many Prometheus queries the looks asked, and how many were sent (the rest were shared)."""
    written_status: dict[str, WrittenStatus] = field(default_factory=dict)  # see controller.operator.writes
    target_indexes: defaultdict[str, TargetIndex] = field(default_factory=lambda: defaultdict(TargetIndex))
    """kind → which of its objects target which Deployment (see controller.operator.owners)."""
    tick_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    """uid → held while one of its ticks runs: the deletion handler must not run alongside the last tick."""
    parsed_specs: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # see controller.operator.specs
    outbox_flights: dict[str, dict[str, asyncio.Task[None] | None]] = field(default_factory=dict)
    """uid → outbox entry id → its delivery while running, None once done (see controller.operator.outbox)."""
    closing: bool = False
    """Set when the operator shuts down: no tick starts any more (kopf stops the daemons only after cleanup)."""
    leadership: Leadership = field(default_factory=Leadership)
    """Whether this replica may act now (``coalmine run --leader-elect``: :mod:`controller.operator.leader`); always
    leading without leader election. A standby's ticks skip, and a tick that loses it mid-way starts no effect."""
    _providers: dict[tuple[str, str, bool], AsyncMetricProvider] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _executor: ThreadPoolExecutor | None = None

    async def blocking(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a tick's blocking work (the official Kubernetes client's calls) in the operator's worker threads, at
        most ``config.kube_threads`` at once, in a copy of the caller's context variables (as ``asyncio.to_thread``).

        A pool of its own rather than asyncio's default one, so a burst of ticks cannot starve kopf's own use of
        the default pool; and small, so the worker threads do not starve the event loop of the GIL, and
        thousands of Canaries due together keep at most ``kube_threads`` connections busy on the API server.
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.config.kube_threads, thread_name_prefix="coalmine")
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def provider(
        self, address: str, credentials: Mapping[str, str] | None = None, insecure: bool = False
    ) -> AsyncMetricProvider:
        """A cached event-loop provider per (address, credentials, TLS switch); built lazily, thread-safe.

        Each has one ``httpx.AsyncClient`` holding at most ``config.concurrency`` connections to its server, so
        however many looks are in flight, a Prometheus sees a bounded number of them; :meth:`aclose` closes it.
        """
        creds = dict(credentials or {})
        key = (address, repr(sorted(creds.items())), insecure)
        with self._lock:
            found = self._providers.get(key)
            if found is None:
                found = create_async_provider(
                    ProviderConfig(
                        address=address,
                        credentials=creds,
                        insecure_skip_verify=insecure,
                        timeout_s=self.config.query_timeout_s,
                        max_connections=self.config.concurrency,
                    )
                )
                if self.config.batch_looks:  # the looks of one namespace and grid step share their queries
                    found = SharedAnswers(found, stats=self.query_stats)
                self._providers[key] = found
            return found

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Stop starting ticks, let those half-way finish (up to ``grace_s``), then close every client.

        The Kubernetes client too: its pooled keep-alive connections would otherwise keep the API server's side of
        them open, and kopf waits for such leftovers at shutdown. A tick half-way is let finish because its actions
        are already in the cluster, and only a finished tick writes the status that records them.
        """
        self.closing = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                for lock in list(self.tick_locks.values()):
                    async with lock:
                        pass
        close_api = getattr(self.api, "close", None)
        if callable(close_api):
            close_api()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        await self.http.aclose()
        await self.alert_clients.aclose()
        with self._lock:
            providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
