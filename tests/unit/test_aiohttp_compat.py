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
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from gateway.compat_aiohttp import (
    HTTP2,
    abort_connections,
    body_reader,
    divert_reader,
    open_connection_count,
    ready_stream,
    render_protocol_errors,
    serve_foreign_request,
    start_stream,
    sync_writer,
    undivert_reader,
    unwatch_reader,
    watch_reader,
)
from gateway.server.answering import SSE_HEADERS, FirstWrite
from tests.served import serving

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


# --- the seam at work, on a real socket -----------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[web.AppRunner, str]]:
    app = web.Application()
    app.router.add_get("/", _ok)
    app.router.add_get("/stream", _unfinished)
    async with serving(app) as served:
        yield served


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


# --- the fast relay's seams: a diverted client body, a synchronous server write ------------


def test_stream_reader_shape() -> None:
    slots = set(StreamReader.__slots__)
    assert {"_buffer", "_eof", "_exception"} <= slots, _internal("StreamReader's buffer slots")
    feed = inspect.signature(StreamReader.feed_data).parameters
    assert list(feed) == ["self", "data", "size"], _internal("StreamReader.feed_data(data, size)")
    fail = inspect.signature(StreamReader.set_exception).parameters
    assert list(fail) == ["self", "exc", "exc_cause"], _internal("set_exception(exc, exc_cause)")


async def test_stream_writer_shape() -> None:
    class Protocol:
        transport = None

    writer = StreamWriter(Protocol(), asyncio.get_running_loop())  # type: ignore[arg-type]
    for name in ("chunked", "length", "output_size", "on_body_write", "_compress"):
        assert hasattr(writer, name), _internal(f"StreamWriter.{name}")
    for name in ("_headers_buf", "_on_chunk_sent", "_protocol"):
        assert hasattr(writer, name), _internal(f"StreamWriter.{name}")


class _Diversion:
    def __init__(self, hold: bytes = b"") -> None:
        self.pieces: list[bytes] = []
        self.hold = hold
        self.ended = False
        self.arrived = asyncio.Event()

    def on_data(self, data: bytes) -> None:
        self.pieces.append(data)
        self.arrived.set()

    def on_end(self) -> bytes:
        self.ended = True
        return self.hold


async def _released(request: web.Request) -> web.StreamResponse:
    """Sends each piece the test puts in the app's queue; None ends the body."""
    response = web.StreamResponse()
    await response.prepare(request)
    queue: asyncio.Queue[bytes | None] = request.app[QUEUE]
    while (piece := await queue.get()) is not None:
        await response.write(piece)
    await response.write_eof()
    return response


QUEUE = web.AppKey("queue", asyncio.Queue)


@pytest.fixture
async def releasing() -> AsyncIterator[tuple[str, asyncio.Queue[bytes | None]]]:
    app = web.Application()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    app[QUEUE] = queue
    app.router.add_get("/", _released)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", queue
    finally:
        queue.put_nowait(None)
        await runner.cleanup()


async def _next_piece(diversion: _Diversion) -> bytes:
    async with asyncio.timeout(5):
        await diversion.arrived.wait()
    diversion.arrived.clear()
    return diversion.pieces.pop(0)


async def test_a_diverted_body_goes_to_the_diversion_then_back(
    releasing: tuple[str, asyncio.Queue[bytes | None]],
) -> None:
    url, queue = releasing
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        queue.put_nowait(b"first")
        assert await response.content.readany() == b"first"
        diversion = _Diversion()
        assert divert_reader(response.content, diversion) == b""  # it held nothing
        assert divert_reader(response.content, _Diversion()) is None  # once at a time
        queue.put_nowait(b"second")
        assert await _next_piece(diversion) == b"second"
        assert not response.content._buffer  # nothing reached the reader
        undivert_reader(response.content, b"held ")
        queue.put_nowait(b"third")
        got = b""
        while len(got) < len(b"held third"):
            got += await response.content.readany()
        assert got == b"held third" and diversion.pieces == []


async def test_the_end_of_a_diverted_body_restores_the_reader_first(
    releasing: tuple[str, asyncio.Queue[bytes | None]],
) -> None:
    url, queue = releasing
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        queue.put_nowait(b"first")
        assert await response.content.readany() == b"first"
        diversion = _Diversion(hold=b"partial")
        assert divert_reader(response.content, diversion) == b""
        queue.put_nowait(None)
        async with asyncio.timeout(5):
            assert await response.content.read() == b"partial"  # held bytes, then the end
        assert diversion.ended and type(response.content) is StreamReader


async def test_a_reader_holding_bytes_is_diverted_with_them_but_not_watched(
    releasing: tuple[str, asyncio.Queue[bytes | None]],
) -> None:
    url, queue = releasing
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        watcher = _Diversion()
        assert watch_reader(response.content, watcher)
        queue.put_nowait(b"unread")
        assert await _next_piece(watcher) == b"unread"  # parsed and buffered, not read
        unwatch_reader(response.content)
        assert not watch_reader(response.content, _Diversion())  # a watch must see it all
        diversion = _Diversion()
        assert divert_reader(response.content, diversion) == b"unread"  # taken out
        assert not response.content._buffer and response.content._size == 0
        queue.put_nowait(b"next")
        assert await _next_piece(diversion) == b"next"
        undivert_reader(response.content)
        queue.put_nowait(None)
        async with asyncio.timeout(5):
            assert await response.content.read() == b""


async def test_a_reader_at_its_end_is_not_diverted(
    releasing: tuple[str, asyncio.Queue[bytes | None]],
) -> None:
    url, queue = releasing
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        queue.put_nowait(b"last")
        queue.put_nowait(None)
        async with asyncio.timeout(5):
            await response.content.wait_eof()  # the body's end is parsed, "last" unread
        assert divert_reader(response.content, _Diversion()) is None
        assert type(response.content) is StreamReader
        assert await response.content.read() == b"last"


async def test_sync_writer_writes_a_chunk_or_says_it_cannot() -> None:
    results: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"head|")
        writer = sync_writer(response, 1 << 16)
        full = sync_writer(response, -1)  # as if the client's send buffer were full
        assert writer is not None and full is not None
        results.append(writer.ready())
        writer.write(b"sync|")
        results.append(full.ready())
        await response.write(b"end")
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{runner.addresses[0][1]}/") as response:
                assert await response.read() == b"head|sync|end"  # chunked framing intact
        assert results == [True, False]
    finally:
        await runner.cleanup()


def test_sync_writer_refuses_a_response_it_cannot_write_plainly() -> None:
    assert sync_writer(web.StreamResponse(), 1 << 16) is None  # not prepared


# --- the upstream client's body reader ------------------------------------------------------


class _FlowControl:
    """A protocol as `body_reader` documents it: what the reader calls, recorded."""

    def __init__(self) -> None:
        self._reading_paused = False
        self.calls: list[str] = []

    @property
    def connected(self) -> bool:
        return True

    def pause_reading(self) -> None:
        self._reading_paused = True
        self.calls.append("pause")

    def resume_reading(self, resume_parser: bool = True) -> None:
        self._reading_paused = False
        self.calls.append("resume")


async def test_a_body_reader_asks_its_protocol_only_what_is_documented() -> None:
    protocol = _FlowControl()
    reader = body_reader(protocol, 4, asyncio.get_running_loop())
    reader.feed_data(b"123456789")  # over twice the limit
    assert protocol.calls == ["pause"], _internal("StreamReader pausing its protocol")
    assert await reader.read(9) == b"123456789"
    assert protocol.calls == ["pause", "resume"], _internal("StreamReader resuming it")
    reader.feed_eof()
    assert await reader.read() == b""
    init = inspect.signature(StreamReader.__init__).parameters
    assert list(init)[:3] == ["self", "protocol", "limit"], _internal(
        "StreamReader(protocol, limit)"
    )


# --- a streamed answer's head written by ready_stream and start_stream ---------------------

_HEAD = {**SSE_HEADERS, "x-request-id": "req_1", "x-gateway-deployment": "dep-a"}


class _Held(web.StreamResponse):
    _send_headers_immediately = False  # as server/answering.SSEResponse


class _Opening:
    """A stream encoder's `ready`, counted."""

    def __init__(self) -> None:
        self.readied = 0

    def ready(self) -> None:
        self.readied += 1


async def _streamed(request: web.Request) -> web.StreamResponse:
    """The same answer, its head from aiohttp's `prepare`, from `ready_stream` and
    `start_stream` at once (`/ours`), or from server/answering's `FirstWrite` readied
    before its start (`/readied`) or not (`/late`, the first token before the upstream's
    silence ended)."""
    head = dict(_HEAD)
    if "inject" in request.query:
        head["x-a"] = "b\rc"  # a header injection: aiohttp refuses it
    if request.path.endswith(("/readied", "/late")):
        return await _first_write(request, "inject" in request.query)
    response = _Held()
    ours = False
    if request.path.endswith("/ours") and (readied := ready_stream(request, response, head)):
        ours = start_stream(request, response, readied, {})
    request.config_dict[_USED].append(ours)
    if not ours:
        response.headers.update(head)
        await response.prepare(request)
    return await _body(request, response)


async def _first_write(request: web.Request, inject: bool) -> web.StreamResponse:
    opening = _Opening()
    first = FirstWrite(request, "req_1", opening)  # type: ignore[arg-type]
    if request.path.endswith("/readied"):
        first.schedule()
        for _ in range(3):  # the upstream's silence: loop turns go by (two are enough)
            await asyncio.sleep(0)
        assert opening.readied == 1
    response, unprepared = first.start("dep\rc" if inject else "dep-a")
    if unprepared:
        await response.prepare(request)
    assert opening.readied == 1  # readied once, before or at the start
    request.config_dict[_USED].append(first._head is not None)  # readied by ready_stream
    return await _body(request, response)


async def _body(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    request.config_dict[_SEEN].append(sorted(response.headers.items()))
    await response.write(b"data: one\n\n")
    await response.write(b"data: two\n\n")
    await response.write_eof()
    return response


_USED = web.AppKey("used", list[bool])
_SEEN = web.AppKey("seen", list[list[tuple[str, str]]])


@pytest.fixture
async def streaming() -> AsyncIterator[tuple[web.Application, str]]:
    app = web.Application()
    app[_USED] = []
    app[_SEEN] = []
    for path in ("/ours", "/aiohttp", "/readied", "/late"):
        app.router.add_get(path, _streamed)
    hooked = web.Application()  # a sub-app with a hook (as CORS adds): it must run
    hooked.on_response_prepare.append(_no_hook)
    hooked.router.add_get("/ours", _streamed)
    hooked.router.add_get("/readied", _streamed)
    app.add_subapp("/hooked", hooked)
    async with serving(app) as (_, url):
        yield app, url


def _split(raw: bytes) -> tuple[list[bytes], set[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *fields = head.split(b"\r\n")
    dated = [f for f in fields if f.lower().startswith(b"date: ")]
    assert len(dated) == 1 and re.fullmatch(
        rb"Date: \w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT", dated[0]
    )
    return [status], {f for f in fields if f not in dated}, body


@pytest.mark.parametrize(
    "request_line,extra",
    [
        (b"GET {path} HTTP/1.1", b"Connection: close\r\n"),  # the head says so too
        (b"GET {path} HTTP/1.1", b""),  # keep-alive: read to the last chunk, then close
    ],
)
async def test_our_head_is_the_one_aiohttp_would_write(
    streaming: tuple[web.Application, str], request_line: bytes, extra: bytes
) -> None:
    app, url = streaming
    seen = {}
    paths = (b"/aiohttp", b"/ours", b"/readied", b"/late")
    for path in paths:
        message = request_line.replace(b"{path}", path) + b"\r\nHost: x\r\n" + extra + b"\r\n"
        seen[path] = _split(await _exchange_to_end(url, message))
    assert app[_USED] == [False, True, True, True]
    for path in paths[1:]:
        assert seen[path] == seen[b"/aiohttp"], path
    assert seen[b"/ours"][2] == b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\n0\r\n\r\n"
    theirs, *ours = app[_SEEN]
    for fields in ours:
        assert [f for f in fields if f[0] != "Date"] == [f for f in theirs if f[0] != "Date"]


async def test_aiohttp_writes_the_heads_ours_does_not(
    streaming: tuple[web.Application, str],
) -> None:
    app, url = streaming
    # HTTP/1.0 (no chunking), and a value aiohttp would refuse (a header injection)
    await _exchange_to_end(url, b"GET /ours HTTP/1.0\r\nHost: x\r\n\r\n")
    raw = await _exchange_to_end(url, b"GET /ours?inject=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500")  # aiohttp's own refusal
    await _exchange_to_end(url, b"GET /hooked/ours HTTP/1.1\r\nHost: x\r\n\r\n")
    assert app[_USED] == [False, False, False]
    # FirstWrite: readied by aiohttp's own prepare when the hook must run; a winner's name
    # aiohttp would refuse (readied, then started by aiohttp's prepare, which refuses it)
    raw = await _exchange_to_end(url, b"GET /hooked/readied HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b"x-gateway-deployment: dep-a" in raw
    raw = await _exchange_to_end(url, b"GET /readied?inject=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500")  # refused in prepare: nothing more is recorded
    assert app[_USED] == [False, False, False, False]


async def _no_hook(request: web.Request, response: web.StreamResponse) -> None:
    return None


async def _exchange_to_end(url: str, data: bytes) -> bytes:
    """Send `data`, read until the server closes or the last chunk of a chunked body."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    received = b""
    try:
        writer.write(data)
        async with asyncio.timeout(5):
            while piece := await reader.read(65536):
                received += piece
                if received.endswith(b"0\r\n\r\n"):
                    break
        return received
    finally:
        writer.close()


# --- an app served over another protocol (serve_foreign_request) ----------------------------


class _RecordingChannel:
    """A ResponseChannel that keeps what it is sent: ("head", status, fields, end) and
    ("body", data, end) in order; `gone` makes every later send fail as a reset stream."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []
        self.aborted = False
        self.gone = False

    def send_head(self, status: int, headers: list[tuple[str, str]], end: bool) -> None:
        if self.gone:
            raise ConnectionResetError("stream gone")
        self.sent.append(("head", status, dict(headers), end))

    async def send_body(self, data: bytes, end: bool) -> None:
        if self.gone:
            raise ConnectionResetError("stream gone")
        self.sent.append(("body", data, end))

    async def drain(self) -> None:
        return None

    def abort(self) -> None:
        self.aborted = True


_FOREIGN_SEEN = web.RequestKey("seen", list)


@web.middleware
async def _foreign_tagging(request: web.Request, handler: Any) -> web.StreamResponse:
    request[_FOREIGN_SEEN].append(("middleware", request.version, request.transport))
    response: web.StreamResponse = await handler(request)
    response.headers["x-tagged"] = "1"
    return response


async def _foreign_echo(request: web.Request) -> web.Response:
    body = await request.read()
    request[_FOREIGN_SEEN].append(("echo", request.host, request.query.get("q"), body))
    return web.Response(body=body.upper(), content_type="text/plain")


async def _foreign_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"one")
    await response.write(b"two")
    await response.write_eof()
    return response


async def _foreign_fails_late(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(b"part")
    raise RuntimeError("the handler breaks mid-answer")


async def _foreign_fails(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("the handler breaks")


@pytest.fixture
async def foreign() -> AsyncIterator[web.Server]:
    app = web.Application(middlewares=[_foreign_tagging])
    app.router.add_post("/echo", _foreign_echo)
    app.router.add_get("/stream", _foreign_stream)
    app.router.add_get("/late", _foreign_fails_late)
    app.router.add_get("/fail", _foreign_fails)
    runner = web.AppRunner(app)
    await runner.setup()
    assert runner.server is not None
    try:
        yield runner.server
    finally:
        await runner.cleanup()


async def _serve_foreign(
    server: web.Server, method: str, target: str, body: bytes = b""
) -> tuple[_RecordingChannel, list[Any], asyncio.Transport]:
    channel, seen = _RecordingChannel(), list[Any]()
    transport = asyncio.Transport(extra={"peername": ("127.0.0.1", 5), "sockname": None})
    await serve_foreign_request(
        server,
        method=method,
        target=target,
        headers=[("host", "example.test"), ("content-length", str(len(body)))],
        body=body,
        channel=channel,
        transport=transport,
        request_keys={_FOREIGN_SEEN: seen},
    )
    return channel, seen, transport


async def test_a_foreign_request_runs_the_whole_app(foreign: web.Server) -> None:
    channel, seen, transport = await _serve_foreign(foreign, "POST", "/echo?q=1", b"hello")
    assert seen == [
        ("middleware", HTTP2, transport),
        ("echo", "example.test", "1", b"hello"),
    ]
    (head, status, fields, end), body = channel.sent
    assert (head, status, end) == ("head", 200, False)
    assert fields["Content-Length"] == "5" and fields["x-tagged"] == "1"
    assert body == ("body", b"HELLO", True)


async def test_a_foreign_stream_goes_out_write_by_write(foreign: web.Server) -> None:
    channel, _, _ = await _serve_foreign(foreign, "GET", "/stream")
    (_, status, fields, end), *rest = channel.sent
    assert status == 200 and not end and fields["content-type"] == "text/event-stream"
    # aiohttp frames a length-less HTTP/1.1+ body in chunks: the channel drops that field
    assert fields.get("Transfer-Encoding") == "chunked"
    assert rest == [("body", b"one", False), ("body", b"two", False), ("body", b"", True)]


async def test_foreign_errors_are_answered_as_aiohttp_would(foreign: web.Server) -> None:
    channel, seen, _ = await _serve_foreign(foreign, "GET", "/nowhere")
    assert channel.sent[0][1] == 404 and seen == [("middleware", HTTP2, seen[0][2])]
    channel, _, _ = await _serve_foreign(foreign, "GET", "/fail")
    assert channel.sent[0][1] == 500 and channel.sent[-1][2] is True
    channel, _, _ = await _serve_foreign(foreign, "GET", "/late")
    assert channel.aborted and channel.sent[-1] == ("body", b"part", False)


async def test_a_gone_channel_ends_the_request_quietly(foreign: web.Server) -> None:
    channel = _RecordingChannel()
    channel.gone = True
    await serve_foreign_request(
        foreign,
        method="POST",
        target="/echo",
        headers=[],
        body=b"x",
        channel=channel,
        transport=asyncio.Transport(),
        request_keys={_FOREIGN_SEEN: []},
    )
    assert channel.sent == [] and not channel.aborted
