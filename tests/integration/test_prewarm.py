"""Pre-warmed connections: the first request after start opens no new upstream connection."""

from __future__ import annotations

import asyncio

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


async def next_request_after_a_cut(replace: bool) -> tuple[bool, float, float, int]:
    """A race whose loser (on `b`) is cut, then a request to another model of `b`: what
    its connection paid of `b`'s 40 ms handshake, and the connections `b`'s pool replaced."""
    servers = {
        "a": {"kind": "openai", "handshake_ms": 40, "models": {"wins": FAST}},
        "b": {
            "kind": "openai",
            "handshake_ms": 40,
            "models": {"loses": {**FAST, "ttft_ms": 30000}, "next": FAST},
        },
    }
    routes = {"raced": {"deployments": ["wins", "loses"], "strategy": "race", "k": 2}}
    options = {"b": {"replace_cut_connections": replace}}
    async with stack(servers, routes, provider_options=options) as s:
        async with aiohttp.ClientSession() as http:
            body = {"model": "raced", "messages": MSG}
            async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
            assert s.records("loses")[0].outcome != "completed"  # cut
            stats = s.gateway.pools["b"].stats
            if replace:
                async with asyncio.timeout(5):
                    while stats.replaced == 0:  # noqa: ASYNC110 (no event for a background dial)
                        await asyncio.sleep(0.005)
                await asyncio.sleep(0.05)  # the modelled handshake (40 ms) runs out meanwhile
            body = {"model": "next", "messages": MSG}
            async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
        record = s.records("next")[0]
        return record.new_connection, record.handshake_ms, record.handshake_wait_ms, stats.replaced


async def test_a_cut_connection_replaced_ahead_spares_the_next_request_the_handshake() -> None:
    assert await next_request_after_a_cut(replace=True) == (True, 40.0, 0.0, 1)


async def test_without_the_replacement_the_next_request_pays_the_handshake() -> None:
    new, handshake, waited, replaced = await next_request_after_a_cut(replace=False)
    assert (new, handshake, replaced) == (True, 40.0, 0)
    assert waited > 20.0  # nearly all of it: the connection was opened for this request


async def test_an_answer_whose_client_left_has_its_connection_replaced() -> None:
    """A client that leaves mid-answer makes the gateway drop a healthy upstream
    connection: where cut connections are replaced, that one is too."""
    servers = {"a": {"kind": "openai", "models": {"long": {**FAST, "itl_ms": 20, "tokens": 500}}}}
    options = {"a": {"replace_cut_connections": True}}
    async with stack(servers, provider_options=options) as s:
        body = {"model": "long", "messages": MSG, "stream": True}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                await resp.content.readline()  # the first event: then the client goes
        stats = s.gateway.pools["a"].stats
        async with asyncio.timeout(5):
            while stats.replaced == 0:  # noqa: ASYNC110 (no event for a background dial)
                await asyncio.sleep(0.005)
        assert (stats.opened, stats.replaced) == (2, 1)
        assert s.gateway.pools["a"].open_connections() == 1  # the replacement, idle
