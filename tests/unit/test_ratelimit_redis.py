"""Redis fixed-window limiter: exact across instances, fails open when Redis is away.

Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/15); skipped when
unreachable. Each test uses its own key prefix and deletes only its keys.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from redis.asyncio import Redis

from gateway.redislayer.layer import RedisLayer
from gateway.redislayer.settings import RedisSettings
from gateway.routing.ratelimit import Limit, RedisRateLimiter, key_limit
from tests.redis_support import REDIS_URL, redis_with_prefix

NOW = 1_700_000_040.0  # the start of a window: nothing rolls over during a test


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_with_prefix("rl") as client_prefix:
        yield client_prefix


async def test_exact_across_two_instances_under_concurrency(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    limits = {key_limit("k"): Limit(rpm=37)}
    # exactness, not the request budget, is under test: a budget no busy CI machine misses
    # (a miss decides locally, by design, and would admit more than 37)
    settings = replace(RedisSettings.from_url(REDIS_URL), request_timeout_s=10.0)
    layers = [RedisLayer(settings, prefix=prefix) for _ in range(2)]
    a, b = (RedisRateLimiter(layer, limits, prefix=prefix, clock=lambda: NOW) for layer in layers)
    try:
        calls = [lim.check_and_take(key_limit("k")) for _ in range(40) for lim in (a, b)]
        decisions = await asyncio.gather(*calls)
        assert sum(d.allowed for d in decisions) == 37
        assert not a.degraded and not b.degraded
        refused = [d for d in decisions if not d.allowed]
        assert all(d.remaining == 0 and d.retry_after_s == pytest.approx(60) for d in refused)
        remaining = sorted(d.remaining for d in decisions if d.allowed)  # type: ignore[type-var]
        assert remaining == list(range(37))  # each admitted request saw a distinct count
    finally:
        for layer in layers:
            await layer.close()


async def test_one_counter_per_window_with_tokens_and_expiry(
    redis_prefix: tuple[Redis, str],
) -> None:
    client, prefix = redis_prefix
    clock = [NOW + 15]
    limiter = RedisRateLimiter(
        client, {"dep:d": Limit(rpm=100, tpm=1000)}, prefix=prefix, clock=lambda: clock[0]
    )
    first = await limiter.check_and_take("dep:d", tokens=800)
    assert first.allowed and first.remaining_tokens == 200 and first.reset_s == pytest.approx(45)
    refused = await limiter.check_and_take("dep:d", tokens=300)
    assert not refused.allowed and refused.remaining_tokens == 200  # took nothing
    key = limiter.key("dep:d", int(NOW))
    assert key == f"{{{prefix}:rl:dep:d}}:{int(NOW)}"  # one hash tag per limited name
    assert await client.hgetall(key) == {b"r": b"1", b"t": b"800"}
    assert 0 < await client.ttl(key) <= 65
    clock[0] += 45  # the next window: a new counter
    assert (await limiter.check_and_take("dep:d", tokens=300)).allowed
    assert await client.exists(limiter.key("dep:d", int(NOW) + 60))
    await limiter.close()  # does not close a client it was given
    assert await client.ping()


async def test_a_key_brings_its_own_limit_shared_across_instances(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    a = RedisRateLimiter(REDIS_URL, {}, prefix=prefix, clock=lambda: NOW)
    b = RedisRateLimiter(REDIS_URL, {}, prefix=prefix, clock=lambda: NOW)
    own = Limit(rpm=3)  # a runtime key's limit: nothing configured under its name
    try:
        name = key_limit("team-a")
        assert a.limit_for(name) is None
        decisions = [await lim.check_and_take(name, 1, 0, own) for lim in (a, b, a, b)]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert decisions[-1].limit == 3 and decisions[-1].remaining == 0
    finally:
        await a.close()
        await b.close()


async def test_decides_locally_when_redis_is_unreachable() -> None:
    limiter = RedisRateLimiter(
        "redis://127.0.0.1:1/0", {key_limit("k"): Limit(rpm=1)}, prefix="never", clock=lambda: NOW
    )
    try:
        decisions = [await limiter.check_and_take(key_limit("k")) for _ in range(3)]
        assert all(d.degraded for d in decisions)
        # this instance's own view still holds the limit (never fails a request either way)
        assert [d.allowed for d in decisions] == [True, False, False]
        assert limiter.degraded and limiter.outage.outages == 1
        assert limiter.outage.skipped == 2  # the outage is remembered: no second attempt
    finally:
        await limiter.close()


async def test_on_their_own_views_instances_admit_about_one_limit(
    redis_prefix: tuple[Redis, str],
) -> None:
    """While Redis is away, a window it never answered for gets this instance's share of
    the limit (its part of the last window's use), not the whole limit on each instance."""
    _, prefix = redis_prefix
    clock = [NOW]
    limits = {key_limit("k"): Limit(rpm=100)}
    a = RedisRateLimiter(REDIS_URL, limits, prefix=prefix, clock=lambda: clock[0])
    b = RedisRateLimiter(REDIS_URL, limits, prefix=prefix, clock=lambda: clock[0])
    try:
        for i in range(40):  # a sends three requests for every one of b's
            await (b if i % 4 == 3 else a).check_and_take(key_limit("k"))
        await asyncio.sleep(0)  # replies are noted by callbacks
        assert a.shares[key_limit("k")] == pytest.approx(0.75, abs=0.05)
        assert b.shares[key_limit("k")] == pytest.approx(0.25, abs=0.05)
        for lim in (a, b):
            lim.outage.hung("test", 0.25)  # Redis away: the breaker opens
        clock[0] += 60  # a new window, never answered for
        allowed = {}
        for name, lim in (("a", a), ("b", b)):
            decisions = [await lim.check_and_take(key_limit("k")) for _ in range(100)]
            assert all(d.degraded for d in decisions)
            allowed[name] = sum(d.allowed for d in decisions)
        assert 70 <= allowed["a"] <= 80 and 20 <= allowed["b"] <= 30
        assert allowed["a"] + allowed["b"] <= 105  # not 200
    finally:
        await a.close()
        await b.close()


async def test_used_reads_every_instances_use_without_taking(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    limits = {"dep:d": Limit(rpm=10, tpm=1000)}
    a = RedisRateLimiter(REDIS_URL, limits, prefix=prefix, clock=lambda: NOW)
    b = RedisRateLimiter(REDIS_URL, limits, prefix=prefix, clock=lambda: NOW)
    try:
        assert await b.used("dep:d") == (0, 0)
        await a.check_and_take("dep:d", tokens=40)
        await b.check_and_take("dep:d", tokens=2)
        assert await a.used("dep:d") == (2, 42)
        assert await b.used("dep:d") == (2, 42)  # reading took nothing
    finally:
        await a.close()
        await b.close()


async def test_used_is_none_while_redis_is_away() -> None:
    limiter = RedisRateLimiter(
        "redis://127.0.0.1:1/0", {"dep:d": Limit(rpm=1)}, prefix="rl-away", op_timeout_s=0.2
    )
    try:
        assert await limiter.used("dep:d") is None
        assert limiter.degraded
    finally:
        await limiter.close()
