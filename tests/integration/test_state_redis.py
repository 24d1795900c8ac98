"""`state.backend: redis` end to end: whole gateways sharing one real Redis.

* Two `python -m gateway serve` processes on one Redis (a simulator in this
  process): latency samples recorded through A show in B's profile within 5 s;
  a breaker opened by failures A saw is open on B within 2 s, and B stops
  calling that deployment.
* A throwaway `redis-server` killed in the middle of a steady stream of
  requests and started again on the same port: every request gets a 200, the
  gateway reports `state.degraded` during the outage, and the latency store
  reconnects by itself.

The shared Redis comes from REDIS_URL (default redis://127.0.0.1:6379/15);
tests are skipped with the reason when it does not answer. Every test uses its
own `state.prefix` (a fresh uuid) and deletes only keys containing it; nothing
here ever flushes a database. The restart test needs the `redis-server` binary
(skipped when it is missing).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from redis.asyncio import Redis

from gateway.latency.store import RedisStore
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from tests.stack import FAST, stack

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server")
ADMIN_KEY = "state-test-admin"
MSG = [{"role": "user", "content": "hi"}]
START_TIMEOUT_S = 10.0


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    client = Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        await client.ping()
    except Exception as exc:
        pytest.skip(
            f"no Redis answers at {url.split('@')[-1]} ({type(exc).__name__}): "
            "set REDIS_URL or run through scripts/with-redis.sh"
        )
    finally:
        await client.aclose()
    yield url


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A unique `state.prefix`; afterwards, delete every key that contains its uuid."""
    unique = uuid.uuid4().hex
    yield f"test-state-{unique}"
    client = Redis.from_url(redis_url, socket_timeout=2)
    try:
        keys = [key async for key in client.scan_iter(match=f"*{unique}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# --- helpers --------------------------------------------------------------------------


async def eventually(
    check: Callable[[], Awaitable[bool]], within_s: float, what: str, poll_s: float = 0.05
) -> float:
    """Poll the async `check` until it holds; returns how long it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what}: not within {within_s} s")
        await asyncio.sleep(poll_s)
    return time.monotonic() - start


def sim_cluster(models: dict[str, dict[str, Any]]) -> SimCluster:
    config, problems = parse_sim_config(
        {"seed": 7, "servers": {"sim": {"kind": "openai", "models": models}}}
    )
    assert config is not None, problems
    return SimCluster(config)


class GatewayProcess:
    """`python -m gateway serve --port 0` in a child process; its URL read from stdout."""

    def __init__(self, name: str, config_path: Path) -> None:
        self.name = name
        self.config_path = config_path
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.output: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--config",
            str(self.config_path),
            "--port",
            "0",
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"gateway {self.name} exited:\n{self.tail()}")
                line = raw.decode(errors="replace").rstrip()
                self.output.append(line)
                if "listening on " in line:
                    self.url = line.rsplit("listening on ", 1)[1].strip()
                    break
        self._drain = asyncio.create_task(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            self.output.append(raw.decode(errors="replace").rstrip())

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output[-lines:])

    async def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._drain is not None:
            await asyncio.wait([self._drain], timeout=2)


async def chat(
    http: aiohttp.ClientSession, url: str, model: str, region: str = "eu"
) -> tuple[int, str | None]:
    body = {"model": model, "messages": MSG, "stream": True}
    headers = {"x-gateway-region": region}
    async with http.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
        await resp.read()
        return resp.status, resp.headers.get("x-gateway-deployment")


async def admin(http: aiohttp.ClientSession, url: str, path: str) -> Any:
    headers = {"authorization": f"Bearer {ADMIN_KEY}"}
    async with http.get(f"{url}{path}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return orjson.loads(await resp.read())


# --- two gateway processes on one Redis ---------------------------------------------------


async def test_two_gateway_processes_share_profiles_and_breakers(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    sim = sim_cluster(
        {"fast": {**FAST, "ttft_ms": 20}, "flaky": {**FAST, "error_rate_500": 1.0}, "backup": FAST}
    )
    await sim.start()
    config = {
        "logging": {"level": "warning", "format": "json"},
        "admin": {"key": ADMIN_KEY},
        "state": {"backend": "redis", "url": redis_url, "prefix": prefix},
        "latency": {"min_samples": 10, "prewarm": {"enabled": False}},
        "health": {"window": 20, "min_requests": 5, "cooldown_s": 60},
        "providers": {
            "sim": {"kind": "openai", "base_url": sim.base_url("sim"), "api_key": "sim-key"}
        },
        "deployments": {
            name: {"provider": "sim", "model": name} for name in ("fast", "flaky", "backup")
        },
        "routes": {
            "flaky-first": {"strategy": "fallback", "deployments": ["flaky", "backup"]},
        },
        "routing": {"allow_direct_deployments": True},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    a, b = GatewayProcess("A", path), GatewayProcess("B", path)
    try:
        await asyncio.gather(a.start(), b.start())
        async with aiohttp.ClientSession() as http:
            profile = "/admin/profiles?deployment=fast&region=eu"

            async def rows(gw: GatewayProcess) -> list[dict[str, Any]]:
                data = await admin(http, gw.url, profile)
                out: list[dict[str, Any]] = data["deployments"]["fast"]["eu"]
                return out

            # B reads these keys now (its store refreshes only keys in use)
            assert {row["level"] for row in await rows(b)} == {"prior"}

            # -- latency samples: through A, visible on B within 5 s
            for _ in range(12):
                assert await chat(http, a.url, "fast") == (200, "fast")
            sent = time.monotonic()

            async def a_knows() -> bool:
                return "prior" not in {row["level"] for row in await rows(a)}

            await eventually(a_knows, 5.0, "A learns from its own requests")

            async def b_sees_a() -> bool:
                mine, theirs = await rows(a), await rows(b)
                if any(row["level"] == "prior" for row in theirs):
                    return False
                key = [(r["hour"], r["level"], r["samples"]) for r in mine]
                return key == [(r["hour"], r["level"], r["samples"]) for r in theirs]

            await eventually(b_sees_a, 5.0, "B's profile shows the samples recorded through A")
            took = time.monotonic() - sent
            print(f"profile: A -> B in {took:.2f} s")
            assert took < 5.0
            best = max(await rows(b), key=lambda row: row["samples"])
            assert best["samples"] == pytest.approx(12, abs=0.01)
            assert 19 <= best["p50_ms"] <= 40  # the simulator's 20 ms TTFT + overhead
            assert len(sim.log.records) == 12  # B never sent a request itself

            # -- breaker: failures seen by A open it on B within 2 s
            async def state_on(gw: GatewayProcess) -> str:
                data = await admin(http, gw.url, "/admin/deployments")
                return str(data["deployments"]["flaky"]["state"])

            assert await state_on(b) == "closed"
            for _ in range(4):
                assert await chat(http, a.url, "flaky-first") == (200, "backup")
            assert await state_on(a) == "closed" and await state_on(b) == "closed"
            opened = time.monotonic()  # the 5th failure (min_requests) opens it on A
            assert await chat(http, a.url, "flaky-first") == (200, "backup")
            assert await state_on(a) == "open"

            async def b_open() -> bool:
                return await state_on(b) == "open"

            await eventually(b_open, 2.0, "the breaker opened on A is open on B", poll_s=0.02)
            took = time.monotonic() - opened
            print(f"breaker: A -> B in {took:.3f} s (from the 5th failing request's start)")
            assert took < 2.0
            flaky_calls = sum(1 for r in sim.log.records if r.model == "flaky")
            assert flaky_calls == 5
            for _ in range(3):  # B skips flaky without ever having seen it fail
                assert await chat(http, b.url, "flaky-first") == (200, "backup")
            assert sum(1 for r in sim.log.records if r.model == "flaky") == flaky_calls
    except BaseException:
        print(f"--- gateway A output:\n{a.tail()}\n--- gateway B output:\n{b.tail()}")
        raise
    finally:
        await asyncio.gather(a.stop(), b.stop())
        await sim.stop()


# --- Redis killed and restarted under load --------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway `redis-server` (no persistence) on a fixed port, in `workdir`."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = await asyncio.create_subprocess_exec(
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = Redis(host="127.0.0.1", port=self.port, socket_timeout=0.2)
        deadline = time.monotonic() + 5
        try:
            while True:
                try:
                    if await client.ping():
                        return
                except Exception:
                    if time.monotonic() > deadline or self.proc.returncode is not None:
                        raise
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
async def test_redis_killed_and_restarted_mid_load_fails_no_request(tmp_path: Path) -> None:
    server = RedisServer(free_port(), tmp_path)
    await server.start()
    url = f"redis://127.0.0.1:{server.port}/0"
    servers = {"a": {"kind": "openai", "models": {"m": {**FAST, "ttft_ms": 10}}}}
    routes = {"chat": {"strategy": "race", "k": 1, "deployments": ["m"]}}
    statuses: list[int] = []
    durations: list[float] = []
    outage_durations: list[float] = []
    degraded_seen = False
    try:
        async with (
            stack(
                servers,
                routes,
                state={"backend": "redis", "url": url, "prefix": f"test-restart-{uuid.uuid4()}"},
                latency={"min_samples": 5},
            ) as s,
            aiohttp.ClientSession() as http,
        ):
            store = s.gateway.state.store
            assert isinstance(store, RedisStore)

            async def one() -> float:
                started = time.monotonic()
                status, deployment = await chat(http, s.url, "chat")
                statuses.append(status)
                assert deployment == "m" or status != 200
                took = time.monotonic() - started
                durations.append(took)
                await asyncio.sleep(0.04)  # a steady stream, ~20 requests per second
                return took

            for _ in range(50):
                await one()
            await eventually(_true(lambda: store.flushes > 0), 3, "a first flush")
            assert store.healthy and not s.gateway.state.degraded

            await server.kill()  # halfway
            i = 0
            while i < 25 or not degraded_seen:  # at least 25 requests, until degraded shows
                outage_durations.append(await one())
                degraded_seen = degraded_seen or s.gateway.state.degraded
                i += 1
                assert i < 200, "the gateway never reported the Redis outage"
            assert not store.healthy and store.outages == 1
            dropped = store.dropped_updates
            assert dropped > 0

            await server.start()  # same port, empty
            flushes = store.flushes
            for _ in range(25):  # 50 + 25 (or more) + 25 >= 100 requests in all
                await one()

            await eventually(_true(lambda: store.healthy), 5, "the store reconnects")
            await eventually(_true(lambda: store.flushes > flushes), 5, "a flush after restart")
            await eventually(
                _true(lambda: not s.gateway.state.degraded), 15, "every component reconnects"
            )
            assert store.outages == 1
            client = Redis(host="127.0.0.1", port=server.port)
            try:
                keys = await client.keys("*test-restart-*")
            finally:
                await client.aclose()
            assert keys, "samples recorded after the restart reached the new Redis"
    finally:
        await server.kill()
    assert len(statuses) >= 100
    assert statuses == [200] * len(statuses), f"failed requests: {statuses}"
    assert degraded_seen
    print(
        f"{len(statuses)} requests, {len(outage_durations)} during the outage "
        f"(slowest {max(outage_durations) * 1000:.0f} ms, overall {max(durations) * 1000:.0f} ms)"
    )
    # the outage never slowed a request: nothing on the request path waits on Redis
    assert max(outage_durations) < 0.5, max(outage_durations)


def _true(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def wrapped() -> bool:
        return check()

    return wrapped
