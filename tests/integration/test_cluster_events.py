"""Cluster events under load, with 0 failed requests: a slot holding the gateways' keys
migrates to another master (MOVED/ASK, handled by the client: no outage declared, every
rate-limit take lands exactly once), and a master fails over to its replica (requests
decide locally meanwhile; shared state resumes on the new master)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
from redis.asyncio.cluster import RedisCluster

from gateway.redislayer import slot_of
from gateway.routing.ratelimit import RedisRateLimiter, key_limit
from tests.gateways import fleet, spread
from tests.redis_servers import RedisClusterProcs, move_slot, redis_cluster

FAST = {"ttft_ms": 2, "itl_ms": 0, "tokens": 3}
BIG = 1_000_000


def state(url: str) -> dict[str, object]:
    # a generous budget: see test_cluster_gateways.cluster_state (one busy test process)
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return {
        "backend": "redis",
        "url": url,
        "cluster": True,
        "prefix": prefix,
        "request_timeout_ms": 200,
        "probe_interval_s": 0.1,
    }


async def takes_in_redis(url: str, limiter: RedisRateLimiter, name: str) -> int:
    """Requests counted in the shared counter of `name` (this window and the last)."""
    client = RedisCluster.from_url(url)
    try:
        now = int(time.time() // 60 * 60)
        total = 0
        for start in (now - 60, now):
            raw = await client.hget(limiter.key(name, start), "r")
            total += int(raw or 0)
        return total
    finally:
        await client.aclose()


async def test_slot_migration_under_load(cluster_procs: RedisClusterProcs) -> None:
    async with (
        fleet(3, {"a": FAST}, state(cluster_procs.url), routing={"key_rpm": BIG}) as f,
        aiohttp.ClientSession() as http,
    ):
        limiter = f.gateways[0].state.limiter
        assert isinstance(limiter, RedisRateLimiter)
        name = key_limit("anonymous")
        slot = slot_of(limiter.key(name, 0))
        source = cluster_procs.owner_of(slot)
        target = next(n for n in cluster_procs.masters if n.port != source.port)

        load = asyncio.create_task(spread(http, f.urls, total=300, concurrency=6))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(move_slot, cluster_procs, slot, target)
        statuses = await load
        statuses += await spread(http, f.urls, total=30, concurrency=3)  # after: MOVED

        assert cluster_procs.owner_of(slot).port == target.port
        assert statuses == [200] * len(statuses)
        layers = [gw.state.redis_layer for gw in f.gateways]
        assert all(layer is not None and layer.guard.outages == 0 for layer in layers), [
            layer.guard.last_outage for layer in layers if layer is not None
        ]
        # MOVED/ASK never surface as errors (a call over its budget on this busy machine
        # may still decide locally; its take lands all the same, as counted below)
        assert all(layer.command_errors == 0 for layer in layers if layer is not None), [
            layer.last_error for layer in layers if layer is not None
        ]
        assert await takes_in_redis(cluster_procs.url, limiter, name) == len(statuses)


async def test_master_failover_under_load() -> None:
    with redis_cluster(masters=3, replicas=1) as procs:
        async with (
            fleet(2, {"a": FAST}, state(procs.url), routing={"key_rpm": BIG}) as f,
            aiohttp.ClientSession() as http,
        ):
            limiter = f.gateways[0].state.limiter
            assert isinstance(limiter, RedisRateLimiter)
            name = key_limit("anonymous")
            slot = slot_of(limiter.key(name, 0))
            old = procs.owner_of(slot)
            before = await spread(http, f.urls, total=40, concurrency=4)
            counted_before = await takes_in_redis(procs.url, limiter, name)
            assert counted_before == len(before)

            old.stop()  # the master of the limiter's slot dies
            during: list[int] = []
            deadline = time.monotonic() + 15
            while True:  # steady traffic through the failover
                during += await spread(http, f.urls, total=10, concurrency=2)
                new = procs.owner_of(slot) if _has_owner(procs, slot, old.port) else None
                if new is not None and all(not _degraded(gw) for gw in f.gateways):
                    break
                assert time.monotonic() < deadline, "no failover within 15 s"
            # the clients follow the promoted replica (a failing call re-reads the slot map):
            # takes land in Redis again
            while True:
                settled = await takes_in_redis(procs.live_url, limiter, name)
                during += await spread(http, f.urls, total=4, concurrency=2)
                if await takes_in_redis(procs.live_url, limiter, name) >= settled + 4:
                    break
                assert time.monotonic() < deadline, "takes not shared again within 15 s"
            counted_before = await takes_in_redis(procs.live_url, limiter, name)
            after = await spread(http, f.urls, total=40, concurrency=4)

            assert before + during + after == [200] * (len(before) + len(during) + len(after))
            # while the dead master's slots had no owner, calls for them decided locally; the
            # other masters answered, so no outage was declared (the degraded gauge stayed 0)
            guards = [gw.state.redis_layer.guard for gw in f.gateways]  # type: ignore[union-attr]
            assert [g.outages for g in guards] == [0] * len(guards), [g.last_outage for g in guards]
            # shared again on the promoted replica: new takes land there
            counted = await takes_in_redis(procs.live_url, limiter, name)
            assert counted >= counted_before + len(after)


def _has_owner(procs: RedisClusterProcs, slot: int, dead_port: int) -> bool:
    try:
        return procs.owner_of(slot).port != dead_port
    except AssertionError:
        return False


def _degraded(gw: object) -> bool:
    return bool(gw.state.degraded)  # type: ignore[attr-defined]
