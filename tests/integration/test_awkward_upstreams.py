"""Upstreams with awkward habits: a JSON answer to a streaming request, errors with 200."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiohttp import web
from openai import APIError, AsyncOpenAI

from gateway.config import parse_config
from gateway.runtime import Gateway
from gateway.server.app import start_server

COMPLETION = {
    "id": "chatcmpl-x",
    "object": "chat.completion",
    "created": 1,
    "model": "legacy-1",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "whole answer"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


@asynccontextmanager
async def upstream(body: dict[str, object], status: int = 200) -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def gateway_for(base_url: str) -> AsyncIterator[str]:
    config = parse_config(
        {
            "latency": {"prewarm": {"enabled": False}},
            "providers": {"up": {"kind": "openai_compatible", "base_url": base_url}},
            "deployments": {"m": {"provider": "up", "model": "legacy"}},
            "routing": {"allow_direct_deployments": True},
        },
        env={},
    )
    runner, url = await start_server(Gateway(config), "127.0.0.1", 0)
    try:
        yield url
    finally:
        await runner.cleanup()


async def test_json_answer_to_a_streaming_request_is_streamed_to_the_client() -> None:
    async with upstream(COMPLETION) as base, gateway_for(base) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(text) == "whole answer"


async def test_error_body_with_status_200_is_an_error_not_an_empty_answer() -> None:
    error = {"error": {"message": "model overloaded", "type": "server_error", "code": None}}
    async with upstream(error) as base, gateway_for(base) as url:
        client = AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        try:
            await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
        except APIError as exc:
            assert "overloaded" in str(exc.message)
        else:
            raise AssertionError("an upstream error must not become an empty answer")
