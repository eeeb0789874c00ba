"""Identical timed queries share one request (controller.providers.shared): the basis of batched looks."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from controller.providers import ProviderUnavailable, QueryResult
from controller.providers.counting import Series
from controller.providers.shared import SharedAnswers


class SlowProvider:
    """Answers after a short wait, counting what reaches it; fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, float | None]] = []
        self.failing = False

    async def _answer(self, query: str, at: float | None) -> None:
        self.sent.append((query, at))
        await asyncio.sleep(0.01)
        if self.failing:
            raise ProviderUnavailable("connection refused", query)

    async def run_query(self, query: str, *, at: float | None = None) -> QueryResult:
        await self._answer(query, at)
        return QueryResult(query, 1.0)

    async def run_vector(self, query: str, by: str, *, at: float | None = None) -> Mapping[str, float]:
        await self._answer(query, at)
        return {"web": 1.0}

    async def run_series(self, query: str, *, at: float | None = None) -> list[Series]:
        await self._answer(query, at)
        return [Series({"destination_workload": "web"}, (1.0, 2.0))]

    async def is_online(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


async def test_many_looks_asking_the_same_boundary_send_one_query() -> None:
    provider = SlowProvider()
    shared = SharedAnswers(provider)
    answers = await asyncio.gather(*(shared.run_series("ns_counters", at=100.0) for _ in range(50)))
    assert all(answer == answers[0] for answer in answers)
    later = await shared.run_series("ns_counters", at=100.0)  # a look a moment later in the same slot
    assert later == answers[0]
    assert provider.sent == [("ns_counters", 100.0)]
    assert (shared.stats.asked, shared.stats.sent) == (51, 1)


async def test_different_queries_times_or_kinds_are_not_mixed_up() -> None:
    provider = SlowProvider()
    shared = SharedAnswers(provider)
    await asyncio.gather(
        shared.run_series("a", at=100.0),
        shared.run_series("a", at=110.0),
        shared.run_series("b", at=100.0),
        shared.run_query("a", at=100.0),
        shared.run_vector("a", "destination_workload", at=100.0),
    )
    assert len(provider.sent) == 5


async def test_untimed_queries_are_never_shared_and_answers_expire() -> None:
    provider = SlowProvider()
    now = [0.0]
    shared = SharedAnswers(provider, keep_s=30.0, clock=lambda: now[0])
    await shared.run_query("up")
    await shared.run_query("up")
    assert len(provider.sent) == 2
    await shared.run_series("a", at=100.0)
    now[0] = 31.0
    await shared.run_series("a", at=100.0)
    assert len(provider.sent) == 4


async def test_a_failure_reaches_everyone_in_flight_and_is_not_kept() -> None:
    provider = SlowProvider()
    shared = SharedAnswers(provider)
    provider.failing = True
    results = await asyncio.gather(*(shared.run_series("a", at=100.0) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, ProviderUnavailable) for result in results)
    assert len(provider.sent) == 1
    provider.failing = False
    assert await shared.run_series("a", at=100.0)  # tried again, not the kept failure
    assert len(provider.sent) == 2


async def test_a_joined_query_survives_one_asker_being_cancelled() -> None:
    provider = SlowProvider()
    shared = SharedAnswers(provider)
    first = asyncio.create_task(shared.run_series("a", at=100.0))
    await asyncio.sleep(0)
    second = asyncio.create_task(shared.run_series("a", at=100.0))
    await asyncio.sleep(0)
    second.cancel()
    assert await first
    with pytest.raises(asyncio.CancelledError):
        await second
