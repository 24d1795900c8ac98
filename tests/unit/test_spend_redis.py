"""Daily spend shared through Redis: exact sums across instances, budgets, UTC day keys.

Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/15); skipped when
unreachable. Each test uses its own key prefix and deletes only its keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from gateway.routing.spend import RedisSpendTracker
from tests.redis_support import REDIS_URL, redis_with_prefix

UNREACHABLE = "redis://127.0.0.1:1/0"
NOON = datetime(2024, 3, 9, 12, 0, 0, tzinfo=UTC).timestamp()
BEFORE_MIDNIGHT = datetime(2024, 3, 9, 23, 59, 59, tzinfo=UTC).timestamp()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_with_prefix("sp") as client_prefix:
        yield client_prefix


async def test_two_trackers_sum_exactly(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    a = RedisSpendTracker(REDIS_URL, prefix=prefix, wall_clock=lambda: NOON)
    b = RedisSpendTracker(REDIS_URL, prefix=prefix, wall_clock=lambda: NOON)
    try:
        for i in range(200):
            a.add("k", 0.125)
            b.add("k", 0.0625)
            if i % 50 == 0:
                await asyncio.gather(a.flush(), b.flush())
        # a's cache holds the total from its own last flush (up to refresh_s old) + its adds
        assert 0.125 * 200 <= await a.spent("k") <= 0.125 * 200 + 0.0625 * 151
        await asyncio.gather(a.flush(), b.flush())
        assert await client.get(f"{{{prefix}:spend}}:k:20240309") == b"37.5"
        a._cache.clear()
        b._cache.clear()
        assert await a.spent("k") == await b.spent("k") == 37.5
        for _ in range(100):
            a.add("dec", 0.1)
            b.add("dec", 0.2)
        await asyncio.gather(a.flush(), b.flush())
        b._cache.clear()
        assert await b.spent("dec") == pytest.approx(30.0, rel=1e-12)
        assert not a.degraded and not b.degraded
    finally:
        await a.close()
        await b.close()


async def test_budget_across_instances_with_background_flush(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    a = RedisSpendTracker(REDIS_URL, prefix=prefix, flush_interval_s=0.05, refresh_s=0.05)
    b = RedisSpendTracker(REDIS_URL, prefix=prefix, flush_interval_s=0.05, refresh_s=0.05)
    await a.start()
    await b.start()
    try:
        a.add("k", 0.6)
        assert await a.over_budget("k", 0.5)  # at once, before the flush
        assert not await b.over_budget("k", 1.0)
        b.add("k", 0.3)
        deadline = time.monotonic() + 3
        while not await b.over_budget("k", 0.9):
            assert time.monotonic() < deadline, "spend never shared"
            await asyncio.sleep(0.02)
        deadline = time.monotonic() + 3
        while await a.spent("k") != pytest.approx(0.9):
            assert time.monotonic() < deadline, "spend never shared"
            await asyncio.sleep(0.02)
    finally:
        await a.close()
        await b.close()


async def test_day_rollover_uses_a_new_key(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    now = [BEFORE_MIDNIGHT]
    tracker = RedisSpendTracker(client, prefix=prefix, wall_clock=lambda: now[0])
    tracker.add("k", 2.0)
    now[0] += 1  # the add stays on the day it was made, even flushed after midnight
    tracker.add("k", 0.5)
    assert await tracker.spent("k") == 0.5
    await tracker.flush()
    assert await client.get(f"{{{prefix}:spend}}:k:20240309") == b"2"
    assert await client.get(f"{{{prefix}:spend}}:k:20240310") == b"0.5"
    assert 0 < await client.ttl(f"{{{prefix}:spend}}:k:20240310") <= 2 * 86_400
    assert await tracker.over_budget("k", 0.5) and not await tracker.over_budget("k", 1.0)
    await tracker.close()


async def test_redis_unreachable_counts_locally() -> None:
    tracker = RedisSpendTracker(UNREACHABLE, prefix="test-sp-down", op_timeout_s=0.2)
    try:
        tracker.add("k", 1.5)
        started = time.monotonic()
        await tracker.flush()
        assert tracker.degraded and tracker.outage.outages == 1
        tracker.add("k", 0.5)
        assert await tracker.spent("k") == 2.0  # nothing lost, retried later
        assert await tracker.over_budget("k", 2.0)
        assert await tracker.spent("k") == 2.0  # the second call uses the cache: no wait
        assert time.monotonic() - started < 1.5
    finally:
        await tracker.close()


async def test_close_sends_the_last_adds_to_a_slow_redis(
    redis_prefix: tuple[Redis, str],
) -> None:
    """A Redis slower than the flush's budget at shutdown (a busy machine) still gets the
    last adds: close() gives its last batch the whole drain budget, not op_timeout_s."""
    client, prefix = redis_prefix
    tracker = RedisSpendTracker(client, prefix=prefix, op_timeout_s=0.02, wall_clock=lambda: NOON)
    script = tracker._script

    async def slow(**kwargs: object) -> object:
        await asyncio.sleep(0.1)  # five times the op budget
        return await script(**kwargs)  # type: ignore[arg-type]

    tracker._script = slow  # type: ignore[assignment]
    await tracker.start()
    tracker.add("k", 0.75)
    await tracker.close()
    assert await client.get(f"{{{prefix}:spend}}:k:20240309") == b"0.75"
    assert tracker.outage.failures == 0


async def test_close_with_redis_away_logs_what_was_not_shared() -> None:
    tracker = RedisSpendTracker(UNREACHABLE, prefix="test-sp-down", op_timeout_s=0.2)
    await tracker.start()
    tracker.add("k", 1.25)
    with capture_logs() as logs:
        await tracker.close()
    assert tracker.degraded
    lost = [e for e in logs if e["event"] == "spend not shared at close"]
    assert len(lost) == 1 and lost[0]["usd"] == 1.25


async def test_a_total_read_later_than_the_request_budget_is_kept(
    redis_prefix: tuple[Redis, str],
) -> None:
    """Redis answers a budget check after the request path stopped waiting (a busy
    machine): that request goes on without it, and the total it brings serves the next
    requests, not the nothing-spent the restarted instance started with."""
    client, prefix = redis_prefix
    first = RedisSpendTracker(client, prefix=prefix, wall_clock=lambda: NOON)
    first.add("k", 2.5)
    assert await first.flush()
    restarted = RedisSpendTracker(client, prefix=prefix, wall_clock=lambda: NOON)
    assert await restarted.spent("other") == 0.0  # connected: the request budget applies now
    restarted._layer.settings = replace(restarted._layer.settings, request_timeout_s=1e-9)
    assert await restarted.spent("k") == 0.0  # no answer within the budget: fail-open
    async with asyncio.timeout(5):
        while await restarted.spent("k") == 0.0:  # noqa: ASYNC110 (the reply has no event)
            await asyncio.sleep(0.001)  # until the late reply is cached
    assert await restarted.spent("k") == 2.5
    await restarted.close()
    await first.close()
