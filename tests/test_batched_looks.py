"""Batched looks (controller.providers.batching): the Canaries of one namespace share their count and built-in
queries, so Prometheus' load grows with namespaces and grid steps, not with Canaries — and every Canary still gets
exactly its own counts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from emulator import CoalmineEmulator
from operator_harness import (
    CANARIES,
    DEPLOYMENTS,
    NS,
    ScriptedPrometheus,
    canary,
    deployment,
    new_image,
    operator,
    scripted_prometheus,
    test_config,
    wait_phase,
)

from controller.providers.batching import aligned_boundaries, grid_for
from controller.providers.counting import Series, SharedSeries
from controller.providers.plan import LookRequest, QueryKind, assemble, plan_look
from controller.providers.queries import BuiltinMetric, BuiltinName
from controller.providers.querysets import QuerySetName

pytestmark = pytest.mark.timeout(120)


def request(
    target: str,
    start: float,
    end: float,
    grid_s: float | None = 2.0,
    slow_threshold_ms: float | None = 250.0,
    **changes: Any,
) -> LookRequest:
    return LookRequest(
        namespace="shop",
        target=target,
        start=start,
        end=end,
        thresholds={"request-success-rate": BuiltinMetric(BuiltinName.REQUEST_SUCCESS_RATE, 60.0)},
        counts=True,
        slow_threshold_ms=slow_threshold_ms,
        grid_s=grid_s,
        **changes,
    )


def test_looks_of_one_namespace_in_one_grid_step_ask_the_same_queries() -> None:
    """Ticks 0.3 s apart (per-Canary phases): the same instants, the same PromQL, whatever the target."""
    a = plan_look(request("cart", 1000.1, 1010.2))
    b = plan_look(request("checkout", 1000.4, 1010.9))
    assert [(q.kind, q.promql, q.at) for q in a.queries] == [(q.kind, q.promql, q.at) for q in b.queries]
    assert all("cart" not in q.promql for q in a.queries)
    builtin = next(q for q in a.queries if q.key == "threshold/request-success-rate")
    assert builtin.kind is QueryKind.VECTOR and builtin.by == "destination_workload"
    unbatched = plan_look(request("cart", 1000.1, 1010.2, grid_s=None))
    assert all(
        'destination_workload=~"cart|cart-primary"' in q.promql
        for q in unbatched.queries
        if q.key != "threshold/request-success-rate"
    )


def test_consecutive_looks_share_their_boundary_so_nothing_is_counted_twice_or_lost() -> None:
    grid = grid_for(2.0, 10.0)
    first = aligned_boundaries(1000.3, 1010.6, grid)
    second = aligned_boundaries(1010.6, 1021.1, grid)
    assert first[1] == second[0]
    assert first[1] - first[0] >= grid and second[1] - second[0] >= grid
    assert grid_for(2.0, 1.0) == 1.0  # never longer than the interval: a look always spans a step


def _series(workload: str, code: str, values: tuple[float, ...]) -> Series:
    return Series({"destination_workload": workload, "response_code": code}, values)


def test_each_canary_keeps_only_its_own_arms_of_the_shared_answer() -> None:
    window = [
        _series("cart", "200", (40.0,)),
        _series("cart-primary", "200", (400.0,)),
        _series("cart", "503", (4.0,)),
        _series("checkout", "200", (7.0,)),
        _series("checkout-primary", "503", (9.0,)),
        _series("unrelated", "200", (1000.0,)),
    ]
    shared = {
        "counts/requests/baseline": SharedSeries(),
        "counts/requests/window": SharedSeries(window),  # as the operator's shared answers come: indexed
        "threshold/request-success-rate": {"cart": 91.0, "checkout": 100.0},
    }
    scanned = {**shared, "counts/requests/baseline": [], "counts/requests/window": list(window)}
    for answers in (shared, scanned):
        _each_keeps_its_own(answers)


def _each_keeps_its_own(answers: dict[str, Any]) -> None:
    for target, (canary_counts, primary, rate) in {
        "cart": ((44, 4), (400, 0), 91.0),
        "checkout": ((7, 0), (9, 9), 100.0),
    }.items():
        look_request = request(target, 1000.0, 1010.0, slow_threshold_ms=None)
        look = assemble(look_request, plan_look(look_request).answers(answers))
        assert (look.canary.requests, look.canary.errors) == canary_counts
        assert (look.primary.requests, look.primary.errors) == primary
        assert look.thresholds["request-success-rate"].value == rate
    silent = request("new-service", 1000.0, 1010.0, slow_threshold_ms=None)
    look = assemble(silent, plan_look(silent).answers(answers))
    assert look.thresholds["request-success-rate"].value is None  # no series of its own: no data, never a pass


def test_the_envoy_set_shares_counts_but_keeps_per_canary_builtins() -> None:
    a = plan_look(request("cart", 1000.1, 1010.2, query_set=QuerySetName.ENVOY, slow_threshold_ms=None))
    b = plan_look(request("checkout", 1000.4, 1010.9, query_set=QuerySetName.ENVOY, slow_threshold_ms=None))
    counts_a = [(q.promql, q.at) for q in a.queries if q.key.startswith("counts/")]
    counts_b = [(q.promql, q.at) for q in b.queries if q.key.startswith("counts/")]
    assert counts_a == counts_b
    builtin = next(q for q in a.queries if q.key == "threshold/request-success-rate")
    assert builtin.kind is QueryKind.VALUE and "cart" in builtin.promql


async def _roll_out_all(emulator: CoalmineEmulator, prom: ScriptedPrometheus, prefix: str, *, batch: bool) -> int:
    """Six Canaries in one namespace promote a new image; the number of queries Prometheus received meanwhile."""
    names = [f"{prefix}-{index}" for index in range(6)]
    for name in names:
        emulator.create_object(DEPLOYMENTS, deployment(name, f"{name}:1"), NS)
        emulator.create_object(CANARIES, canary(name, analysis={"comparison": {"minRequests": 10}}), NS)
    async with operator(emulator, test_config(prom, batch_looks=batch)):
        for name in names:
            await wait_phase(emulator, name, "Initialized")
        with prom._lock:
            prom.counts.clear()
        for name in names:
            new_image(emulator, name, f"{name}:2")
        await asyncio.gather(*(wait_phase(emulator, name, "Succeeded", timeout=60) for name in names))
        with prom._lock:
            return sum(prom.counts.values())


async def test_six_canaries_in_one_namespace_promote_with_a_fraction_of_the_queries(emulator: CoalmineEmulator) -> None:
    with scripted_prometheus() as prom:
        batched = await _roll_out_all(emulator, prom, "batched", batch=True)
        per_canary = {key: count for key, count in prom.counts.items() if not key.startswith("*|")}
        unbatched = await _roll_out_all(emulator, prom, "single", batch=False)
        shared = {key: count for key, count in prom.counts.items() if key.startswith("*|")}
    assert per_canary == {}  # every count and built-in query was namespace-wide
    assert shared == {}  # and without batching none was
    assert 0 < batched * 3 <= unbatched, (batched, unbatched)
