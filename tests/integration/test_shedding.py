"""Shedding when everything is down: an all-cooling pool gets at most one probe per deployment
per probe interval; every other request gets an immediate 503 (429 when every deployment is at
its own rate limit) with retry-after, in the envelope."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from tests.gateways import inside_one_minute
from tests.stack import FAST, stack

BODY = {"messages": [{"role": "user", "content": "hi"}]}


async def test_an_all_cooling_pool_sends_a_handful_of_upstream_requests_for_1000_clients() -> None:
    models = {m: {**FAST, "error_rate_429": 1.0, "retry_after_s": 30} for m in ("x", "y")}
    servers = {"a": {"kind": "openai", "models": models}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["x", "y"]}}
    health = {"probe_interval_s": 60}
    async with stack(servers, routes, health=health) as s, aiohttp.ClientSession() as http:

        async def ask() -> tuple[int, dict[str, str], bytes]:
            async with http.post(
                f"{s.url}/v1/chat/completions", json={**BODY, "model": "chat"}
            ) as r:
                return r.status, dict(r.headers), await r.read()

        first = await ask()  # both deployments answer 429 retry-after 30: both cool
        assert first[0] == 429
        answers = await asyncio.gather(*(ask() for _ in range(1000)))
        upstream = len(s.log.records)
        assert upstream <= 4, f"{upstream} upstream requests for 1001 clients"
        shed = [a for a in answers if a[0] == 503]
        assert len(shed) >= 996
        _, headers, raw = shed[0]
        error = orjson.loads(raw)["error"]
        assert error["code"] == "all_deployments_unavailable"
        assert 1 <= int(headers["Retry-After"]) <= 30
        metrics = s.gateway.metrics.render().decode()
        assert 'reason="all_deployments_unavailable"' in metrics


async def test_every_deployment_at_its_own_rate_limit_is_a_429() -> None:
    servers = {"a": {"kind": "openai", "models": {"x": FAST}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["x"]}}
    deployments = {"x": {"rpm": 1}}
    async with stack(servers, routes, deployments, health={"probe_interval_s": 60}) as s:
        await inside_one_minute(5)  # the counts below are of one window
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(4):
                async with http.post(
                    f"{s.url}/v1/chat/completions", json={**BODY, "model": "chat"}
                ) as r:
                    statuses.append(r.status)
                    last = (dict(r.headers), await r.read())
        assert statuses[0] == 200 and statuses[-1] == 429
        assert orjson.loads(last[1])["error"]["code"] == "all_deployments_rate_limited"
        assert "Retry-After" in last[0]
        assert len(s.records("x")) == 1
