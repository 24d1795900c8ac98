"""Race rules through the Responses door: the same engine as chat, the door's own wire.
Real sockets, simulated upstreams, the sim log as witness; every SSE event is checked
against the openai SDK's types."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from multidict import CIMultiDict
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from tests.stack import no_gateway_tasks_left, stack

EVENT = TypeAdapter(ResponseStreamEvent)
SLOW_TEXT = {"ttft_ms": 3000, "itl_ms": 1, "tokens": 5, "prelude": True, "keepalive_ms": 20}
EARLY_TEXT = {"ttft_ms": 30, "itl_ms": 1, "tokens": 5, "prelude": False, "text": "early bird wins"}
BODY = {"input": "hi", "stream": True}
RACE = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
SERVERS = {
    "a": {"kind": "openai", "models": {"late": SLOW_TEXT}},
    "b": {"kind": "anthropic", "models": {"early": EARLY_TEXT}},
}


async def post(url: str, body: dict[str, object]) -> tuple[int, CIMultiDict[str], bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/v1/responses", json=body) as resp,
    ):
        return resp.status, CIMultiDict(resp.headers), await resp.read()


def events(raw: bytes) -> list[object]:
    """The typed events of a Responses stream (SSE comments skipped)."""
    out = []
    for block in raw.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if line and not line.startswith(b":")]
        if lines:
            out.append(EVENT.validate_json(lines[-1].removeprefix(b"data: ")))
    return out


def text_of(parsed: list[object]) -> str:
    return "".join(
        e.delta  # type: ignore[attr-defined]
        for e in parsed
        if e.type == "response.output_text.delta"  # type: ignore[attr-defined]
    )


async def test_header_first_text_late_loses_and_is_dropped() -> None:
    async with stack(SERVERS, RACE) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200 and headers["x-gateway-deployment"] == "early"
        assert text_of(events(raw)) == "early bird wins"
        records = await s.log.wait_for(
            lambda rs: any(r.model == "late" and r.outcome == "client_disconnect" for r in rs)
        )
        late = next(r for r in records if r.model == "late")
        early = next(r for r in records if r.model == "early")
        assert late.headers_sent is not None and late.tokens_sent == 0
        assert late.disconnect is not None and early.first_token is not None
        assert late.disconnect >= early.first_token
        assert await no_gateway_tasks_left()


async def test_non_stream_races_too() -> None:
    async with stack(SERVERS, RACE) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat", "stream": False})
        assert status == 200 and headers["x-gateway-deployment"] == "early"
        body = orjson.loads(raw)
        assert body["object"] == "response"
        assert body["output"][0]["content"][0]["text"] == "early bird wins"


async def test_failure_before_first_token_is_invisible() -> None:
    servers = {
        "a": {"kind": "gemini", "models": {"bad": {"ttft_ms": 5, "error_rate_500": 1.0}}},
        "b": {"kind": "ollama", "models": {"ok": {"ttft_ms": 5, "tokens": 3, "text": "fine"}}},
    }
    routes = {"chat": {"strategy": "fallback", "deployments": ["bad", "ok"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "chat"})
        assert status == 200 and headers["x-gateway-deployment"] == "ok"
        parsed = events(raw)
        assert text_of(parsed) == "fine"
        assert [e.type for e in parsed].count("error") == 0  # type: ignore[attr-defined]


async def test_all_fail_429_is_an_http_429_in_the_envelope() -> None:
    limited = {"ttft_ms": 5, "error_rate_429": 1.0, "retry_after_s": 3}
    servers = {"a": {"kind": "openai", "models": {"x": limited}}}
    async with stack(servers) as s:
        status, headers, raw = await post(s.url, {**BODY, "model": "x"})
        assert status == 429 and headers["retry-after"] == "3"
        assert orjson.loads(raw)["error"]["type"]


async def test_heartbeat_then_late_winner_then_failure_in_stream() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"slow": {"ttft_ms": 400, "tokens": 2}}},
        "b": {"kind": "openai", "models": {"dead": {"ttft_ms": 10000, "tokens": 2}}},
    }
    routes = {
        "late": {"strategy": "fallback", "deployments": ["slow"], "heartbeat_after_s": 0.05},
        "never": {"strategy": "fallback", "deployments": ["dead"], "heartbeat_after_s": 0.05},
    }
    async with stack(servers, routes, {"dead": {"ttft_timeout_s": 0.3}}) as s:
        status, _, raw = await post(s.url, {**BODY, "model": "late"})
        assert status == 200 and raw.startswith(b": keep-alive\n\n")
        parsed = events(raw)
        assert parsed[-1].type == "response.completed"  # type: ignore[attr-defined]
        status, _, raw = await post(s.url, {**BODY, "model": "never"})
        assert status == 200 and raw.startswith(b": keep-alive")
        kinds = [e.type for e in events(raw)]  # type: ignore[attr-defined]
        assert kinds == ["response.created", "response.in_progress", "error", "response.failed"]


async def test_client_disconnect_mid_stream_cancels_upstream() -> None:
    slow = {"ttft_ms": 5, "itl_ms": 200, "tokens": 50}
    async with stack({"a": {"kind": "openai", "models": {"m": slow}}}) as s:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{s.url}/v1/responses", json={**BODY, "model": "m"}) as resp,
        ):
            first = await resp.content.readuntil(b"response.output_text.delta")
            assert b"response.created" in first
        records = await s.log.wait_for(lambda rs: rs and rs[0].outcome == "client_disconnect")
        assert records[0].tokens_sent < 50
        for _ in range(100):
            if await no_gateway_tasks_left():
                break
            await asyncio.sleep(0.01)
        assert await no_gateway_tasks_left()
