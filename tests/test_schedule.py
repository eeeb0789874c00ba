"""When ticks run (controller/operator/schedule.py): spread over the period, exactly one period apart, and a look
due on every tick when the tick equals the analysis interval, after status has round-tripped the time."""

from __future__ import annotations

import uuid

import pytest

from controller.operator.schedule import first_slot, latest_slot, tick_phase
from controller.rollout.moves import look_due
from controller.rollout.spec import parse_canary_spec
from controller.rollout.status import CanaryStatus, format_time, parse_time


def test_phases_are_stable_and_spread_evenly_over_the_period() -> None:
    uids = [str(uuid.UUID(int=n * 7919 + 13, version=4)) for n in range(2000)]
    phases = [tick_phase(uid, 10.0) for uid in uids]
    assert phases == [tick_phase(uid, 10.0) for uid in uids]  # the same in every process
    assert all(0.0 <= phase < 10.0 for phase in phases)
    per_second = [sum(1 for phase in phases if second <= phase < second + 1) for second in range(10)]
    assert min(per_second) > 150 and max(per_second) < 250  # 200 expected in each second


@pytest.mark.parametrize("now", [1_764_000_000.0, 1_764_000_003.25, 1_764_000_009.999])
def test_the_first_slot_is_within_one_period_and_slots_stay_on_the_grid(now: float) -> None:
    phase, period = 3.5, 10.0
    first = first_slot(now, phase, period)
    assert now <= first < now + period
    assert latest_slot(first, phase, period) == pytest.approx(first)
    assert latest_slot(first + period + 0.4, phase, period) == pytest.approx(first + period)
    assert (first - phase) % period == pytest.approx(0.0, abs=1e-6) or (first - phase) % period == pytest.approx(period)


def test_every_slot_is_a_look_when_the_tick_equals_the_interval() -> None:
    """The look's time goes through status as RFC3339 text; a slot one interval later must still find it due."""
    spec = parse_canary_spec(
        {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
            "service": {"port": 80},
            "analysis": {"interval": "10s", "threshold": 2, "stepWeight": 10, "maxWeight": 50},
        }
    )
    looks = 0
    for n in range(40):  # slots at many phases: some round up in RFC3339's microseconds, some down
        uid = str(uuid.UUID(int=n * 104729 + 7, version=4))
        slot = first_slot(1_764_000_000.123 + n, tick_phase(uid, 10.0), 10.0)
        status = CanaryStatus()
        for _ in range(50):
            if look_due(spec, status, slot):
                looks += 1
                status = CanaryStatus.from_dict({**status.to_dict(), "lastAnalysisTime": format_time(slot)})
                assert parse_time(format_time(slot)) == pytest.approx(slot, abs=1e-6)
            slot += 10.0
    assert looks == 40 * 50
