"""Scoped and runtime gateway keys against real Redis: keys made and revoked on one instance
are in force on another, spend outlives a restart, feedback belongs to the key that asked."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from gateway.runtime import Gateway
from gateway.server.app import start_server
from tests.redis_support import REDIS_URL, redis_with_prefix
from tests.stack import FAST, stack

ADMIN = "admin-secret-0123456789"
TEAM_A = "team-a-secret-0123456789"
TEAM_B = "team-b-secret-0123456789"
SERVERS = {"a": {"kind": "openai", "models": {"m": FAST, "other": FAST}}}
ROUTES = {"chat": {"deployments": ["m"]}, "extra": {"deployments": ["other"]}}
MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "chat", "messages": MSG}


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_with_prefix("keys") as client_prefix:
        yield client_prefix


def redis_state(prefix: str) -> dict[str, Any]:
    # A generous request budget (5 ms by default): these tests are about what is shared,
    # and on a busy CI machine a budget check answered late is admitted (fail-open).
    return {"backend": "redis", "url": REDIS_URL, "prefix": prefix, "request_timeout_ms": 1000}


async def call(
    url: str, method: str, path: str, body: Any = None, key: str | None = None
) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def until(check: Callable[[], object], within_s: float = 3.0) -> None:
    """Call `check()` (awaiting what it returns, if awaitable) until it is truthy; fail
    after `within_s`."""
    async with asyncio.timeout(within_s):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


@asynccontextmanager
async def another_instance(gateway: Gateway) -> AsyncIterator[str]:
    """A second gateway process's worth of state on the same config (and Redis prefix)."""
    runner, url = await start_server(Gateway(gateway.config), "127.0.0.1", 0)
    try:
        yield url
    finally:
        await runner.cleanup()


async def test_a_runtime_key_works_on_every_instance_until_revoked(
    redis_prefix: tuple[Redis, str],
) -> None:
    client, prefix = redis_prefix
    config = {"auth": {"keys": [{"key": TEAM_A, "name": "team-a"}]}, "admin": {"key": ADMIN}}
    async with stack(SERVERS, ROUTES, state=redis_state(prefix), **config) as s:
        async with another_instance(s.gateway) as b_url:
            body = {"name": "ci", "routes": ["chat"], "rpm": 100, "metadata": {"team": "ci"}}
            status, made = await call(s.url, "POST", "/admin/keys", body, key=ADMIN)
            assert status == 201, made
            secret = made["key"]
            assert made["id"] == "ci" and made["source"] == "runtime"
            assert made["routes"] == ["chat"] and made["metadata"] == {"team": "ci"}

            async def works_on_b() -> bool:
                return (await call(b_url, "POST", "/v1/chat/completions", CHAT, secret))[0] == 200

            await until(works_on_b, within_s=2.0)
            # its scope came with it
            status, err = await call(
                b_url, "POST", "/v1/chat/completions", {**CHAT, "model": "extra"}, secret
            )
            assert status == 403 and err["error"]["code"] == "route_not_allowed"
            # listed everywhere, never with its secret or digest
            status, listed = await call(b_url, "GET", "/admin/keys", key=ADMIN)
            assert status == 200
            assert {k["id"]: k["source"] for k in listed["keys"]} == {
                "team-a": "config",
                "ci": "runtime",
            }
            stored = await client.hgetall(f"{prefix}:keys")
            digest = hashlib.sha256(secret.encode()).hexdigest()
            for text in (str(listed), str(stored)):
                assert secret not in text and TEAM_A not in text
            assert digest not in str(listed) and digest in stored[b"ci"].decode()
            # a name in use is refused, config names included
            for name in ("ci", "team-a"):
                status, err = await call(s.url, "POST", "/admin/keys", {"name": name}, key=ADMIN)
                assert status == 409 and err["error"]["code"] == "key_exists"
            status, err = await call(s.url, "POST", "/admin/keys", {"routes": ["x"]}, key=ADMIN)
            assert status == 400 and "routes[0]: unknown route 'x'" in err["error"]["message"]

            status, _ = await call(s.url, "DELETE", "/admin/keys/ci", key=ADMIN)
            assert status == 200

            async def refused_on_b() -> bool:
                return (await call(b_url, "POST", "/v1/chat/completions", CHAT, secret))[0] == 401

            await until(refused_on_b, within_s=2.0)
            assert (await call(s.url, "POST", "/v1/chat/completions", CHAT, secret))[0] == 401
            assert (await call(s.url, "DELETE", "/admin/keys/ci", key=ADMIN))[0] == 404
            status, err = await call(s.url, "DELETE", "/admin/keys/team-a", key=ADMIN)
            assert status == 409 and err["error"]["code"] == "config_key"
            assert (await call(s.url, "GET", "/admin/keys", key=TEAM_A))[0] == 401


async def test_spend_per_key_and_deployment_outlives_a_restart(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    deployments = {"m": {"price": {"input": 1_000_000, "output": 1_000_000}}}  # $1 a token
    keys = [{"key": TEAM_A, "name": "team-a", "budget_usd": {"monthly": 10_000}}, TEAM_B]
    gateway = {"auth": {"keys": keys}, "admin": {"key": ADMIN}, "state": redis_state(prefix)}
    async with stack(SERVERS, ROUTES, deployments, **gateway) as s:
        assert (await call(s.url, "POST", "/v1/chat/completions", CHAT, TEAM_A))[0] == 200
        status, before = await call(s.url, "GET", "/admin/spend?period=day", key=ADMIN)
        assert status == 200 and before["keys"]["team-a"] > 0
        spent = before["keys"]["team-a"]
        assert before["keys"]["key-2"] == 0 and before["deployments"]["m"] == spent
        config = s.gateway.config
    # the first gateway is gone (its last spend flushed on close); a new one reads it back
    async with stack(SERVERS, ROUTES, deployments, **gateway) as s:
        assert s.gateway.config.auth.keys == config.auth.keys
        for period in ("day", "month"):
            status, after = await call(
                s.url, "GET", f"/admin/spend?key=team-a&period={period}", key=ADMIN
            )
            assert status == 200 and after["keys"] == {"team-a": pytest.approx(spent)}
            assert after["period"] == period and "deployments" not in after
        status, err = await call(s.url, "GET", "/admin/spend?period=year", key=ADMIN)
        assert status == 400 and err["error"]["param"] == "period"


async def test_a_spent_budget_is_enforced_after_a_restart(redis_prefix: tuple[Redis, str]) -> None:
    _, prefix = redis_prefix
    deployments = {"m": {"price": {"input": 1_000_000, "output": 1_000_000}}}
    keys = [{"key": TEAM_A, "name": "team-a", "budget_usd": {"monthly": 1}}, TEAM_B]
    gateway = {"auth": {"keys": keys}, "state": redis_state(prefix)}
    async with stack(SERVERS, ROUTES, deployments, **gateway) as s:
        assert (await call(s.url, "POST", "/v1/chat/completions", CHAT, TEAM_A))[0] == 200
    async with stack(SERVERS, ROUTES, deployments, **gateway) as s:
        status, err = await call(s.url, "POST", "/v1/chat/completions", CHAT, TEAM_A)
        assert status == 429 and err["error"]["code"] == "budget_exceeded"
        assert "monthly budget of $1" in err["error"]["message"]
        assert (await call(s.url, "POST", "/v1/chat/completions", CHAT, TEAM_B))[0] == 200


async def test_feedback_belongs_to_the_key_that_asked_on_every_instance(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    keys = [{"key": TEAM_A, "name": "team-a"}, {"key": TEAM_B, "name": "team-b"}]
    gateway = {"auth": {"keys": keys}, "admin": {"key": ADMIN}, "state": redis_state(prefix)}
    async with stack(SERVERS, ROUTES, **gateway) as s:
        async with another_instance(s.gateway) as b_url:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{s.url}/v1/chat/completions",
                    json=CHAT,
                    headers={"authorization": f"Bearer {TEAM_A}"},
                ) as resp:
                    assert resp.status == 200
                    rid = resp.headers["x-request-id"]

            async def rate(url: str, rating: float, key: str) -> tuple[int, Any]:
                return await call(
                    url, "POST", "/v1/feedback", {"request_id": rid, "rating": rating}, key
                )

            # on the other instance, once the index reached Redis
            async def owner_rated() -> bool:
                return (await rate(b_url, -1.0, TEAM_A))[0] == 200

            await until(owner_rated)
            status, err = await rate(b_url, 1.0, TEAM_B)  # another tenant: as if unknown
            assert status == 404 and err["error"]["param"] == "request_id"
            status, err = await rate(s.url, 1.0, TEAM_B)
            assert status == 404
            for _ in range(5):  # a second rating replaces the first, however often
                assert (await rate(s.url, 1.0, TEAM_A))[0] == 200

            def mean_count(gw: Gateway) -> tuple[float, float]:
                return gw.state.feedback.ratings().get("m", (0.0, 0.0))

            await until(lambda: mean_count(s.gateway)[0] == pytest.approx(1.0))
            assert mean_count(s.gateway)[1] == pytest.approx(1.0, rel=1e-3)
            status, body = await rate(b_url, 0.0, ADMIN)  # the admin key may rate any request
            assert status == 200 and body["deployment"] == "m"
            await until(lambda: mean_count(s.gateway)[0] == pytest.approx(0.0, abs=1e-6))
            assert mean_count(s.gateway)[1] == pytest.approx(1.0, rel=1e-3)


async def test_feedback_after_the_window_is_refused() -> None:
    keys = [{"key": TEAM_A, "name": "team-a"}]
    routing = {"feedback_window_s": 0.2}
    async with stack(SERVERS, ROUTES, auth={"keys": keys}, routing=routing) as s:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{s.url}/v1/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {TEAM_A}"},
            ) as resp:
                rid = resp.headers["x-request-id"]
        await asyncio.sleep(0.3)  # the window (0.2 s) has passed for certain
        body = {"request_id": rid, "rating": 1}
        status, err = await call(s.url, "POST", "/v1/feedback", body, TEAM_A)
        assert status == 403 and err["error"]["code"] == "feedback_window_closed"
        assert s.gateway.state.feedback.ratings() == {}


async def test_feedback_after_the_window_is_refused_on_another_instance(
    redis_prefix: tuple[Redis, str],
) -> None:
    client, prefix = redis_prefix
    keys = [{"key": TEAM_A, "name": "team-a"}]
    gateway = {
        "auth": {"keys": keys},
        "routing": {"feedback_window_s": 0.2},
        "state": redis_state(prefix),
    }
    async with stack(SERVERS, ROUTES, **gateway) as s:
        async with another_instance(s.gateway) as b_url:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{s.url}/v1/chat/completions",
                    json=CHAT,
                    headers={"authorization": f"Bearer {TEAM_A}"},
                ) as resp:
                    rid = resp.headers["x-request-id"]
            await until(lambda: client.exists(f"{prefix}:fb:req:{rid}"))  # B can learn it
            await asyncio.sleep(0.3)  # the window (0.2 s) has passed for certain
            body = {"request_id": rid, "rating": 1}
            status, err = await call(b_url, "POST", "/v1/feedback", body, TEAM_A)
            assert status == 403 and err["error"]["code"] == "feedback_window_closed"
