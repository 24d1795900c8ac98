"""Race semantics on every front door: the door changes the wire, never the engine.

Each rule is run once per door (`DOORS`): the header-first/text-late upstream loses and is
cut at once, a failure before the first token is invisible, a total failure is an HTTP
error in the door's shape, keep-alives precede a late winner, and a failure after the
headers is the door's in-stream error. A new door adds one `Door` entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDict

from tests.stack import FAST, no_gateway_tasks_left, stack

SLOW_TEXT = {"ttft_ms": 3000, "itl_ms": 1, "tokens": 5, "prelude": True, "keepalive_ms": 20}
EARLY_TEXT = {"ttft_ms": 30, "itl_ms": 1, "tokens": 5, "prelude": False, "text": "early bird wins"}


def chat_text(raw: bytes) -> str:
    out = []
    for event in raw.split(b"\n\n"):
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            if chunk.get("choices"):
                out.append(chunk["choices"][0]["delta"].get("content") or "")
    return "".join(out)


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`event:` + `data:` events (Anthropic's and the Responses API's framing)."""
    out = []
    for block in raw.split(b"\n\n"):
        lines = [line for line in block.split(b"\n") if not line.startswith(b":")]
        if len(lines) == 2 and lines[0].startswith(b"event: "):
            out.append((lines[0][7:].decode(), orjson.loads(lines[1][6:])))
    return out


def messages_text(raw: bytes) -> str:
    return "".join(
        data["delta"]["text"]
        for name, data in sse_events(raw)
        if name == "content_block_delta" and data["delta"]["type"] == "text_delta"
    )


def responses_text(raw: bytes) -> str:
    return "".join(d["delta"] for n, d in sse_events(raw) if n == "response.output_text.delta")


def responses_body_text(body: dict[str, Any]) -> str:
    return "".join(
        part["text"]
        for item in body["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


@dataclass(frozen=True)
class Door:
    name: str
    path: str
    headers: dict[str, str]
    body: Callable[[str, bool], dict[str, Any]]
    stream_text: Callable[[bytes], str]
    body_text: Callable[[dict[str, Any]], str]
    heartbeat: bytes  # what keeps the connection alive before a winner
    error_type: Callable[[dict[str, Any]], str]  # an HTTP error body's type
    stream_error: Callable[[bytes], bool]  # the stream ends in the door's error


DOORS = [
    Door(
        "chat",
        "/v1/chat/completions",
        {},
        lambda model, stream: {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        },
        chat_text,
        lambda body: body["choices"][0]["message"]["content"],
        b": keep-alive\n\n",
        lambda body: body["error"]["type"],
        lambda raw: raw.endswith(b"data: [DONE]\n\n") and b'"error"' in raw,
    ),
    Door(
        "messages",
        "/v1/messages",
        {"anthropic-version": "2023-06-01"},
        lambda model, stream: {
            "model": model,
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
        },
        messages_text,
        lambda body: body["content"][0]["text"],
        b'event: ping\ndata: {"type":"ping"}\n\n',
        lambda body: body["error"]["type"],
        lambda raw: sse_events(raw)[-1][0] == "error",
    ),
    Door(
        "responses",
        "/v1/responses",
        {},
        lambda model, stream: {"model": model, "input": "hi", "stream": stream},
        responses_text,
        responses_body_text,
        b": keep-alive\n\n",
        lambda body: body["error"]["type"],
        lambda raw: sse_events(raw)[-1][0] == "response.failed",
    ),
]


async def post(
    url: str, door: Door, model: str, stream: bool = True
) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession() as http:
        body = door.body(model, stream)
        async with http.post(url + door.path, json=body, headers=door.headers) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.read()


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_header_first_text_late_loses_and_is_cut(door: Door) -> None:
    servers = {
        "a": {"kind": "openai", "models": {"late": SLOW_TEXT}},
        "b": {"kind": "anthropic", "models": {"early": EARLY_TEXT}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, door, "chat")
        assert status == 200 and headers["x-gateway-deployment"] == "early"
        assert door.stream_text(raw) == "early bird wins"
        records = await s.log.wait_for(
            lambda rs: any(r.model == "late" and r.outcome == "client_disconnect" for r in rs)
        )
        late = next(r for r in records if r.model == "late")
        early = next(r for r in records if r.model == "early")
        assert late.headers_sent is not None and late.tokens_sent == 0
        assert late.disconnect is not None and early.first_token is not None
        assert late.disconnect >= early.first_token
        assert await no_gateway_tasks_left()


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_non_stream_races_too(door: Door) -> None:
    servers = {
        "a": {"kind": "anthropic", "models": {"late": SLOW_TEXT}},
        "b": {"kind": "ollama", "models": {"early": EARLY_TEXT}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, door, "chat", stream=False)
        assert status == 200 and headers["x-gateway-deployment"] == "early"
        assert door.body_text(orjson.loads(raw)) == "early bird wins"
        assert {r.model for r in s.log.records} == {"late", "early"}


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_failure_before_the_first_token_is_invisible(door: Door) -> None:
    servers = {
        "a": {"kind": "anthropic", "models": {"broken": {**FAST, "error_rate_529": 1.0}}},
        "b": {"kind": "openai", "models": {"ok": {**FAST, "text": "fine"}}},
    }
    routes = {"chat": {"strategy": "fallback", "deployments": ["broken", "ok"]}}
    async with stack(servers, routes) as s:
        status, headers, raw = await post(s.url, door, "chat")
        assert status == 200 and headers["x-gateway-deployment"] == "ok"
        assert door.stream_text(raw) == "fine"
        assert [r.outcome for r in s.log.records] == ["error_529", "completed"]


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_total_failure_is_an_http_error_in_the_doors_shape(door: Door) -> None:
    servers = {"a": {"kind": "openai", "models": {"x": {**FAST, "error_rate_500": 1.0}}}}
    async with stack(servers) as s:
        status, headers, raw = await post(s.url, door, "x")
        assert status == 500 and "x-gateway-deployment" not in headers
        assert door.error_type(orjson.loads(raw))


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_keep_alives_before_a_late_winner(door: Door) -> None:
    servers = {"a": {"kind": "openai", "models": {"slow": {"ttft_ms": 400, "tokens": 2}}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["slow"], "heartbeat_after_s": 0.05}}
    async with stack(servers, routes) as s:
        status, _, raw = await post(s.url, door, "chat")
        assert status == 200 and raw.startswith(door.heartbeat)
        assert b": x-gateway-deployment slow\n\n" in raw
        assert door.stream_text(raw)


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_keep_alives_then_total_failure_is_sent_in_stream(door: Door) -> None:
    servers = {"a": {"kind": "openai", "models": {"dead": {"ttft_ms": 10000, "tokens": 2}}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["dead"], "heartbeat_after_s": 0.05}}
    deployments = {"dead": {"ttft_timeout_s": 0.3}}
    async with stack(servers, routes, deployments) as s:
        status, _, raw = await post(s.url, door, "chat")
        assert status == 200 and raw.startswith(door.heartbeat)
        assert door.stream_error(raw)


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
async def test_failure_after_the_first_token_is_the_doors_stream_error(door: Door) -> None:
    servers = {"a": {"kind": "gemini", "models": {"m": {**FAST, "midstream_error_rate": 1.0}}}}
    async with stack(servers) as s:
        status, _, raw = await post(s.url, door, "m")
        assert status == 200 and door.stream_text(raw)
        assert door.stream_error(raw)
