"""`POST /admin/reload` on an in-process gateway over simulated providers (real sockets):
a valid config is swapped in while a stream is in flight (the stream finishes on the
config it started with, then its replaced pool closes), an invalid one is refused with
every problem and the old config keeps serving."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from redis.asyncio import Redis

from gateway.config import load_config
from gateway.latency.store import RedisStore
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.server.keys import LIVE
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster
from tests.redis_support import REDIS_URL, redis_with_prefix

pytestmark = pytest.mark.timeout(30)

TEXT = " ".join(f"word{i}" for i in range(20))
SLOW = {"ttft_ms": 0, "itl_ms": 20, "text": TEXT}  # 20 tokens
FAST = {"ttft_ms": 0, "itl_ms": 0, "tokens": 3}
ADMIN = {"Authorization": "Bearer admin-secret"}


@dataclass
class Served:
    sim: SimCluster
    path: Path
    data: dict[str, Any]
    url: str
    runner: Any

    def write(self, data: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(data))

    @property
    def gateway(self) -> Gateway:
        return self.runner.app[LIVE].gateway


@asynccontextmanager
async def served(tmp_path: Path, **extra: Any) -> AsyncIterator[Served]:
    sim_config, problems = parse_sim_config(
        {
            "seed": 5,
            "servers": {
                "one": {"kind": "openai", "models": {"slow": SLOW, "fast": FAST}},
                "two": {"kind": "openai", "models": {"slow": SLOW, "fast": FAST}},
            },
        }
    )
    assert sim_config is not None, problems
    async with SimCluster(sim_config) as sim:
        data: dict[str, Any] = {
            "admin": {"key": "admin-secret"},
            "auth": {"keys": ["key-one"]},
            "latency": {"prewarm": {"enabled": False}},
            "providers": {
                "up": {"kind": "openai", "base_url": sim.base_url("one"), "api_key": "sim"}
            },
            "deployments": {
                "slow": {"provider": "up", "model": "slow"},
                "fast": {"provider": "up", "model": "fast"},
            },
            "routes": {"chat": {"strategy": "fallback", "deployments": ["slow"]}},
            "routing": {"allow_direct_deployments": True},
            **extra,
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(data))
        gateway = Gateway(load_config(path))
        runner, url = await start_server(gateway, "127.0.0.1", 0, config_path=str(path))
        try:
            yield Served(sim, path, data, url, runner)
        finally:
            await runner.cleanup()


def chat(model: str, stream: bool) -> dict[str, object]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def text_of(lines: list[bytes]) -> str:
    """The streamed text (a chunk may carry several tokens when they arrive together)."""
    parts = []
    for line in lines:
        if line.startswith(b"data: {"):
            choices = orjson.loads(line[6:])["choices"]
            parts.append(choices[0]["delta"].get("content") or "" if choices else "")
    return "".join(parts)


async def test_a_stream_in_flight_finishes_on_its_config_and_its_pool_closes_after(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as s, aiohttp.ClientSession() as client:
        old_pool = s.gateway.pools["up"]
        closed = asyncio.Event()
        close = old_pool.close

        async def close_and_tell() -> None:
            await close()
            closed.set()

        old_pool.close = close_and_tell  # type: ignore[method-assign]
        auth = {"Authorization": "Bearer key-one"}
        async with client.post(
            s.url + "/v1/chat/completions", json=chat("chat", True), headers=auth
        ) as resp:
            assert resp.status == 200
            lines: list[bytes] = []
            async for line in resp.content:
                lines.append(line)
                if text_of(lines):
                    break  # the stream is in flight on server "one"

            new = copy.deepcopy(s.data)
            new["providers"]["up"]["base_url"] = s.sim.base_url("two")  # the pool is replaced
            new["auth"]["keys"] = ["key-two"]
            s.write(new)
            async with client.post(s.url + "/admin/reload", headers=ADMIN) as reload:
                assert reload.status == 200, await reload.text()
                body = await reload.json()
            assert body["result"] == "ok"
            assert body["changes"]["pools_replaced"] == ["up"]
            assert body["changes"]["deployments_replaced"] == ["fast", "slow"]

            # new requests: the new config (its key, its upstream)
            async with client.post(
                s.url + "/v1/chat/completions", json=chat("fast", False), headers=auth
            ) as refused:
                assert refused.status == 401
            async with client.post(
                s.url + "/v1/chat/completions",
                json=chat("fast", False),
                headers={"Authorization": "Bearer key-two"},
            ) as ok:
                assert ok.status == 200, await ok.text()
            assert [r.server for r in s.sim.log.records if r.model == "fast"] == ["two"]
            assert not closed.is_set(), "the pool closed under the stream in flight"

            async for line in resp.content:
                lines.append(line)
        assert b"data: [DONE]\n" in lines
        assert text_of(lines) == TEXT
        assert [r.server for r in s.sim.log.records if r.model == "slow"] == ["one"]
        async with asyncio.timeout(5):
            await closed.wait()  # ...and once it ended, the replaced pool closed
        assert s.gateway.pools["up"] is not old_pool


async def test_an_invalid_config_is_refused_with_every_problem_and_the_old_one_serves(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as s, aiohttp.ClientSession() as client:
        serving = s.gateway
        bad = copy.deepcopy(s.data)
        bad["routes"]["chat"]["deployments"] = ["slow", "nope"]
        bad["deployments"]["fast"]["ttft_timeout_s"] = -1
        s.write(bad)
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
        assert error["code"] == "invalid_config" and error["type"] == "invalid_request_error"
        problems = error["problems"]
        assert len(problems) == 2, problems
        assert any(p.startswith("routes.chat.deployments[1]") for p in problems)
        assert any(p.startswith("deployments.fast.ttft_timeout_s") for p in problems)
        assert all(p in error["message"] for p in problems)
        assert s.gateway is serving
        async with client.post(
            s.url + "/v1/chat/completions",
            json=chat("chat", False),
            headers={"Authorization": "Bearer key-one"},
        ) as ok:
            assert ok.status == 200
        async with client.get(s.url + "/metrics") as metrics:
            text = await metrics.text()
        assert 'gateway_config_reloads_total{result="invalid"} 1.0' in text
        assert 'gateway_config_reloads_total{result="ok"}' not in text


async def test_reload_needs_the_admin_key_and_reports_an_unchanged_file(
    tmp_path: Path,
) -> None:
    async with served(tmp_path) as s, aiohttp.ClientSession() as client:
        async with client.post(s.url + "/admin/reload") as resp:
            assert resp.status == 401
        before = s.gateway
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 200
            assert (await resp.json())["result"] == "unchanged"
        assert s.gateway is before
        listen = copy.deepcopy(s.data)
        listen["listen"] = {"host": "127.0.0.1", "port": 1}
        listen["routes"]["chat"]["deployments"] = ["fast"]
        s.write(listen)
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            body = await resp.json()
        # the listen address waits for a restart; the rest applies
        assert body["changes"]["restart_required"] == ["listen"]
        assert body["changes"]["routes_changed"] == ["chat"]
        async with client.get(s.url + "/metrics") as metrics:
            text = await metrics.text()
        assert f'gateway_config_info{{hash="{body["config_hash"]}"}} 1.0' in text


async def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    async with served(tmp_path) as s, aiohttp.ClientSession() as client:
        s.path.write_text("")
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["problems"] == [f"{s.path}: the file is empty"]


async def test_redis_state_is_kept_while_its_section_is_unchanged(tmp_path: Path) -> None:
    """No reconnect for nothing: a route change keeps the state objects (and their Redis
    clients); a new `state.prefix` builds new ones, which write under the new prefix."""
    async with redis_with_prefix("reload") as (redis, prefix):
        try:
            await _reload_with_redis(tmp_path, redis, prefix)
        finally:  # latency keys start with a hash tag: `{prefix:deployment}:...`
            keys = [k async for k in redis.scan_iter(match=f"*{prefix}*", count=500)]
            if keys:
                await redis.delete(*keys)


async def _reload_with_redis(tmp_path: Path, redis: Redis, prefix: str) -> None:
    state = {"backend": "redis", "url": REDIS_URL, "prefix": f"{prefix}:a"}
    async with served(tmp_path, state=state) as s, aiohttp.ClientSession() as client:
        first = s.gateway
        kept = copy.deepcopy(s.data)
        kept["routes"]["chat"]["deployments"] = ["fast"]
        s.write(kept)
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            assert (await resp.json())["result"] == "ok"
        assert s.gateway.state is first.state

        moved = copy.deepcopy(kept)
        moved["state"] = {**state, "prefix": f"{prefix}:b"}
        s.write(moved)
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            body = await resp.json()
        assert body["changes"]["sections_changed"] == ["state"]
        assert s.gateway.state is not first.state
        async with client.post(
            s.url + "/v1/chat/completions",
            json=chat("chat", False),
            headers={"Authorization": "Bearer key-one"},
        ) as ok:
            assert ok.status == 200
        store = s.gateway.state.store
        assert isinstance(store, RedisStore)
        await store.sync()
        keys = [k async for k in redis.scan_iter(match=f"*{prefix}:b*", count=500)]
        assert keys, "the new state writes under the new prefix"


async def test_runtime_keys_stay_in_force_across_a_reload(tmp_path: Path) -> None:
    async with served(tmp_path) as s, aiohttp.ClientSession() as client:
        async with client.post(s.url + "/admin/keys", json={"name": "ci"}, headers=ADMIN) as made:
            assert made.status == 201, await made.text()
            secret = (await made.json())["key"]
        first = s.gateway
        new = copy.deepcopy(s.data)
        new["routes"]["chat"]["deployments"] = ["fast"]
        s.write(new)
        async with client.post(s.url + "/admin/reload", headers=ADMIN) as resp:
            assert (await resp.json())["result"] == "ok"
        assert s.gateway is not first
        ci = {"Authorization": f"Bearer {secret}"}
        async with client.post(
            s.url + "/v1/chat/completions", json=chat("chat", False), headers=ci
        ) as ok:
            assert ok.status == 200, await ok.text()
        async with client.delete(s.url + "/admin/keys/ci", headers=ADMIN) as gone:
            assert gone.status == 200
        async with client.post(
            s.url + "/v1/chat/completions", json=chat("chat", False), headers=ci
        ) as refused:
            assert refused.status == 401  # the new key ring follows the store's changes
