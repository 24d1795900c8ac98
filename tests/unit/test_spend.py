"""Daily spend per key in memory: adds, race records (losers included), budgets, UTC days."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.routing.spend import (
    MemorySpendTracker,
    SpendTracker,
    deployment_subject,
    record_cost,
    utc_day,
)
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.streaming.events import Usage

BEFORE_MIDNIGHT = datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC).timestamp()


def race() -> RaceRecord:
    winner = AttemptRecord(
        "premium",
        0.0,
        price_input=2.0,
        price_output=8.0,
        outcome="won",
        usage=Usage(prompt=1000, completion=500),
    )
    loser = AttemptRecord(
        "cheap",
        0.0,
        price_input=0.5,
        price_output=1.0,
        prompt_estimate=1000,
        outcome="cancelled",
        tokens=20,
    )
    return RaceRecord("r1", "chat", "race", attempts=[winner, loser], winner="premium")


def test_utc_day() -> None:
    assert utc_day(BEFORE_MIDNIGHT) == "20240309"
    assert utc_day(BEFORE_MIDNIGHT + 1) == "20240310"


def test_record_cost_includes_the_losers_waste() -> None:
    record = race()
    assert record_cost(record) == pytest.approx((1000 * 2 + 500 * 8 + 1000 * 0.5 + 20 * 1) / 1e6)


async def test_add_spent_and_budget() -> None:
    tracker: SpendTracker = MemorySpendTracker(wall_clock=lambda: BEFORE_MIDNIGHT - 3600)
    assert await tracker.spent("k") == 0.0
    tracker.add("k", 0.25)
    tracker.add("k", 0.5)
    tracker.add("other", 10.0)
    tracker.add_record("k", race())
    expected = 0.75 + record_cost(race())
    assert await tracker.spent("k") == pytest.approx(expected)
    assert not await tracker.over_budget("k", 1.0)
    assert await tracker.over_budget("k", expected)  # reaching the budget is over it
    assert await tracker.over_budget("other", 10.0)
    assert not tracker.degraded


async def test_day_rollover() -> None:
    now = [BEFORE_MIDNIGHT]
    tracker = MemorySpendTracker(wall_clock=lambda: now[0])
    tracker.add("k", 3.0)
    assert await tracker.over_budget("k", 2.0)
    now[0] += 1  # midnight UTC: a new day, a new budget
    assert await tracker.spent("k") == 0.0
    assert not await tracker.over_budget("k", 2.0)
    tracker.add("k", 1.0)
    assert await tracker.spent("k") == 1.0
    now[0] += 3 * 86_400
    assert await tracker.spent("k") == 0.0
    assert await tracker.spent("k", "month") == 4.0  # the month goes on
    assert list(tracker._spent) == [("k", "202403")]  # old days pruned


async def test_month_rollover_and_deployment_spend() -> None:
    now = [BEFORE_MIDNIGHT]
    tracker = MemorySpendTracker(wall_clock=lambda: now[0])
    tracker.add("k", 2.0)
    tracker.add(deployment_subject("d"), 0.5)
    assert await tracker.spent("k", "month") == 2.0
    assert await tracker.spent("dep:d", "month") == 0.5
    assert await tracker.spent("dep:d") == 0.5
    now[0] += 40 * 86_400  # another month
    assert await tracker.spent("k", "month") == 0.0
    tracker.add("k", 1.0)
    assert await tracker.spent("k", "month") == 1.0
    assert {period for _, period in tracker._spent} == {"202403", "202404", "20240418"}
