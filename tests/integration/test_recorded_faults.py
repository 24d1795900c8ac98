"""Faults seen in recorded production streams, replayed by scripted upstreams over HTTP:
a second Anthropic message inside one stream, and reasoning tokens reported beside
completion tokens. The official OpenAI SDK is the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from aiohttp import web
from openai import APIError, AsyncOpenAI

from gateway.config import parse_config
from gateway.runtime import Gateway
from gateway.server.app import start_server

MSG = [{"role": "user", "content": "Weather in Oslo?"}]


def anthropic_sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def message_start(message_id: str) -> tuple[str, dict[str, Any]]:
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-x",
        "stop_reason": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    }
    return "message_start", {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = "content_block_start"
    return name, {"type": name, "index": index, "content_block": block}


def delta(index: int, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": body}


TOOL = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}
SPLICED_BEFORE_TOKEN = anthropic_sse(
    message_start("msg_01"),
    message_start("msg_01"),  # repeated: ignored
    message_start("msg_02"),  # a second message before any output
    block_start(0, {"type": "text", "text": ""}),
    delta(0, {"type": "text_delta", "text": "spliced"}),
)
SPLICED_MID_TOOL_CALL = anthropic_sse(
    message_start("msg_01"),
    block_start(0, TOOL),
    delta(0, {"type": "input_json_delta", "partial_json": '{"city": "Os'}),
    message_start("msg_02"),
    block_start(0, {**TOOL, "id": "toolu_02"}),
    delta(0, {"type": "input_json_delta", "partial_json": '{"city": "Oslo"}'}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)


def openai_sse(usage: dict[str, Any]) -> bytes:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "r-1"}
    chunks = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Four."}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": usage},
    ]
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


REASONING_BESIDE = openai_sse(
    {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "total_tokens": 303,
        "completion_tokens_details": {"reasoning_tokens": 290},
    }
)


@asynccontextmanager
async def scripted(path: str, body: bytes) -> AsyncIterator[str]:
    """An upstream that answers every POST to `path` with `body` as an SSE stream."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def gateway(
    providers: dict[str, dict[str, Any]], route: list[str]
) -> AsyncIterator[tuple[Gateway, AsyncOpenAI]]:
    config = parse_config(
        {
            "latency": {"prewarm": {"enabled": False}},
            "providers": providers,
            "deployments": {
                name: {"provider": name, "model": name, "price": {"input": 1.0, "output": 10.0}}
                for name in providers
            },
            "routes": {"chat": {"strategy": "fallback", "deployments": route}},
        },
        env={},
    )
    gw = Gateway(config)
    runner, url = await start_server(gw, "127.0.0.1", 0)
    try:
        yield gw, AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    finally:
        await runner.cleanup()


async def test_second_message_before_the_first_token_moves_on_to_the_next_candidate() -> None:
    async with (
        scripted("/v1/messages", SPLICED_BEFORE_TOKEN) as faulty,
        scripted("/v1/chat/completions", REASONING_BESIDE) as good,
    ):
        providers = {
            "claude": {"kind": "anthropic", "base_url": faulty, "api_key": "k"},
            "backup": {"kind": "openai_compatible", "base_url": f"{good}/v1"},
        }
        async with gateway(providers, ["claude", "backup"]) as (_, client):
            stream = await client.chat.completions.create(
                model="chat",
                messages=MSG,
                stream=True,  # type: ignore[arg-type]
            )
            text = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            assert "".join(text) == "Four."  # nothing of the spliced message


async def test_second_message_mid_tool_call_is_an_in_stream_error() -> None:
    async with scripted("/v1/messages", SPLICED_MID_TOOL_CALL) as faulty:
        providers = {"claude": {"kind": "anthropic", "base_url": faulty, "api_key": "k"}}
        async with gateway(providers, ["claude"]) as (_, client):
            stream = await client.chat.completions.create(
                model="chat",
                messages=MSG,
                stream=True,  # type: ignore[arg-type]
            )
            arguments = []
            with pytest.raises(APIError, match="second message"):
                async for chunk in stream:
                    for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                        arguments.append(call.function.arguments or "" if call.function else "")
            assert "".join(arguments) == '{"city": "Os'  # cut, never merged with the next


async def test_reasoning_reported_beside_completion_reaches_the_client_and_the_cost() -> None:
    async with scripted("/v1/chat/completions", REASONING_BESIDE) as up:
        providers = {"r": {"kind": "openai_compatible", "base_url": f"{up}/v1"}}
        async with gateway(providers, ["r"]) as (gw, client):
            stream = await client.chat.completions.create(
                model="chat",
                messages=MSG,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            usage = [c.usage async for c in stream if c.usage is not None]
            assert len(usage) == 1
            assert usage[0].total_tokens == 303  # not 13
            assert usage[0].completion_tokens == 3
            assert usage[0].completion_tokens_details is not None
            assert usage[0].completion_tokens_details.reasoning_tokens == 290
            answer = await client.chat.completions.create(model="chat", messages=MSG)  # type: ignore[arg-type]
            assert answer.usage is not None and answer.usage.total_tokens == 303
        assert gw.spend_by_deployment["r"] == pytest.approx(2 * (10 * 1.0 + 293 * 10.0) / 1e6)
