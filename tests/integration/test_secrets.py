"""Secrets never leave: an upstream that echoes secrets in every field of its errors, before
and after the first token, in each provider kind's own error shape; the markers appear in
nothing the client gets and in no log line."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web

from gateway.config import parse_config
from gateway.runtime import Gateway
from gateway.server.app import start_server

PROVIDER_KEY = "sk-provider-MARKER-0123456789"
GATEWAY_KEY = "gw-key-MARKER-9876543210"
ADMIN_KEY = "admin-MARKER-5555555555"
MARKERS = (PROVIDER_KEY, GATEWAY_KEY, ADMIN_KEY, "MARKER")
ECHO = f"key {PROVIDER_KEY} / {GATEWAY_KEY} / {ADMIN_KEY}"


def sse(*events: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return b"".join(head + b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def http_error(kind: str) -> tuple[int, bytes]:
    if kind == "openai":
        body = {
            "error": {
                "message": ECHO,
                "type": PROVIDER_KEY,
                "param": GATEWAY_KEY,
                "code": ADMIN_KEY,
            }
        }
    elif kind == "anthropic":
        body = {"type": "error", "error": {"type": PROVIDER_KEY, "message": ECHO}}
    elif kind == "gemini":
        body = {
            "error": {
                "code": 400,
                "message": ECHO,
                "status": PROVIDER_KEY,
                "details": [{"reason": ADMIN_KEY}],
            }
        }
    else:
        body = {"error": ECHO}
    return 400, orjson.dumps(body)


def stream_with_error(kind: str) -> bytes:
    if kind == "openai":
        chunk = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
        }
        return sse(chunk) + sse(
            {
                "error": {
                    "message": ECHO,
                    "type": PROVIDER_KEY,
                    "param": GATEWAY_KEY,
                    "code": ADMIN_KEY,
                }
            }
        )
    if kind == "anthropic":
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 1, "output_tokens": 0},
            },
        }
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "hi"},
        }
        error = {"type": "error", "error": {"type": PROVIDER_KEY, "message": ECHO}}
        return (
            sse(start, event="message_start")
            + sse(block, event="content_block_start")
            + sse(delta, event="content_block_delta")
            + sse(error, event="error")
        )
    if kind == "gemini":
        chunk = {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "index": 0}]
        }
        return sse(chunk) + sse({"error": {"code": 500, "message": ECHO, "status": PROVIDER_KEY}})
    line = {
        "model": "m",
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "hi"},
        "done": False,
    }
    return orjson.dumps(line) + b"\n" + orjson.dumps({"error": ECHO}) + b"\n"


@asynccontextmanager
async def echoing_upstream(kind: str, mode: str) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if mode == "http":
            status, body = http_error(kind)
            return web.Response(
                status=status,
                body=body,
                content_type="application/json",
                headers={"x-echo": PROVIDER_KEY},
            )
        content_type = "application/x-ndjson" if kind == "ollama" else "text/event-stream"
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        await response.write(stream_with_error(kind))
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("mode", ["http", "stream"])
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama"])
async def test_echoed_secrets_reach_no_client_and_no_log(
    kind: str, mode: str, stream: bool
) -> None:
    async with echoing_upstream(kind, mode) as base:
        base_url = base + "/v1" if kind == "openai" else base
        config = parse_config(
            {
                "auth": {"keys": [GATEWAY_KEY]},
                "admin": {"key": ADMIN_KEY},
                "providers": {"p": {"kind": kind, "base_url": base_url, "api_key": PROVIDER_KEY}},
                "deployments": {"d": {"provider": "p", "model": "m"}},
                "routes": {"chat": {"deployments": ["d"]}},
                "latency": {"prewarm": {"enabled": False}},
            },
            env={},
        )
        gateway = Gateway(config)
        runner, url = await start_server(gateway, "127.0.0.1", 0)
        try:
            with structlog.testing.capture_logs() as logs:
                async with aiohttp.ClientSession() as http:
                    body = {
                        "model": "chat",
                        "stream": stream,
                        "messages": [{"role": "user", "content": "hello"}],
                    }
                    async with http.post(
                        f"{url}/v1/chat/completions",
                        json=body,
                        headers={"Authorization": f"Bearer {GATEWAY_KEY}"},
                    ) as resp:
                        raw = await resp.read()
                        seen = raw.decode() + str(dict(resp.headers))
                    async with http.get(
                        f"{url}/admin/deployments", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                    ) as admin:
                        seen += (await admin.read()).decode()
            assert b"error" in raw  # the upstream's error did reach the client, scrubbed
            seen += str(logs) + gateway.metrics.render().decode()
            for marker in MARKERS:
                assert marker not in seen, (marker, seen[:2000])
        finally:
            await runner.cleanup()
