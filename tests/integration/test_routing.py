"""Routing decisions end to end: tiers, breakers, rate limits, latency-driven selection."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.gateways import inside_one_minute
from tests.stack import FAST, Stack, stack

MSG = [{"role": "user", "content": "hi"}]


async def ask(s: Stack, model: str, **extra: object) -> tuple[int, str | None]:
    headers = extra.pop("headers", None)
    async with aiohttp.ClientSession() as http:
        body = {"model": model, "messages": extra.pop("messages", MSG), **extra}
        async with http.post(
            f"{s.url}/v1/chat/completions",
            json=body,
            headers=headers,  # type: ignore[arg-type]
        ) as resp:
            await resp.read()
            return resp.status, resp.headers.get("x-gateway-deployment")


async def test_tier_chosen_by_request_traits() -> None:
    servers = {"a": {"kind": "openai", "models": {"cheap": FAST, "strong": FAST, "big": FAST}}}
    routes = {
        "chat": {
            "deployments": ["cheap"],
            "tiers": [
                {"name": "hard", "when": {"reasoning": True}, "deployments": ["strong"]},
                {"name": "long", "when": {"min_prompt_tokens": 200}, "deployments": ["big"]},
            ],
        }
    }
    async with stack(servers, routes) as s:
        assert await ask(s, "chat") == (200, "cheap")
        assert await ask(s, "chat", reasoning_effort="high") == (200, "strong")
        assert await ask(s, "chat", headers={"x-gateway-reasoning": "yes"}) == (200, "strong")
        long = [{"role": "user", "content": "word " * 400}]
        assert await ask(s, "chat", messages=long) == (200, "big")


async def test_breaker_opens_on_failures_and_closes_after_recovery() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"flaky": {**FAST, "error_rate_500": 1.0}, "ok": FAST}}
    }
    routes = {"chat": {"strategy": "fallback", "deployments": ["flaky", "ok"]}}
    health = {"window": 10, "min_requests": 4, "cooldown_s": 0.2, "half_open_probes": 2}
    async with stack(servers, routes, health=health) as s:
        for _ in range(10):
            assert await ask(s, "chat") == (200, "ok")  # the failures are never seen
        flaky_calls = len(s.records("flaky"))
        assert flaky_calls == 4, "the breaker opened after min_requests failures"
        assert s.gateway.state.health.snapshot()["flaky"]["state"] in ("open", "half_open")
        s.sim.configure("a", "flaky", error_rate_500=0.0)  # the deployment recovers
        async with asyncio.timeout(10):
            while s.gateway.state.health.snapshot()["flaky"]["state"] != "closed":
                status, _ = await ask(s, "chat")
                assert status == 200
                await asyncio.sleep(0.05)
        assert await ask(s, "chat") == (200, "flaky")


async def test_all_open_still_probes_one() -> None:
    servers = {"a": {"kind": "openai", "models": {"bad": {**FAST, "error_rate_503": 1.0}}}}
    # every request may probe here (the probe interval is a microsecond): see the shedding
    # tests for one probe per interval
    health = {"window": 10, "min_requests": 2, "cooldown_s": 60, "probe_interval_s": 1e-6}
    async with stack(servers, health=health) as s:
        for _ in range(4):
            status, _ = await ask(s, "bad")
            assert status == 503
        assert s.gateway.state.health.snapshot()["bad"]["state"] == "open"
        s.sim.configure("a", "bad", error_rate_503=0.0)
        assert await ask(s, "bad") == (200, "bad"), "one probe goes through rather than failing"


async def test_deployment_rate_limit_skips_to_next() -> None:
    servers = {"a": {"kind": "openai", "models": {"limited": FAST, "spare": FAST}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["limited", "spare"]}}
    deployments = {"limited": {"rpm": 2}}
    async with stack(servers, routes, deployments) as s:
        await inside_one_minute(5)  # the counts below are of one window
        served = [await ask(s, "chat") for _ in range(4)]
        assert served == [(200, "limited"), (200, "limited"), (200, "spare"), (200, "spare")]
        assert len(s.records("limited")) == 2, "the limited deployment was never contacted again"


async def test_race_selection_follows_latency_profile() -> None:
    slow = {"ttft_ms": 250, "itl_ms": 0, "tokens": 2}
    fast = {"ttft_ms": 5, "itl_ms": 0, "tokens": 2}
    servers = {"a": {"kind": "openai", "models": {"slow": slow, "fast": fast}}}
    same_prior = {"prior": {"ttft_p50_ms": 100, "ttft_p95_ms": 200}}
    routes = {
        "learn": {
            "strategy": "race",
            "k": 2,
            "deployments": ["slow", "fast"],
            "max_extra_load": 10,
        },
        "pick": {"strategy": "race", "k": 1, "deployments": ["slow", "fast"]},
    }
    async with stack(
        servers,
        routes,
        {"slow": same_prior, "fast": same_prior},
        latency={"min_samples": 3, "exploration": 0.0},
    ) as s:
        # Before any sample both look alike (prior): k=1 takes the first in config order.
        assert await ask(s, "pick") == (200, "slow")
        for _ in range(4):
            assert await ask(s, "learn") == (200, "fast")  # slow is cancelled: censored samples
        s.gateway.state.profiles.cache_ttl_s = 0
        for _ in range(3):
            assert await ask(s, "pick") == (200, "fast")
