"""Race engine rules end to end: real sockets, simulated upstreams, the sim log as witness."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from multidict import CIMultiDict

from tests.stack import FAST, Stack, no_gateway_tasks_left, stack

SLOW_TEXT = {"ttft_ms": 3000, "itl_ms": 1, "tokens": 5, "prelude": True, "keepalive_ms": 20}
EARLY_TEXT = {"ttft_ms": 30, "itl_ms": 1, "tokens": 5, "prelude": False, "text": "early bird wins"}
BODY = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def text_of(raw: bytes) -> str:
    out = []
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            if chunk.get("choices"):
                out.append(chunk["choices"][0]["delta"].get("content") or "")
    return "".join(out)


async def post(url: str, body: dict[str, object]) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/chat/completions", json=body) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()


async def test_header_first_text_late_loses_to_text_early_and_is_dropped() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"late": SLOW_TEXT}},
        "b": {"kind": "openai", "models": {"early": EARLY_TEXT}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200
        assert headers["x-gateway-deployment"] == "early"
        assert text_of(raw) == "early bird wins"
        # The loser had sent status, role chunk and keep-alives; it is dropped, not drained.
        records = await s.log.wait_for(
            lambda rs: any(r.model == "late" and r.outcome == "client_disconnect" for r in rs)
        )
        late = next(r for r in records if r.model == "late")
        early = next(r for r in records if r.model == "early")
        assert late.headers_sent is not None and late.tokens_sent == 0
        assert late.disconnect is not None and early.first_token is not None
        assert late.disconnect >= early.first_token
        assert await no_gateway_tasks_left()
        metrics = s.gateway.metrics.render().decode()
        assert (
            'gateway_upstream_attempts_total{deployment="late",outcome="cancelled"} 1.0' in metrics
        )
        assert 'gateway_race_wins_total{deployment="early"} 1.0' in metrics


async def test_non_stream_request_races_too() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"late": SLOW_TEXT}},
        "b": {"kind": "openai", "models": {"early": EARLY_TEXT}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat", "stream": False})
        assert status == 200 and headers["x-gateway-deployment"] == "early"
        assert orjson.loads(raw)["choices"][0]["message"]["content"] == "early bird wins"
        assert {r.model for r in s.log.records} == {"late", "early"}
        assert all(r.stream for r in s.log.records), "upstreams are always asked to stream"


async def test_fallback_failure_before_first_token_is_invisible() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"broken": {**FAST, "error_rate_500": 1.0}}},
        "b": {"kind": "openai", "models": {"ok": {**FAST, "text": "fine"}}},
    }
    routes = {"chat": {"strategy": "fallback", "deployments": ["broken", "ok"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200 and headers["x-gateway-deployment"] == "ok"
        assert text_of(raw) == "fine"
        assert [r.outcome for r in s.log.records] == ["error_500", "completed"]


async def test_all_fail_429_gives_429_with_retry_after() -> None:
    servers = {
        "a": {
            "kind": "openai",
            "models": {"x": {**FAST, "error_rate_429": 1.0, "retry_after_s": 7}},
        },
        "b": {
            "kind": "openai",
            "models": {"y": {**FAST, "error_rate_429": 1.0, "retry_after_s": 3}},
        },
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["x", "y"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 429
        assert headers["retry-after"] == "3"
        assert orjson.loads(raw)["error"]["message"]


async def test_all_fail_4xx_beats_5xx() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"x": {**FAST, "error_rate_503": 1.0}}},
        # 'missing' is not a model of server b: it answers 404 model_not_found.
        "b": {"kind": "openai", "models": {"y": FAST}},
    }
    deployments = {"y": {"model": "missing"}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["x", "y"]}}
    async with stack(servers, routes, deployments) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 404
        assert "error" in orjson.loads(raw)


async def test_all_fail_5xx_is_an_http_error_not_200() -> None:
    servers = {"a": {"kind": "openai", "models": {"x": {**FAST, "error_rate_503": 1.0}}}}
    async with stack(servers) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "x"})
        assert status == 503
        assert orjson.loads(raw)["error"]["type"]
        assert "x-gateway-deployment" not in headers


async def test_ttft_timeout_moves_to_next_candidate() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"silent": {"ttft_ms": 10000, "tokens": 3}}},
        "b": {"kind": "openai", "models": {"ok": {**FAST, "text": "after timeout"}}},
    }
    deployments = {"silent": {"ttft_timeout_s": 0.1}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["silent", "ok"]}}
    async with stack(servers, routes, deployments) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200 and headers["x-gateway-deployment"] == "ok"
        assert text_of(raw) == "after timeout"
        await s.log.wait_for(
            lambda rs: any(r.model == "silent" and r.outcome == "client_disconnect" for r in rs)
        )
        metrics = s.gateway.metrics.render().decode()
        assert 'deployment="silent",outcome="timed_out"' in metrics


async def test_idle_stall_after_winner_becomes_in_stream_error() -> None:
    stall = {"ttft_ms": 5, "itl_ms": 1, "tokens": 6, "stall_rate": 1.0, "stall_ms": 10000}
    servers = {"a": {"kind": "openai", "models": {"staller": stall}}}
    deployments = {"staller": {"idle_timeout_s": 0.1}}
    async with stack(servers, None, deployments) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "staller"})
        assert status == 200
        events = raw.split(b"\n\n")
        assert events[-2] == b"data: [DONE]"
        error = orjson.loads(events[-3][6:])
        assert "stalled" in error["error"]["message"]


async def test_heartbeat_comments_before_a_late_winner() -> None:
    servers = {"a": {"kind": "openai", "models": {"slow": {"ttft_ms": 400, "tokens": 2}}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["slow"], "heartbeat_after_s": 0.05}}
    async with stack(servers, routes) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200
        assert raw.startswith(b": keep-alive\n\n")
        assert b": x-gateway-deployment slow\n\n" in raw
        assert raw.endswith(b"data: [DONE]\n\n")
        assert text_of(raw)


async def test_streamed_request_timing_out_before_first_token_gets_504_by_default() -> None:
    """No heartbeat configured: nothing is committed before the outcome, so every candidate
    timing out before its first token is an HTTP 504 in the error envelope, never a 200."""
    servers = {
        "a": {"kind": "openai", "models": {"mute1": {"ttft_ms": 10000, "tokens": 2}}},
        "b": {"kind": "anthropic", "models": {"mute2": {"ttft_ms": 10000, "tokens": 2}}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["mute1", "mute2"]}}
    deployments = {"mute1": {"ttft_timeout_s": 0.2}, "mute2": {"ttft_timeout_s": 0.3}}
    async with stack(servers, routes, deployments) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 504
        assert headers["content-type"].startswith("application/json")
        assert orjson.loads(raw)["error"]["type"] == "upstream_timeout"
        assert not raw.startswith(b":")  # no keep-alive went out
        assert len(s.log.records) == 2


async def test_heartbeat_then_total_failure_is_sent_in_stream() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"dead": {"ttft_ms": 10000, "tokens": 2}}},
    }
    routes = {"chat": {"strategy": "fallback", "deployments": ["dead"], "heartbeat_after_s": 0.05}}
    deployments = {"dead": {"ttft_timeout_s": 0.3}}
    async with stack(servers, routes, deployments) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200
        assert raw.startswith(b": keep-alive")
        assert raw.endswith(b"data: [DONE]\n\n")
        assert b'"error"' in raw


async def attempts_per_request(s: Stack, requests: int) -> list[int]:
    attempts = []
    for _ in range(requests):
        before = len(s.log.records)
        status, _, _ = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200
        await s.log.wait_for(lambda rs: all(r.outcome != "pending" for r in rs))
        attempts.append(len(s.log.records) - before)
    return attempts


async def test_extra_load_budget_turns_racing_off_and_on() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"p": FAST}},
        "b": {"kind": "openai", "models": {"q": FAST}},
    }
    route = {"strategy": "race", "k": 2, "deployments": ["p", "q"], "max_extra_load": 0.5}
    routes = {"chat": {**route, "min_extra_per_s": 0}}
    async with stack(servers, routes, admin={"key": "admin-secret"}) as s:
        assert await attempts_per_request(s, 4) == [2, 1, 2, 1]
        metrics = s.gateway.metrics.render().decode()
        assert 'gateway_extra_load_budget_exhausted_total{route="chat"} 2.0' in metrics
        assert 'gateway_extra_load_budget_refused_total{route="chat"} 2.0' in metrics
        async with aiohttp.ClientSession() as http:
            headers = {"authorization": "Bearer admin-secret"}
            async with http.get(f"{s.url}/admin/deployments", headers=headers) as resp:
                view = await resp.json()
        budget = view["routes"]["chat"]["extra_load_budget"]
        assert budget["refused"] == 2 and budget["spent"] == 2
        assert budget["share"] == 0.5 and budget["min_extra_per_s"] == 0


async def test_race_without_budget_races_every_request_and_floor_races_quiet_traffic() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"p": FAST}},
        "b": {"kind": "openai", "models": {"q": FAST}},
    }
    for route in (
        {"strategy": "race", "k": 2, "deployments": ["p", "q"]},  # no share: never limited
        {"strategy": "race", "k": 2, "deployments": ["p", "q"], "max_extra_load": 0.1},
    ):
        async with stack(servers, {"chat": route}) as s:
            assert await attempts_per_request(s, 6) == [2] * 6
            metrics = s.gateway.metrics.render().decode()
            assert "gateway_extra_load_budget_refused_total{" not in metrics


async def test_client_disconnect_before_headers_cancels_upstreams() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"s1": {"ttft_ms": 10000}}},
        "b": {"kind": "openai", "models": {"s2": {"ttft_ms": 10000}}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["s1", "s2"]}}
    async with stack(servers, routes) as s:
        async with aiohttp.ClientSession() as http:
            task = asyncio.ensure_future(
                http.post(f"{s.url}/v1/chat/completions", json={**BODY, "model": "chat"})
            )
            await s.log.wait_for(lambda rs: len(rs) == 2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        records = await s.log.wait_for(lambda rs: all(r.outcome == "client_disconnect" for r in rs))
        assert len(records) == 2
        assert await no_gateway_tasks_left()
        assert all(pool.open_connections() == 0 for pool in s.gateway.pools.values())


async def test_client_disconnect_mid_stream_cancels_upstream() -> None:
    long = {"ttft_ms": 5, "itl_ms": 5, "tokens": 2000}
    servers = {"a": {"kind": "openai", "models": {"long": long}}}
    async with stack(servers) as s:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{s.url}/v1/chat/completions", json={**BODY, "model": "long"})
            assert resp.status == 200
            await resp.content.readany()
            resp.close()  # drop the connection mid-stream
        records = await s.log.wait_for(lambda rs: rs and rs[0].outcome == "client_disconnect")
        assert records[0].tokens_sent < 2000
        assert await no_gateway_tasks_left()
        assert s.gateway.pools["a"].open_connections() == 0


async def test_mid_stream_cut_becomes_error_chunk_then_done() -> None:
    cut = {"ttft_ms": 5, "itl_ms": 1, "tokens": 20, "cut_rate": 1.0}
    servers = {"a": {"kind": "openai", "models": {"cutter": cut}}}
    async with stack(servers) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "cutter"})
        assert status == 200
        events = raw.split(b"\n\n")
        assert events[-2] == b"data: [DONE]"
        assert orjson.loads(events[-3][6:])["error"]["type"]
