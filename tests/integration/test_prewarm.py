"""Pre-warmed connections: the first request after start opens no new upstream connection."""

from __future__ import annotations

import aiohttp

from tests.stack import FAST, stack

MSG = [{"role": "user", "content": "hi"}]


async def first_request_record(prewarm: bool) -> tuple[bool, float]:
    servers = {"a": {"kind": "openai", "handshake_ms": 80, "models": {"m": FAST}}}
    latency = {"prewarm": {"enabled": prewarm, "connections": 1}}
    async with stack(servers, latency=latency) as s:
        if prewarm:
            assert s.gateway.prewarmer is not None
            await s.gateway.prewarmer.wait_rounds(1)
            assert s.gateway.prewarmer.last_targets == {"m": 1}
        else:
            assert s.gateway.prewarmer is None
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "messages": MSG}
            async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
        record = s.records("m")[0]
        metrics = s.gateway.metrics.render().decode()
        warmed = 'gateway_prewarm_requests_total{provider="a",result="ok"}'
        if prewarm:  # the warm-up opened the connection and the request reused it
            assert f"{warmed} 1.0" in metrics
            assert 'gateway_upstream_connections_total{event="reused",provider="a"} 1.0' in metrics
        else:
            assert 'gateway_upstream_connections_total{event="opened",provider="a"} 1.0' in metrics
            assert 'gateway_upstream_connections_total{event="reused",provider="a"} 0.0' in metrics
        return record.new_connection, record.handshake_ms


async def test_prewarmed_first_request_reuses_a_connection() -> None:
    assert await first_request_record(prewarm=True) == (False, 0.0)


async def test_cold_first_request_pays_the_handshake() -> None:
    assert await first_request_record(prewarm=False) == (True, 80.0)
