"""Every aiohttp internal that `gateway/compat_aiohttp.py` relies on still exists, with the
shape it uses, in the installed aiohttp; then each seam function is run against a real
local server. An aiohttp upgrade that moves one of them fails here first, naming it.

pyproject.toml bounds aiohttp to the minor versions this file has been run against
(COVERED_MINORS). The seam itself also passes on 3.13.5, but the gateway needs 3.14
(`web.RequestKey`). To take a new minor: run this file on it, then widen both.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.compat_aiohttp import (
    abort_connections,
    open_connection_count,
    pooled_connection_count,
    render_protocol_errors,
)

VERSION = aiohttp.__version__
COVERED_MINORS = ((3, 14),)  # contiguous, oldest first
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _internal(what: str) -> str:
    return f"aiohttp {VERSION}: {what} changed; gateway/compat_aiohttp.py relies on it"


# --- versions -----------------------------------------------------------------------------


def test_installed_aiohttp_is_a_covered_minor() -> None:
    installed = tuple(int(part) for part in VERSION.split(".")[:2])
    covered = ", ".join(f"{a}.{b}" for a, b in COVERED_MINORS)
    assert installed in COVERED_MINORS, (
        f"aiohttp {VERSION} is outside the minors this seam was checked on ({covered}): "
        "run tests/unit/test_aiohttp_compat.py on it, then widen COVERED_MINORS and the "
        "bound in pyproject.toml"
    )


def test_pyproject_bounds_aiohttp_to_the_covered_minors() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    specs = [d for d in dependencies if re.match(r"aiohttp\b", d)]
    (low_major, low_minor), (high_major, high_minor) = COVERED_MINORS[0], COVERED_MINORS[-1]
    assert specs == [f"aiohttp>={low_major}.{low_minor},<{high_major}.{high_minor + 1}"]


# --- shapes -------------------------------------------------------------------------------


def test_request_handler_shape() -> None:
    init = inspect.signature(RequestHandler.__init__).parameters
    assert list(init)[:2] == ["self", "manager"], _internal("RequestHandler(manager, ...)")
    assert init["loop"].kind is inspect.Parameter.KEYWORD_ONLY, _internal("RequestHandler loop=")
    handle_error = inspect.signature(RequestHandler.handle_error).parameters
    assert list(handle_error) == ["self", "request", "status", "exc", "message"], _internal(
        "RequestHandler.handle_error(request, status, exc, message)"
    )
    defaults = [handle_error[name].default for name in ("status", "exc", "message")]
    assert defaults == [500, None, None], _internal("handle_error's defaults")


async def test_server_shape() -> None:
    assert callable(inspect.getattr_static(web.Server, "__call__")), _internal("Server.__call__")
    assert isinstance(inspect.getattr_static(web.Server, "connections"), property), _internal(
        "Server.connections"
    )

    async def handler(request: BaseRequest) -> web.StreamResponse:
        return web.Response()

    loop = asyncio.get_running_loop()
    server = web.Server(handler, loop=loop, max_headers=7)
    assert server._loop is loop, _internal("Server._loop")
    assert server._kwargs == {"max_headers": 7}, _internal("Server._kwargs (handler options)")
    protocol = server()
    assert type(protocol) is RequestHandler, _internal("Server.__call__ -> RequestHandler")
    assert protocol.transport is None, _internal("RequestHandler.transport")
    assert server.connections == [], _internal("Server.connections")


async def test_app_runner_builds_a_plain_server() -> None:
    runner = web.AppRunner(web.Application(), handler_cancellation=True)
    await runner.setup()
    try:
        assert type(runner.server) is web.Server, _internal("AppRunner.server is a web.Server")
    finally:
        await runner.cleanup()


async def test_connector_shape() -> None:
    connector = aiohttp.TCPConnector()
    try:
        assert isinstance(connector._acquired, set), _internal("BaseConnector._acquired")
        assert hasattr(connector._conns, "values"), _internal("BaseConnector._conns")
        assert pooled_connection_count(connector) == 0
    finally:
        await connector.close()


# --- the seam at work, on a real socket -----------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[web.AppRunner, str]]:
    app = web.Application()
    app.router.add_get("/", _ok)
    app.router.add_get("/stream", _unfinished)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _unfinished(request: web.Request) -> web.StreamResponse:
    """Headers and a first chunk, then a body that never ends (until the client goes)."""
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"x")
    await asyncio.Event().wait()  # cancelled when the connection is lost
    return response


async def _exchange(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            return await reader.read()  # until the server closes
    finally:
        writer.close()


async def test_protocol_errors_are_rendered(served: tuple[web.AppRunner, str]) -> None:
    runner, url = served
    statuses: list[int] = []

    def render(status: int) -> web.StreamResponse:
        statuses.append(status)
        return web.Response(status=status, body=b'{"rendered":true}')

    assert render_protocol_errors(runner, render) is True
    answer = await _exchange(url, b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    assert answer.split(b" ", 2)[1] == b"400"
    assert answer.endswith(b'{"rendered":true}')
    assert statuses == [400]
    ok = await _exchange(url, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert ok.endswith(b"\r\n\r\nok")  # ordinary requests are untouched


async def test_only_a_plain_server_is_swapped(served: tuple[web.AppRunner, str]) -> None:
    runner, _ = served
    assert render_protocol_errors(runner, lambda status: web.Response(status=status))
    # A second call finds aiohttp's class already replaced and leaves it alone.
    assert not render_protocol_errors(runner, lambda status: web.Response(status=status))


async def test_connections_are_counted_and_aborted(served: tuple[web.AppRunner, str]) -> None:
    runner, url = served
    server = runner.server
    assert server is not None
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            await reader.readuntil(b"ok")  # answered; the connection stays open (keep-alive)
        assert open_connection_count(server) == 1
        assert abort_connections(server) == 1
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # the server dropped it
    finally:
        writer.close()


async def test_pooled_connections_are_counted(served: tuple[web.AppRunner, str]) -> None:
    _, url = served
    async with aiohttp.ClientSession() as session:
        connector = session.connector
        assert connector is not None
        streaming = await session.get(url + "/stream")
        assert await streaming.content.readexactly(1) == b"x"
        assert pooled_connection_count(connector) == 1  # held by the unfinished response
        streaming.close()  # dropped, not returned to the pool
        assert pooled_connection_count(connector) == 0
        finished = await session.get(url)
        await finished.read()
        finished.release()
        assert pooled_connection_count(connector) == 1  # idle in the pool
