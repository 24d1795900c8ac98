"""RedisStore against real Redis servers: sharing, outages, restarts, Redis Cluster.

The shared Redis comes from REDIS_URL (default redis://127.0.0.1:6379/15); every
test uses its own key prefix and deletes its keys. Restart and Cluster tests
start throwaway `redis-server` processes on free ports.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot
from structlog.testing import capture_logs

from gateway.latency import LatencyProfiles, RedisStore
from tests.redis_servers import RedisClusterProcs

T0 = datetime(2025, 3, 4, 13, 20, tzinfo=UTC).timestamp()  # 13:20 UTC
PRIOR = (550.0, 900.0)
FLUSH_S, REFRESH_S = 0.05, 0.1  # fast background cycles for tests
REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def clock() -> float:
    return T0


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> float:
    """Poll until ``predicate()`` holds; returns the time it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > within:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def delete_prefix(client: Redis, prefix: str) -> None:
    pattern = "{" + prefix.rstrip(":") + ":*"
    keys = [key async for key in client.scan_iter(match=pattern, count=500)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    client = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except Exception as exc:
        pytest.skip(f"no Redis at {url.split('@')[-1]} ({type(exc).__name__}); set REDIS_URL")
    finally:
        await client.aclose()
    yield url


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"test:{uuid4().hex}:"
    yield name
    client = Redis.from_url(redis_url, socket_timeout=2)
    try:
        await delete_prefix(client, name)
    finally:
        await client.aclose()


async def test_two_instances_see_each_others_samples(redis_url: str, prefix: str) -> None:
    a = RedisStore(redis_url, prefix=prefix, flush_interval_s=FLUSH_S, refresh_interval_s=REFRESH_S)
    b = RedisStore(redis_url, prefix=prefix, flush_interval_s=FLUSH_S, refresh_interval_s=REFRESH_S)
    pa = LatencyProfiles(a, min_samples=20, clock=clock, cache_ttl_s=0)
    pb = LatencyProfiles(b, min_samples=20, clock=clock, cache_ttl_s=0)
    await a.start()
    await b.start()
    try:
        assert pb.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR).level == "prior"  # and now wanted
        for i in range(20):
            pa.record_attempt("gpt", "eu", ttft_s=0.40 + 0.001 * i)
        assert pa.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR).level == "region_hour"  # own, at once
        await eventually(lambda: pb.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR).level != "prior")
        seen = pb.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR)
        assert seen.level == "region_hour" and seen.samples == pytest.approx(20)

        for _ in range(10):
            pb.record_attempt("gpt", "eu", censored_s=0.3)
        await eventually(lambda: pa.histograms("gpt", "eu", 13).ttft_samples == pytest.approx(30))
        await eventually(lambda: pb.histograms("gpt", "eu", 13).ttft_samples == pytest.approx(30))
        est_a = pa.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR)
        est_b = pb.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR)
        assert est_a == est_b and est_a.censored_share == pytest.approx(1 / 3)

        # tiny (exponent-form) increments survive HINCRBYFLOAT
        key = a.key("tiny", "k")
        a.incr(key, {"x": 1.25e-7})
        b.read(key)
        await eventually(lambda: b.read(key).get("x") == pytest.approx(1.25e-7))
        assert a.dropped_updates == b.dropped_updates == 0 and a.healthy and b.healthy
    finally:
        await a.close()
        await b.close()


async def test_update_visible_to_another_instance_within_5s_with_defaults(
    redis_url: str, prefix: str
) -> None:
    a = RedisStore(redis_url, prefix=prefix)
    b = RedisStore(redis_url, prefix=prefix)
    await a.start()
    await b.start()
    try:
        key = a.key("dep", "probe")
        b.read(key)  # b uses this key
        await asyncio.sleep(0)
        a.incr(key, {"n": 1.0})
        took = await eventually(lambda: b.read(key).get("n") == 1.0, within=5.0)
        assert took < 5.0
    finally:
        await a.close()
        await b.close()


async def test_close_flushes_what_is_buffered(redis_url: str, prefix: str) -> None:
    store = RedisStore(redis_url, prefix=prefix, flush_interval_s=60, refresh_interval_s=60)
    await store.start()
    key = store.key("dep", "k")
    store.incr(key, {"f": 2.5})
    await store.close()
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.hgetall(key) == {"f": "2.5"}
        assert 0 < await client.ttl(key) <= 365 * 86400
    finally:
        await client.aclose()


async def requests_stay_fast(profiles: LatencyProfiles, rounds: int) -> float:
    """Record + query like a request would; returns the slowest round (seconds)."""
    worst = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        profiles.record_attempt("gpt", "eu", ttft_s=0.5, outcome="won")
        profiles.record_attempt("claude", "eu", censored_s=0.5, outcome="cancelled")
        profiles.ttft_quantile("gpt", "eu", 13, 0.9, PRIOR)
        profiles.ttft_quantile("claude", "eu", 13, 0.9, PRIOR)
        worst = max(worst, time.perf_counter() - start)
        await asyncio.sleep(0.01)
    return worst


async def test_dead_redis_never_fails_a_request_and_counts_drops() -> None:
    store = RedisStore(
        "redis://127.0.0.1:1/0",
        prefix=f"test:{uuid4().hex}:",
        flush_interval_s=FLUSH_S,
        refresh_interval_s=REFRESH_S,
    )
    profiles = LatencyProfiles(store, min_samples=5, clock=clock, cache_ttl_s=0)
    with capture_logs() as logs:
        await store.start()
        try:
            worst = await requests_stay_fast(profiles, 10)
            await eventually(lambda: store.dropped_updates > 0)
            dropped = store.dropped_updates
            worst = max(worst, await requests_stay_fast(profiles, 10))
            await eventually(lambda: store.dropped_updates > dropped)
            assert not store.healthy and store.outages == 1
            # this instance keeps learning from its own samples while Redis is away
            est = profiles.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR)
            assert est.level == "region_hour" and est.samples == pytest.approx(20)
        finally:
            await store.close()
    assert worst < 0.1  # record + query are sync: no Redis round trip can hide in them
    warnings = [e for e in logs if e["log_level"] == "warning"]
    # one line from the Redis layer's breaker, one from the store (with its drop count)
    assert sorted(e["event"] for e in warnings) == [
        "latency_store_unavailable",
        "redis unavailable, using local views",
    ]
    store_line = next(e for e in warnings if e["event"] == "latency_store_unavailable")
    assert "op" in store_line and "error" in store_line


async def test_slow_redis_never_slows_a_request() -> None:
    """A server that accepts and never answers: the 0.5 s socket timeout bounds each flush."""
    writers: list[asyncio.StreamWriter] = []

    async def blackhole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(blackhole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(
        f"redis://127.0.0.1:{port}/0",
        prefix="test:slow:",
        flush_interval_s=FLUSH_S,
        refresh_interval_s=REFRESH_S,
    )
    profiles = LatencyProfiles(store, min_samples=5, clock=clock, cache_ttl_s=0)
    await store.start()
    try:
        worst = await requests_stay_fast(profiles, 60)  # ~0.6 s, across at least one timeout
        await eventually(lambda: store.dropped_updates > 0)
        assert worst < 0.1 and not store.healthy and store.outages == 1
    finally:
        started = time.monotonic()
        await store.close()
        assert time.monotonic() - started < 3.0  # bounded even though the final flush hangs
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


def free_port(bus: bool = False) -> int:
    """A free TCP port (and port + 10000 for a cluster bus when ``bus``)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 50000)
        try:
            for p in (port, port + 10000) if bus else (port,):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def server_args(port: int, workdir: Path, *extra: str) -> list[str]:
    assert REDIS_SERVER is not None
    base = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    return [*base, "--save", "", "--appendonly", "no", *extra]


needs_redis_server = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are not installed: cannot start throwaway servers",
)


async def wait_ping(port: int, within: float = 5.0) -> None:
    client = Redis(host="127.0.0.1", port=port, socket_timeout=0.2, socket_connect_timeout=0.2)
    deadline = time.monotonic() + within
    try:
        while True:
            try:
                if await client.ping():
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def hgetall(url: str, key: str) -> dict[bytes, bytes]:
    client = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        raw: dict[bytes, bytes] = await client.hgetall(key)  # type: ignore[assignment]
        return raw
    finally:
        await client.aclose()


@needs_redis_server
async def test_restarted_redis_is_rejoined_without_help(tmp_path: Path) -> None:
    port = free_port()

    async def start_server() -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *server_args(port, tmp_path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await wait_ping(port)
        return proc

    proc = await start_server()
    url = f"redis://127.0.0.1:{port}/0"
    store = RedisStore(
        url, prefix="test:restart:", flush_interval_s=FLUSH_S, refresh_interval_s=REFRESH_S
    )
    profiles = LatencyProfiles(store, min_samples=1, clock=clock, cache_ttl_s=0)
    key = store.key("gpt", f"lat1:g{int(T0 // (20 * 7 * 86400))}:*:*")
    await store.start()
    try:
        profiles.record_attempt("gpt", "eu", ttft_s=0.5)
        await eventually(lambda: store.flushes > 0)
        assert await hgetall(url, key)

        proc.terminate()
        await proc.wait()
        profiles.record_attempt("gpt", "eu", ttft_s=0.5)
        await eventually(lambda: store.dropped_updates > 0)
        assert not store.healthy
        assert profiles.ttft_quantile("gpt", "eu", 13, 0.5, PRIOR).samples == pytest.approx(
            2
        )  # local view

        flushed = store.flushes
        proc = await start_server()  # empty: no persistence
        # the layer's breaker drops batches at once until a probe finds Redis again
        await eventually(lambda: not store.layer.degraded)
        profiles.record_attempt("gpt", "eu", ttft_s=0.7)
        await eventually(lambda: store.flushes > flushed)  # the first batch after the restart
        assert store.healthy and store.outages == 1
        fields = await hgetall(url, key)
        one_sample = profiles._weight(T0, profiles._generation(T0))  # forward-decay weight
        assert sum(float(v) for k, v in fields.items() if k.startswith(b"t")) == pytest.approx(
            one_sample
        )
        # the shared state (one sample) replaces the local view (three) at the next refresh
        refreshed = store.refreshes
        await eventually(lambda: store.refreshes > refreshed)
        assert profiles.histograms("gpt", "eu", 13).ttft_samples == pytest.approx(1)
    finally:
        await store.close()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


@pytest.fixture
def redis_cluster(cluster_procs: RedisClusterProcs) -> list[int]:
    """The session's three-master Redis Cluster (tests/conftest.py), as its ports."""
    return [node.port for node in cluster_procs.masters]


def wait_cli(port: int, command: list[str], expect: str, timeout: float = 10.0) -> None:
    """Poll a node with redis-cli until its answer contains ``expect`` (sync fixture only)."""
    assert REDIS_CLI is not None
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(
            [REDIS_CLI, "-p", str(port), *command], capture_output=True, text=True, timeout=5
        )
        if expect in out.stdout:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"node {port}: {command} never returned {expect!r}: {out}")
        time.sleep(0.05)


async def test_store_on_redis_cluster(redis_cluster: list[int]) -> None:
    deployments = [f"dep-{i}" for i in range(8)]
    a = RedisStore(
        f"redis://127.0.0.1:{redis_cluster[0]}",
        cluster=True,
        prefix="rg",
        flush_interval_s=FLUSH_S,
        refresh_interval_s=REFRESH_S,
    )
    b = RedisStore(
        f"redis://127.0.0.1:{redis_cluster[1]}",
        cluster=True,
        prefix="rg",
        flush_interval_s=FLUSH_S,
        refresh_interval_s=REFRESH_S,
    )
    pa = LatencyProfiles(a, min_samples=10, clock=clock, cache_ttl_s=0)
    pb = LatencyProfiles(b, min_samples=10, clock=clock, cache_ttl_s=0)
    await a.start()
    await b.start()
    try:
        for name in deployments:
            pb.ttft_quantile(name, "us", 13, 0.5, PRIOR)  # b wants these keys
            for _ in range(10):
                pa.record_attempt(name, "us", ttft_s=0.25)

        def all_seen() -> bool:
            return all(
                pb.ttft_quantile(n, "us", 13, 0.5, PRIOR).level != "prior" for n in deployments
            )

        await eventually(all_seen)
        for name in deployments:
            est = pb.ttft_quantile(name, "us", 13, 0.5, PRIOR)
            assert est.level == "region_hour" and est.value_s == pytest.approx(0.25, rel=0.011)
        assert a.dropped_updates == 0 and a.healthy and b.healthy

        # every key of one deployment hashes to one slot; deployments spread over the nodes
        slots = set()
        for name in deployments:
            keys = [a.key(name, f"lat1:g0:{r}:{h}") for r in ("us", "*") for h in ("13", "*")]
            assert len({key_slot(k.encode()) for k in keys}) == 1
            slots.add(key_slot(keys[0].encode()))
        assert len(slots) == len(deployments)
        sizes = []
        for port in redis_cluster:
            node = Redis(host="127.0.0.1", port=port)
            try:
                sizes.append(await node.dbsize())
            finally:
                await node.aclose()
        assert sum(1 for n in sizes if n > 0) >= 2
    finally:
        await a.close()
        await b.close()
