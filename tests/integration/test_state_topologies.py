"""Every Redis-backed piece of shared state, against a single node and a real three-master
Redis Cluster (`state_topology`): several instances (each with its own `RedisLayer`, as
separate gateway processes would have) see one view, and every script and transaction
touches one cluster slot (on the cluster, a key in another slot would fail with
CROSSSLOT; `test_every_script_touches_one_slot` checks the same on a single node)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from redis.asyncio.client import Pipeline, Redis

from gateway.config.model import DeploymentConfig, PriceConfig
from gateway.latency.store import RedisStore
from gateway.redislayer import RedisLayer, RedisUnavailable, one_slot
from gateway.responses_store import RedisResponseStore, StoredResponse
from gateway.routing.feedback_redis import RedisFeedbackStore
from gateway.routing.health import HealthRegistry
from gateway.routing.ratelimit import Limit, RedisRateLimiter, key_limit
from gateway.routing.shared import SharedHealth
from gateway.routing.spend import RedisSpendTracker
from gateway.routing.weights import DeploymentStats, WeightWorker
from tests.conftest import Topology

NOW = 1_710_000_000.0
DEPLOYMENTS = {"cheap": 0.05, "premium": 0.01}


async def eventually(check: Callable[[], bool], within_s: float = 3.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < within_s, f"not within {within_s} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@asynccontextmanager
async def layers(topology: Topology, n: int) -> AsyncIterator[list[RedisLayer]]:
    """`n` independent connection layers: `n` gateway instances' worth of clients."""
    made = [topology.layer() for _ in range(n)]
    for layer in made:
        await layer.start()  # connected (and the cluster's slots known) before timing starts
    try:
        yield made
    finally:
        for layer in made:
            await layer.close()


async def test_rate_limit_is_exact_across_instances(state_topology: Topology) -> None:
    limits = {key_limit("k"): Limit(rpm=50, tpm=10_000)}
    async with layers(state_topology, 3) as (a, b, c):
        limiters = [
            RedisRateLimiter(layer, limits, prefix=state_topology.prefix, clock=lambda: NOW)
            for layer in (a, b, c)
        ]
        calls = [lim.check_and_take(key_limit("k"), 1, 10) for _ in range(40) for lim in limiters]
        decisions = await asyncio.gather(*calls)
        assert sum(d.allowed for d in decisions) == 50
        assert not any(d.degraded for d in decisions)


async def test_spend_adds_up_exactly_and_a_resent_batch_counts_once(
    state_topology: Topology,
) -> None:
    async with layers(state_topology, 2) as (la, lb):
        prefix = state_topology.prefix
        a = RedisSpendTracker(la, prefix=prefix, wall_clock=lambda: NOW)
        b = RedisSpendTracker(lb, prefix=prefix, wall_clock=lambda: NOW)
        for _ in range(100):
            a.add("k", 0.125)
            b.add("k", 0.0625)
            a.add("other", 1.0)
        await asyncio.gather(a.flush(), b.flush())

        # a batch that Redis applied but whose reply was lost: sent again, counted once
        real_call = la.guard.call

        async def reply_lost(op: Any, **kwargs: Any) -> Any:
            await real_call(op, **kwargs)
            raise RedisUnavailable("reply lost")

        a.add("k", 10.0)
        la.guard.call = reply_lost  # type: ignore[method-assign]
        await a.flush()
        la.guard.call = real_call  # type: ignore[method-assign]
        await a.flush()  # the same batch again, same number
        assert a.resent == 1
        b._cache.clear()
        assert await b.spent("k") == pytest.approx(100 * 0.1875 + 10.0, abs=1e-9)
        assert await b.spent("other") == pytest.approx(100.0)
        # a budget spent through one instance is spent for the other
        assert await b.over_budget("other", 100.0) and not await b.over_budget("other", 100.5)
        await a.close()
        await b.close()


async def test_breaker_opened_on_one_instance_is_respected_by_the_others_within_1s(
    state_topology: Topology,
) -> None:
    async with layers(state_topology, 3) as made, AsyncExitStack() as stack:
        registries, shared = [], []
        for i, layer in enumerate(made):
            reg = HealthRegistry(DEPLOYMENTS, window=20, min_requests=5, cooldown_s=30, probes=1)
            sh = SharedHealth(reg, layer, prefix=state_topology.prefix, instance_id=f"i{i}")
            await sh.start()
            stack.push_async_callback(sh.close)
            registries.append(reg)
            shared.append(sh)
        await eventually(lambda: all(s.subscribed for s in shared))
        for _ in range(10):
            registries[0].record_failure("premium", 503)
        assert registries[0].breaker("premium").state == "open"
        took = await eventually(
            lambda: all(r.filter(["premium", "cheap"]) == ["cheap"] for r in registries[1:]), 1.0
        )
        assert took < 1.0


async def test_feedback_ratings_are_shared_and_counted_once(state_topology: Topology) -> None:
    async with layers(state_topology, 2) as (la, lb):
        prefix = state_topology.prefix
        a = RedisFeedbackStore(la, prefix=prefix, refresh_s=0.0)
        b = RedisFeedbackStore(lb, prefix=prefix, refresh_s=0.0)
        a.remember("req-1", "cheap")
        await a.flush()
        assert await b.rate("req-1", 1.0) == "cheap"  # known only to a: found through Redis
        real_call = lb.guard.call

        async def reply_lost(op: Any, **kwargs: Any) -> Any:
            await real_call(op, **kwargs)
            raise RedisUnavailable("reply lost")

        lb.guard.call = reply_lost  # type: ignore[method-assign]
        await b.flush()
        lb.guard.call = real_call  # type: ignore[method-assign]
        await b.flush()  # resent: the high-water mark makes it a no-op
        await a.flush()
        mean, count = a.ratings()["cheap"]
        assert mean == pytest.approx(1.0) and count == pytest.approx(1.0, rel=1e-3)
        await a.close()
        await b.close()


async def test_weights_lease_one_computation_and_everyone_gets_it(
    state_topology: Topology,
) -> None:
    deps = {
        "cheap": DeploymentConfig("cheap", "p", "m", price=PriceConfig(0.15, 0.6)),
        "premium": DeploymentConfig("premium", "p", "m", price=PriceConfig(2.5, 10.0)),
    }
    stats = {"cheap": DeploymentStats(0.99, 0.4, 100), "premium": DeploymentStats(1.0, 0.8, 100)}
    async with layers(state_topology, 3) as made:
        workers = [
            WeightWorker(
                deps,
                lambda: stats,
                dict,
                interval_s=30,
                redis=layer,
                prefix=state_topology.prefix,
                instance_id=f"w{i}",
            )
            for i, layer in enumerate(made)
        ]
        for _ in range(3):
            for worker in workers:
                await worker.tick()
        assert sum(w.computations for w in workers) == 1
        assert all(w.weights() == workers[0].weights() and w.version == 1 for w in workers)
        assert not any(w.degraded for w in workers)


async def test_stored_responses_and_profiles_are_shared(state_topology: Topology) -> None:
    async with layers(state_topology, 2) as (la, lb):
        prefix = state_topology.prefix
        ra = RedisResponseStore(la, prefix=prefix, ttl_s=30)
        rb = RedisResponseStore(lb, prefix=prefix, ttl_s=30)
        record = StoredResponse("key-1", {"id": "resp_1", "object": "response"}, [])
        await ra.put(record)
        assert await rb.get("resp_1", "key-1") == record
        assert await rb.get("resp_1", "key-2") is None  # another key's

        sa = RedisStore(la, prefix=prefix, flush_interval_s=60, refresh_interval_s=60)
        sb = RedisStore(lb, prefix=prefix, flush_interval_s=60, refresh_interval_s=60)
        for name in ("cheap", "premium", "third"):
            sa.incr(sa.key(name, "lat"), {"n": 1.0})
            sb.incr(sb.key(name, "lat"), {"n": 2.0})
            sb.read(sb.key(name, "lat"))
        await sa.sync()
        await sb.sync()
        assert all(sb.read(sb.key(n, "lat")) == {"n": 3.0} for n in ("cheap", "premium", "third"))
        assert sa.dropped_updates == sb.dropped_updates == 0


# --- every script's keys hash to one slot -------------------------------------------------


async def test_every_script_touches_one_slot(
    state_topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records every EVAL/EVALSHA the components send (direct or pipelined) and checks
    that the keys of each hash to one cluster slot."""
    if state_topology.cluster:
        pytest.skip("recorded on the single node; the cluster itself refuses CROSSSLOT")
    seen: list[tuple[str, list[Any]]] = []

    def record(args: tuple[Any, ...]) -> None:
        if args and str(args[0]).upper() in ("EVAL", "EVALSHA"):
            numkeys = int(args[2])
            seen.append((str(args[0]), list(args[3 : 3 + numkeys])))

    real_execute = Redis.execute_command
    real_queue = Pipeline.pipeline_execute_command

    async def execute(self: Redis, *args: Any, **kwargs: Any) -> Any:
        record(args)
        return await real_execute(self, *args, **kwargs)

    def queue(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        record(args)
        return real_queue(self, *args, **kwargs)

    monkeypatch.setattr(Redis, "execute_command", execute)
    monkeypatch.setattr(Pipeline, "pipeline_execute_command", queue)
    async with layers(state_topology, 1) as (layer,):
        prefix = state_topology.prefix
        limiter = RedisRateLimiter(layer, {key_limit("k"): Limit(rpm=5, tpm=50)}, prefix=prefix)
        await limiter.check_and_take(key_limit("k"), 1, 5)
        spend = RedisSpendTracker(layer, prefix=prefix)
        for key_id in ("a", "b", "c", "d"):
            spend.add(key_id, 1.0)
        await spend.flush()
        feedback = RedisFeedbackStore(layer, prefix=prefix)
        feedback.remember("r1", "cheap")
        feedback.remember("r2", "premium")
        await feedback.rate("r1", 1.0)
        await feedback.rate("r2", -1.0)
        await feedback.flush()
    assert len(seen) >= 3, seen  # the rate limit, spend and ratings scripts at least
    for command, keys in seen:
        assert keys and one_slot(keys), (command, keys)


async def test_model_versions_noticed_by_one_instance_reach_the_others(
    state_topology: Topology,
) -> None:
    from gateway.metrics import GatewayMetrics
    from gateway.shared_versions import SharedVersions
    from gateway.sinks import VersionTracker

    async with layers(state_topology, 2) as made, AsyncExitStack() as stack:
        trackers, shared = [], []
        for layer in made:
            tracker = VersionTracker(GatewayMetrics())
            sv = SharedVersions(tracker, layer, interval_s=0.05)
            await sv.start()
            stack.push_async_callback(sv.close)
            trackers.append(tracker)
            shared.append(sv)
        changes: list[tuple[str, str, str]] = []
        trackers[1].listeners.append(lambda *change: changes.append(change))
        trackers[0].note("cheap", "cheap-2026-01")
        await eventually(lambda: trackers[1].versions.get("cheap") == "cheap-2026-01")
        trackers[0].note("cheap", "cheap-2026-02")  # a change seen by instance 0 ...
        await eventually(lambda: trackers[1].versions.get("cheap") == "cheap-2026-02")
        assert changes == []  # ... is adopted by instance 1, not seen there as its own
        gauge = trackers[1].metrics.render().decode()
        assert 'gateway_model_version_info{deployment="cheap",version="cheap-2026-02"} 1.0' in gauge
        assert 'version="cheap-2026-01"' not in gauge
        assert shared[1].adopted == 2
