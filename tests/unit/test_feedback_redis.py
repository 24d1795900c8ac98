"""Feedback shared through Redis: a request served by one instance is rated on another.

Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/15); skipped when
unreachable. Each test uses its own key prefix and deletes only its keys.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.routing.feedback_redis import RedisFeedbackStore
from tests.redis_support import REDIS_URL, eventually, redis_with_prefix

UNREACHABLE = "redis://127.0.0.1:1/0"
DAY = 86_400.0


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_with_prefix("fb") as client_prefix:
        yield client_prefix


def store(prefix: str) -> RedisFeedbackStore:
    return RedisFeedbackStore(REDIS_URL, prefix=prefix, flush_interval_s=0.05, refresh_s=0.1)


async def test_rated_on_b_remembered_on_a(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    a, b = store(prefix), store(prefix)
    await a.start()
    await b.start()
    try:
        a.remember("req-1", "cheap", "chat")  # no await: a local append
        key = a.request_key("req-1")

        async def flushed() -> bool:
            return bool(await client.exists(key))

        deadline = time.monotonic() + 3
        while not await flushed():
            assert time.monotonic() < deadline, "request id never flushed"
            await asyncio.sleep(0.02)
        assert 0 < await client.ttl(key) <= DAY + 60  # of use within the feedback window
        assert await b.rate("req-1", 0.5) == "cheap"
        assert await b.rate("unknown", 0.5) is None
        assert b.ratings()["cheap"][0] == pytest.approx(0.5)  # at once, before the flush
        await eventually(lambda: "cheap" in a.ratings())
        mean, count = a.ratings()["cheap"]
        assert mean == pytest.approx(0.5) and count == pytest.approx(1.0, rel=1e-3)
        assert await a.rate("req-1", -1.0) == "cheap"  # a second rating replaces the first
        await eventually(lambda: b.ratings()["cheap"][0] < 0)
        mean, count = b.ratings()["cheap"]
        assert mean == pytest.approx(-1.0, abs=1e-3) and count == pytest.approx(1.0, rel=1e-3)
        assert not a.degraded and not b.degraded
    finally:
        await a.close()
        await b.close()


async def test_ratings_decay_in_redis_like_in_memory(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    now = [1_700_000_000.0]
    s = RedisFeedbackStore(client, prefix=prefix, half_life_s=DAY, wall_clock=lambda: now[0])
    s.remember("a", "cheap")
    s.remember("b", "cheap")
    s.remember("c", "premium")
    assert await s.rate("a", 1.0) == "cheap"
    await s.flush()
    now[0] += DAY
    assert await s.rate("b", -1.0) == "cheap"
    assert await s.rate("c", 0.25) == "premium"
    await s.flush()
    stored = await client.hgetall(s.ratings_key)
    assert float(stored[b"cheap|s"]) == pytest.approx(-0.5)
    assert float(stored[b"cheap|n"]) == pytest.approx(1.5)
    assert float(stored[b"cheap|t"]) == now[0]
    ratings = s.ratings()
    assert ratings["cheap"] == (pytest.approx(-1 / 3), pytest.approx(1.5))
    assert ratings["premium"] == (pytest.approx(0.25), pytest.approx(1.0))
    assert 0 < await client.ttl(s.ratings_key) <= 30 * 86_400
    await s.close()


async def test_redis_unreachable_falls_back_to_local_state() -> None:
    s = RedisFeedbackStore(UNREACHABLE, prefix="test-fb-down", op_timeout_s=0.3)
    await s.start()
    try:
        s.remember("req-1", "cheap")
        assert await s.rate("req-1", 1.0) == "cheap"  # served here: known locally
        assert await s.rate("elsewhere", 1.0) is None
        assert s.degraded
        await s.flush()
        assert s.ratings() == {"cheap": (1.0, pytest.approx(1.0, rel=1e-3))}  # kept, retried
    finally:
        started = time.monotonic()
        await s.close()
        assert time.monotonic() - started < 2
