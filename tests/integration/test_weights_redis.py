"""Weights shared through one real Redis: computed once per interval, read by every instance.

Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/15); skipped when
unreachable. Each test uses its own key prefix and deletes only its keys.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from gateway.config.model import DeploymentConfig, PriceConfig
from gateway.routing.feedback_redis import RedisFeedbackStore
from gateway.routing.weights import DeploymentStats, RatingsSource, StatsSource, WeightWorker
from tests.redis_support import eventually, redis_with_prefix

DEPLOYMENTS = {
    "cheap": DeploymentConfig("cheap", "p", "m", price=PriceConfig(0.15, 0.6)),
    "premium": DeploymentConfig("premium", "p", "m", price=PriceConfig(2.5, 10.0)),
}
STATS = {
    "cheap": DeploymentStats(0.99, 0.4, 100),
    "premium": DeploymentStats(1.0, 0.8, 100),
}


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_with_prefix("w") as client_prefix:
        yield client_prefix


def worker(
    client: Redis,
    prefix: str,
    name: str,
    interval_s: float,
    *,
    poll_s: float | None = None,
    stats: StatsSource = lambda: STATS,
    ratings: RatingsSource = dict,
) -> WeightWorker:
    return WeightWorker(
        DEPLOYMENTS,
        stats=stats,
        ratings=ratings,
        interval_s=interval_s,
        redis=client,
        prefix=prefix,
        instance_id=name,
        poll_s=poll_s,
    )


async def test_lease_holder_computes_the_other_reads(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    a = worker(client, prefix, "a", interval_s=0.3)
    b = worker(client, prefix, "b", interval_s=0.3)
    await a.tick()
    await b.tick()
    assert (a.computations, b.computations) == (1, 0)
    assert b.weights() == a.weights() and a.version == b.version == 1
    assert a.weights()["cheap"] > a.weights()["premium"]  # faster and cheaper
    stored = await client.hgetall(a.weights_key)
    assert stored[b"@by"] == b"a" and stored[b"@version"] == b"1"
    assert float(stored[b"cheap"]) == a.weights()["cheap"]
    await b.tick()  # lease still held by a: still only reads
    assert b.computations == 0

    deadline = time.monotonic() + 2
    while await client.exists(a.lease_key):
        assert time.monotonic() < deadline, "lease never expired"
        await asyncio.sleep(0.02)
    await b.tick()  # the next interval: whoever comes first computes, here b
    await a.tick()
    assert (a.computations, b.computations) == (1, 1)
    assert a.version == b.version == 2 and a.weights() == b.weights()
    assert not a.degraded and not b.degraded


async def test_two_running_workers_compute_once_per_interval(
    redis_prefix: tuple[Redis, str],
) -> None:
    client, prefix = redis_prefix
    interval = 0.25
    computed_at: list[tuple[float, str]] = []

    def stats_for(name: str) -> Callable[[], dict[str, DeploymentStats]]:
        def stats() -> dict[str, DeploymentStats]:
            computed_at.append((time.monotonic(), name))
            return STATS

        return stats

    a = worker(client, prefix, "a", interval, poll_s=0.02, stats=stats_for("a"))
    b = worker(client, prefix, "b", interval, poll_s=0.02, stats=stats_for("b"))
    await a.start()
    await b.start()
    try:
        await eventually(lambda: len(computed_at) >= 4, within_s=5)
        await eventually(lambda: a.version == b.version and a.version >= 4)
    finally:
        await a.close()
        await b.close()
    assert a.computations + b.computations == len(computed_at)
    times = [t for t, _ in computed_at]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= interval * 0.8, gaps  # never twice within one interval
    assert a.weights() == b.weights()


async def test_ratings_on_one_instance_move_weights_everywhere(
    redis_prefix: tuple[Redis, str],
) -> None:
    client, prefix = redis_prefix
    fa = RedisFeedbackStore(client, prefix=prefix, flush_interval_s=0.05, refresh_s=0.05)
    fb = RedisFeedbackStore(client, prefix=prefix, flush_interval_s=0.05, refresh_s=0.05)
    a = worker(client, prefix, "a", 0.2, poll_s=0.02, ratings=fa.ratings)
    b = worker(client, prefix, "b", 0.2, poll_s=0.02, ratings=fb.ratings)
    for part in (fa, fb, a, b):
        await part.start()
    try:
        await eventually(lambda: a.version >= 1 and a.version == b.version)
        before = b.weights()["premium"]
        for i in range(40):
            fa.remember(f"r{i}", "premium")
            assert await fa.rate(f"r{i}", 1.0) == "premium"
        await eventually(lambda: b.weights()["premium"] > before * 1.2, within_s=5)
        await eventually(lambda: a.weights() == b.weights())
    finally:
        for part in (a, b, fa, fb):
            await part.close()
