"""Health shared through one real Redis: what one instance sees, the others act on.

Needs Redis at $REDIS_URL (default redis://127.0.0.1:6379/15); skipped when
unreachable. Each test uses its own key prefix and deletes only its keys.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from redis.asyncio import Redis

from gateway.routing.health import AllUnavailable, HealthRegistry
from gateway.routing.redisconn import connect
from gateway.routing.shared import SharedHealth

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
DEPLOYMENTS = {"cheap": 0.05, "premium": 0.01}


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    client = connect(REDIS_URL)
    try:
        async with asyncio.timeout(2):
            await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc!r}")
    prefix = f"test-sh-{uuid.uuid4().hex[:12]}"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        keys += [key async for key in client.scan_iter(match=f"{{{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def registry() -> HealthRegistry:
    return HealthRegistry(DEPLOYMENTS, window=100, min_requests=20, cooldown_s=30, probes=2)


async def eventually(check: Callable[[], bool], within_s: float) -> float:
    """Poll until `check()` holds; returns the time it took (fails after `within_s`)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > within_s:
            pytest.fail(f"condition not met within {within_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_breaker_opened_on_a_stops_b_within_two_seconds(
    redis_prefix: tuple[Redis, str],
) -> None:
    client, prefix = redis_prefix
    reg_a, reg_b = registry(), registry()
    a = SharedHealth(reg_a, REDIS_URL, prefix=prefix, instance_id="a")
    b = SharedHealth(reg_b, REDIS_URL, prefix=prefix, instance_id="b")
    await a.start()
    await b.start()
    try:
        await eventually(lambda: b.subscribed, 2.0)
        for _ in range(20):
            reg_a.record_failure("premium", 503)
        assert reg_a.breaker("premium").state == "open"
        took = await eventually(lambda: reg_b.filter(["premium", "cheap"]) == ["cheap"], 2.0)
        assert took < 2.0
        assert reg_b.breaker("premium").state == "open"
        assert reg_b.breaker("premium").retry_in_s() == pytest.approx(30, abs=1.5)
        assert reg_b.breaker("cheap").state == "closed"
        # outcomes went to the capped shared list, newest first
        await eventually(lambda: not a._pending, 2.0)
        entries = await client.lrange(a.outcomes_key("premium"), 0, -1)
        assert len(entries) == 20
        assert orjson.loads(entries[0])[:2] == [0, 503]
        # the other way round: b's recovery closes a's breaker
        reg_b.breaker("premium").reset()  # as when b's probes succeed: published
        await eventually(lambda: reg_a.breaker("premium").state == "closed", 2.0)
        assert not a.degraded and not b.degraded
    finally:
        await a.close()
        await b.close()


async def test_capped_list_and_late_instance_catches_up(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    reg_a = HealthRegistry(DEPLOYMENTS, window=30, min_requests=20, cooldown_s=30, probes=2)
    a = SharedHealth(reg_a, client, prefix=prefix, instance_id="a", flush_interval_s=0.05)
    await a.start()
    try:
        for _ in range(25):
            reg_a.record_success("cheap", 0.25)
        for _ in range(20):
            reg_a.record_failure("cheap", 500)
        assert reg_a.breaker("cheap").state == "open"
        await eventually(lambda: not a._pending and not a._changes, 2.0)
        await asyncio.sleep(0.05)
        assert await client.llen(a.outcomes_key("cheap")) == 30
        # an instance started later reads the state hash and seeds its window
        reg_c = HealthRegistry(DEPLOYMENTS, window=30, min_requests=20, cooldown_s=30, probes=2)
        c = SharedHealth(reg_c, client, prefix=prefix, instance_id="c")
        await c.start()
        try:
            await eventually(lambda: reg_c.breaker("cheap").state == "open", 2.0)
            await eventually(lambda: len(reg_c.breaker("cheap")) == 30, 2.0)
            assert reg_c.breaker("cheap").failures == 20
        finally:
            await c.close()
    finally:
        await a.close()
    assert await client.ping()  # a client passed in stays open


async def test_redis_unreachable_degrades_without_raising() -> None:
    reg = registry()
    shared = SharedHealth(reg, "redis://127.0.0.1:1/0", prefix="never", flush_interval_s=0.05)
    await shared.start()
    try:
        for _ in range(20):
            reg.record_failure("cheap", 503)  # listeners must not raise into this path
        assert reg.breaker("cheap").state == "open"
        await eventually(lambda: shared.degraded, 2.0)
        assert shared.outage.outages == 1  # one outage, logged once
        assert reg.filter(["cheap", "premium"]) == ["premium"]  # the local view still works
        await asyncio.sleep(0.3)
        assert shared.degraded and shared.outage.outages == 1
        assert len(shared._pending["cheap"]) == 20  # kept (bounded) for when Redis is back
    finally:
        await shared.close()


class Proxy:
    """A TCP relay to Redis that can be cut and restored (a Redis outage, seen from one side)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


async def test_outage_then_reconnects_by_itself(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    kwargs = client.connection_pool.connection_kwargs
    proxy = Proxy((kwargs.get("host", "127.0.0.1"), int(kwargs.get("port", 6379))))
    await proxy.start()
    db = int(kwargs.get("db", 0))
    reg_a, reg_b = registry(), registry()
    a = SharedHealth(
        reg_a,
        f"redis://127.0.0.1:{proxy.port}/{db}",
        prefix=prefix,
        instance_id="a",
        flush_interval_s=0.05,
        reconnect_max_s=0.2,
    )
    b = SharedHealth(reg_b, client, prefix=prefix, instance_id="b")
    await a.start()
    await b.start()
    try:
        await eventually(lambda: a.subscribed and b.subscribed, 2.0)
        await proxy.cut()
        await eventually(lambda: a.degraded, 2.0)
        for _ in range(20):
            reg_a.record_failure("cheap", 503)  # seen while Redis is away from a
        await asyncio.sleep(0.2)
        assert reg_b.breaker("cheap").state == "closed"
        await proxy.start()  # same port
        await eventually(lambda: not a.degraded, 3.0)
        await eventually(lambda: reg_b.breaker("cheap").state == "open", 2.0)
        await eventually(lambda: not a._pending, 2.0)
        assert a.outage.outages == 1
    finally:
        await a.close()
        await b.close()
        await proxy.cut()


async def test_a_forced_probe_on_one_instance_sheds_the_other(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    reg_a, reg_b = registry(), registry()
    a = SharedHealth(reg_a, REDIS_URL, prefix=prefix, instance_id="a")
    b = SharedHealth(reg_b, REDIS_URL, prefix=prefix, instance_id="b")
    await a.start()
    await b.start()
    try:
        await eventually(lambda: b.subscribed, 2.0)
        for reg in (reg_a, reg_b):
            reg.probe_interval_s = 30.0
            reg.breaker("premium").trip(60)
        assert reg_a.filter(["premium"]) == ["premium"]  # a sends the one probe
        await eventually(lambda: reg_b.probe_held_s("premium") > 25, 2.0)
        with pytest.raises(AllUnavailable):
            reg_b.filter(["premium"])  # b sends none: it sheds
    finally:
        await a.close()
        await b.close()
