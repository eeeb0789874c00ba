"""One answer for everyone who asks the same question: the operator's batched looks.

Canaries in one namespace whose looks fall in the same slot ask Prometheus the same queries — the namespace's
request counters at the same two boundaries (:func:`controller.providers.plan.plan_look` makes them identical:
namespace-wide selectors, boundaries on a shared grid) — and each keeps only its own arms' series. This wrapper
makes those identical queries one request: a query already in flight is joined, and an answer is kept for
``keep_s`` seconds for the looks that ask a little later in the same slot. So Prometheus' load grows with
namespaces and slots, not with Canaries.

Only queries with an explicit evaluation time (``at``) are shared: the answer for an instant in the past is the
same for every asker (looks read their boundaries ``SETTLE_S`` behind, once the scrapes have landed). A failure is
shared like an answer by the askers in flight, and never kept: the next ask tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.providers import AsyncMetricProvider, QueryResult
from controller.providers.counting import Series, SharedSeries

T = TypeVar("T")

KEEP_S = 30.0
MAX_KEPT = 4096

Key = tuple[str, str, str, float]
"""(method, query, vector label, evaluation time)"""


@dataclass
class ShareStats:
    """How many queries were asked, and how many of them reached the server."""

    asked: int = 0
    sent: int = 0


@dataclass
class SharedAnswers:
    """An :class:`~controller.providers.AsyncMetricProvider` whose identical timed queries share one request."""

    provider: AsyncMetricProvider
    keep_s: float = KEEP_S
    clock: Callable[[], float] = time.monotonic
    stats: ShareStats = field(default_factory=ShareStats)
    _flights: dict[Key, asyncio.Future[Any]] = field(default_factory=dict)
    _kept: dict[Key, tuple[float, Any]] = field(default_factory=dict)

    async def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        return await self._shared(("query", query, "", at), lambda: self.provider.run_query(query, at=at))

    async def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        answer = await self._shared(("vector", query, by, at), lambda: self.provider.run_vector(query, by, at=at))
        return dict(answer)

    async def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        async def ask() -> SharedSeries:
            return SharedSeries(await self.provider.run_series(query, at=at))

        return await self._shared(("series", query, "", at), ask)  # the same object for everyone: never changed

    async def is_online(self) -> bool:
        return await self.provider.is_online()

    async def aclose(self) -> None:
        self._kept.clear()
        await self.provider.aclose()

    async def _shared(self, key: tuple[str, str, str, float | None], ask: Callable[[], Awaitable[T]]) -> T:
        self.stats.asked += 1
        if key[3] is None:
            self.stats.sent += 1
            return await ask()
        timed: Key = (key[0], key[1], key[2], key[3])
        now = self.clock()
        kept = self._kept.get(timed)
        if kept is not None and kept[0] > now:
            return kept[1]  # type: ignore[no-any-return]  # stored under this key by this method
        flight = self._flights.get(timed)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[timed] = flight
        self.stats.sent += 1
        try:
            answer = await ask()
        except Exception as error:
            flight.set_exception(error)
            flight.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        except BaseException:  # cancelled (the operator shutting down): so are those who joined
            flight.cancel()
            raise
        finally:
            self._flights.pop(timed, None)
        flight.set_result(answer)
        self._keep(timed, answer, now)
        return answer

    def _keep(self, key: Key, answer: Any, now: float) -> None:
        if len(self._kept) >= MAX_KEPT:
            self._kept = {k: v for k, v in self._kept.items() if v[0] > now}
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()  # a crude bound: a burst of distinct queries, all still fresh
        self._kept[key] = (now + self.keep_s, answer)
