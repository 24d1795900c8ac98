"""gateway.server.limits: read_body (size, deadline, broken encodings) and runner_kwargs,
on a small aiohttp app over real sockets."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.config.model import LimitsConfig
from gateway.server import limits as server_limits
from gateway.server.limits import body_timeout_s, read_body, runner_kwargs
from gateway.server.middlewares import error_middleware

LIMIT = 1000


async def echo_length(request: web.Request) -> web.Response:
    body = await read_body(request, LIMIT, 0.3)
    return web.json_response({"length": len(body), "head": body[:20].decode("latin-1")})


async def serve(**kwargs: object) -> tuple[web.AppRunner, str]:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_post("/", echo_length)
    app.router.add_get("/", echo_length)
    runner = web.AppRunner(app, access_log=None, **kwargs)  # type: ignore[arg-type]
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def url() -> AsyncIterator[str]:
    runner, base = await serve(**runner_kwargs(LimitsConfig()))
    try:
        yield base
    finally:
        await runner.cleanup()


async def raw(url: str, data: bytes, wait_s: float = 2.0) -> bytes:
    """Send `data`; return the answer (up to `wait_s` for its first byte, then until the
    server pauses or closes)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    out = b""
    try:
        writer.write(data)
        async with asyncio.timeout(wait_s):
            out = await reader.read(65536)
        while out:
            async with asyncio.timeout(0.1):
                chunk = await reader.read(65536)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        await writer.wait_closed()
    return out


async def post(url: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/", data=body, headers=headers) as resp:
            return resp.status, await resp.json()


async def test_reads_plain_and_compressed_bodies(url: str) -> None:
    assert await post(url, b"hello") == (200, {"length": 5, "head": "hello"})
    status, body = await post(url, gzip.compress(b"x" * 900), **{"content-encoding": "gzip"})
    assert (status, body["length"]) == (200, 900)
    status, body = await post(url, zlib.compress(b"y" * 10), **{"content-encoding": "deflate"})
    assert (status, body["length"]) == (200, 10)

    async def pieces() -> AsyncIterator[bytes]:
        yield b"ab"
        yield b"cd"

    async with aiohttp.ClientSession() as http:  # chunked, no Content-Length
        async with http.post(url + "/", data=pieces()) as resp:
            assert (await resp.json())["length"] == 4


async def test_too_large_by_header_by_stream_and_after_decoding(url: str) -> None:
    status, body = await post(url, b"x" * (LIMIT + 1))
    assert status == 413
    assert body["error"]["code"] == "request_too_large" and body["error"]["param"] == "body"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"z" * 100

    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/", data=chunks()) as resp:
            assert resp.status == 413
    bomb = gzip.compress(b"\0" * 1_000_000)  # ~1 KB that decodes to 1 MB
    assert len(bomb) < 2 * LIMIT
    status, body = await post(url, bomb, **{"content-encoding": "gzip"})
    assert status == 413


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_corrupt_encoding_is_a_400(url: str, encoding: str) -> None:
    status, body = await post(url, b"\x1f\x8b\x08 not compressed", **{"content-encoding": encoding})
    assert status == 400
    error = body["error"]
    assert error["code"] == "invalid_body" and error["param"] == "body"
    assert "could not be read" in error["message"] and "\n" not in error["message"]


async def test_stalled_body_is_a_408(url: str) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n"
    answer = await raw(url, head + b"only part")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b'"request_timeout"' in answer


async def test_body_slower_than_the_deadline_is_a_408(url: str) -> None:
    """A trickle of bytes does not reset the deadline: it is for the whole body."""
    runner, base = await serve(**runner_kwargs(LimitsConfig()))
    try:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n")
        for _ in range(8):
            writer.write(b"ab")
            await asyncio.sleep(0.06)
        async with asyncio.timeout(2):
            answer = await reader.read(100)
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 408"), answer
    finally:
        await runner.cleanup()


async def test_disconnect_mid_body_cancels_quietly(url: str) -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n"
    assert await raw(url, head + b"abc", wait_s=0.05) == b""
    assert await post(url, b"ok") == (200, {"length": 2, "head": "ok"})  # still serving


def test_runner_kwargs_are_request_handler_options() -> None:
    kwargs = runner_kwargs(LimitsConfig())
    accepted = inspect.signature(RequestHandler.__init__).parameters
    assert set(kwargs) <= set(accepted)
    assert kwargs["keepalive_timeout"] == server_limits.KEEPALIVE_TIMEOUT_S
    assert kwargs["max_headers"] == server_limits.MAX_HEADERS
    assert body_timeout_s(LimitsConfig()) == server_limits.BODY_TIMEOUT_S


async def test_header_limits_apply() -> None:
    runner, base = await serve(**runner_kwargs(LimitsConfig()))
    try:
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(server_limits.MAX_HEADERS + 1))
        answer = await raw(base, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert answer.startswith(b"HTTP/1.0 400"), answer[:80]
        big = b"X-Big: " + b"v" * (server_limits.MAX_HEADER_BYTES + 1) + b"\r\n"
        answer = await raw(base, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        assert answer.startswith(b"HTTP/1.0 400"), answer[:80]
    finally:
        await runner.cleanup()


async def test_slow_request_head_is_cut_at_the_keepalive_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_limits, "KEEPALIVE_TIMEOUT_S", 0.2)
    runner, base = await serve(**runner_kwargs(LimitsConfig()))
    try:
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        async with asyncio.timeout(2):
            assert await reader.read() == b""  # closed without an answer
        writer.close()
        await writer.wait_closed()
    finally:
        await runner.cleanup()
