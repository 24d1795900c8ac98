"""The HTTP/2 upstream client against servers built on the `h2` library (another
implementation's frames and state machine), on real sockets: streams sharing one
connection, a dropped answer reset without losing its connection, flow control both
ways, header blocks over CONTINUATION frames, padding, trailers, interim heads, content
coding, RST_STREAM and GOAWAY from the server, a server that is not HTTP/2, TLS with
ALPN (h2 chosen, or HTTP/1.1 chosen and served by HTTP/1.1), and no task or connection
left behind."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest

from gateway.streaming.http1.pool import CLIENT_ERRORS
from gateway.streaming.http2 import connection as connection_module
from gateway.streaming.http2.frames import PING, frame, goaway
from gateway.streaming.http2.pool import Http2Pool
from gateway.streaming.http2.stream import StreamReset
from gateway.streaming.upstream import PoolStats

Request = tuple[int, dict[bytes, bytes], bytes]  # stream id, fields, body
Handler = Callable[["H2Side", Request], Awaitable[None]]
SSE = [b'data: {"n":%d}\n\n' % i for i in range(5)]


class H2Side(asyncio.Protocol):
    """One server connection: requests are handed to the server's handler, one task each."""

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.transport: asyncio.Transport | None = None
        self.bodies: dict[int, bytearray] = {}
        self.fields: dict[int, dict[bytes, bytes]] = {}
        self.window = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.append(self)
        self.conn.initiate_connection()
        if self.server.settings:
            self.conn.update_settings(self.server.settings)
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.server.errors.append(exc)
            self.flush()
            return
        for event in events:
            self.server.events.append(event)
            if isinstance(event, h2.events.RequestReceived):
                self.fields[event.stream_id] = dict(event.headers)
                self.bodies[event.stream_id] = bytearray()
            elif isinstance(event, h2.events.DataReceived):
                self.bodies[event.stream_id] += event.data
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                request = (
                    event.stream_id,
                    self.fields[event.stream_id],
                    bytes(self.bodies[event.stream_id]),
                )
                self.server.requests.append(request)
                task = asyncio.get_running_loop().create_task(self.server.handler(self, request))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
                self.window.set()
            elif isinstance(event, h2.events.StreamReset):
                self.server.resets.append((event.stream_id, event.error_code))
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for task in self.tasks:
            task.cancel()

    # what a handler does

    def head(self, stream_id: int, status: int = 200, end: bool = False, **extra: str) -> None:
        fields = [(":status", str(status)), ("content-type", "text/event-stream")]
        fields += [(name.replace("_", "-"), value) for name, value in extra.items()]
        self.conn.send_headers(stream_id, fields, end_stream=end)
        self.flush()

    async def data(
        self, stream_id: int, data: bytes, end: bool = False, pad: int | None = None
    ) -> None:
        while data:
            room = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if room <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            piece, data = data[:room], data[room:]
            self.conn.send_data(stream_id, piece, end_stream=end and not data, pad_length=pad)
            self.flush()
        if end and not data and self.conn.streams.get(stream_id) is not None:
            if self.conn.streams[stream_id].open:
                self.conn.end_stream(stream_id)
                self.flush()

    async def sse(self, stream_id: int, events: list[bytes] = SSE) -> None:
        self.head(stream_id)
        for event in events:
            await self.data(stream_id, event)
            await asyncio.sleep(0)
        self.conn.end_stream(stream_id)
        self.flush()


class H2Server:
    def __init__(self, handler: Handler, settings: dict[int, int] | None = None) -> None:
        self.handler = handler
        self.settings = settings or {}
        self.connections: list[H2Side] = []
        self.requests: list[Request] = []
        self.resets: list[tuple[int, int]] = []
        self.events: list[Any] = []
        self.errors: list[Exception] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: H2Side(self), "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for side in self.connections:
            if side.transport is not None:
                side.transport.abort()

    def url(self, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}/v1/chat"


@pytest.fixture
async def h2serve() -> AsyncIterator[Callable[..., Awaitable[H2Server]]]:
    servers: list[H2Server] = []

    async def start(
        handler: Handler, tls: ssl.SSLContext | None = None, **settings: int
    ) -> H2Server:
        codes = {
            getattr(h2.settings.SettingCodes, name.upper()): value
            for name, value in settings.items()
        }
        server = H2Server(handler, codes)
        await server.start(tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def sse_handler(side: H2Side, request: Request) -> None:
    await side.sse(request[0])


async def never(side: H2Side, request: Request) -> None:
    await asyncio.Event().wait()  # no answer at all


async def read_all(
    pool: Http2Pool, url: str, body: bytes = b"{}", **headers: str
) -> tuple[int, bytes]:
    response = await pool.request("POST", url, headers, body)
    data = await response.content.read()
    response.release()
    return response.status, data


def own_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_streams_share_one_connection_and_the_request_is_well_formed(h2serve) -> None:  # type: ignore[no-untyped-def]
    server = await h2serve(sse_handler)
    stats = PoolStats()
    pool = Http2Pool(stats)
    headers = {
        "Authorization": "Bearer sk-1",
        "Content-Type": "application/json",
        "Connection": "keep-alive",
    }
    answers = await asyncio.gather(
        *(read_all(pool, server.url(), b'{"i":%d}' % i, **headers) for i in range(10))
    )
    assert answers == [(200, b"".join(SSE))] * 10
    assert len(server.connections) == 1 and stats.opened == 1 and stats.reused == 9
    _, fields, body = server.requests[0]
    assert fields[b":method"] == b"POST" and fields[b":path"] == b"/v1/chat"
    assert (
        fields[b":scheme"] == b"http"
        and fields[b":authority"] == f"127.0.0.1:{server.port}".encode()
    )
    assert fields[b"authorization"] == b"Bearer sk-1" and b"connection" not in fields
    assert fields[b"content-length"] == str(len(body)).encode()
    assert sorted(body for _, _, body in server.requests) == sorted(
        b'{"i":%d}' % i for i in range(10)
    )
    await pool.close()
    assert pool.open_connections() == 0


async def test_a_dropped_answer_resets_its_stream_and_keeps_the_connection(h2serve) -> None:  # type: ignore[no-untyped-def]
    started = asyncio.Event()

    async def slow(side: H2Side, request: Request) -> None:
        if request[0] != 1:
            await asyncio.Event().wait()  # no head at all
        side.head(request[0])
        await side.data(request[0], SSE[0])
        started.set()
        await asyncio.Event().wait()  # never ends on its own

    server = await h2serve(slow)
    stats = PoolStats()
    cuts: list[Callable[[], None]] = []
    pool = Http2Pool(stats, on_connection=cuts.append)
    response = await pool.request("POST", server.url(), {}, b"{}")
    assert await response.content.readany() == SSE[0]
    response.close()
    reset = await wait_for(lambda: server.resets)
    assert reset == [(1, h2.errors.ErrorCodes.CANCEL)]
    # the race's cut, while the head is still due: the request fails, the stream is reset
    waiting = asyncio.ensure_future(pool.request("POST", server.url(), {}, b"{}"))
    await wait_for(lambda: len(server.requests) == 2)
    cuts[-1]()
    with pytest.raises(StreamReset):
        await waiting
    await wait_for(lambda: len(server.resets) == 2)
    assert len(server.connections) == 1 and stats.opened == 1
    await pool.close()


async def wait_for(check: Callable[[], Any], tries: int = 2000) -> Any:
    for _ in range(tries):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.001)
    raise AssertionError("condition not met")


async def test_a_cancelled_request_resets_its_stream(h2serve) -> None:  # type: ignore[no-untyped-def]
    server = await h2serve(never)
    pool = Http2Pool(PoolStats())
    task = asyncio.ensure_future(pool.request("POST", server.url(), {}, b"{}"))
    await wait_for(lambda: server.requests)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_for(lambda: server.resets) == [(1, h2.errors.ErrorCodes.CANCEL)]
    await pool.close()


async def test_flow_control_both_ways(h2serve) -> None:  # type: ignore[no-untyped-def]
    big = bytes(range(256)) * 4096  # 1 MiB: past every default window

    async def echo(side: H2Side, request: Request) -> None:
        side.head(request[0])
        await side.data(request[0], request[2] * 3, end=True)

    server = await h2serve(echo)
    pool = Http2Pool(PoolStats())
    response = await pool.request("POST", server.url(), {}, big)
    # read slowly: the reader pauses, and the server is held back by the stream's window
    received = bytearray()
    while chunk := await response.content.readany():
        received += chunk
        await asyncio.sleep(0)
    response.release()
    assert bytes(received) == big * 3
    assert server.requests[0][2] == big
    assert not server.errors
    await pool.close()


async def test_continuation_padding_trailers_and_interim_heads(h2serve) -> None:  # type: ignore[no-untyped-def]
    async def awkward(side: H2Side, request: Request) -> None:
        stream_id = request[0]
        side.conn.send_headers(stream_id, [(":status", "103"), ("link", "</a>; rel=preload")])
        side.head(stream_id, x_long="v" * 40_000)  # over one frame: CONTINUATION follows
        await side.data(stream_id, SSE[0], pad=7)
        await side.data(stream_id, SSE[1], pad=0)
        side.conn.send_headers(stream_id, [("x-trailer", "1")], end_stream=True)
        side.flush()

    server = await h2serve(awkward)
    pool = Http2Pool(PoolStats())
    response = await pool.request("POST", server.url(), {}, b"{}")
    assert response.status == 200 and response.headers["x-long"] == "v" * 40_000
    assert await response.content.read() == SSE[0] + SSE[1]
    response.release()
    assert await read_all(pool, server.url()) == (200, SSE[0] + SSE[1])
    await pool.close()


async def test_gzip_answers_are_decoded(h2serve) -> None:  # type: ignore[no-untyped-def]
    async def zipped(side: H2Side, request: Request) -> None:
        side.head(request[0], content_encoding="gzip")
        await side.data(request[0], gzip.compress(b"".join(SSE)), end=True)

    server = await h2serve(zipped)
    pool = Http2Pool(PoolStats())
    assert await read_all(pool, server.url()) == (200, b"".join(SSE))
    await pool.close()


async def test_server_resets_and_goaway(h2serve) -> None:  # type: ignore[no-untyped-def]
    async def refuse_then_leave(side: H2Side, request: Request) -> None:
        stream_id = request[0]
        if stream_id == 1:
            side.conn.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            side.flush()
        elif stream_id == 3:
            await asyncio.Event().wait()  # stream 5 arrives meanwhile
        else:
            # going away: stream 3 was processed, 5 was not (written raw: the h2 library
            # would refuse to answer stream 3 after its own GOAWAY)
            assert side.transport is not None
            side.transport.write(goaway(3, 0))
            side.head(3)
            await side.data(3, SSE[0], end=True)

    server = await h2serve(refuse_then_leave)
    stats = PoolStats()
    pool = Http2Pool(stats)
    with pytest.raises(StreamReset) as refused:
        await pool.request("POST", server.url(), {}, b"{}")
    assert refused.value.refused and isinstance(refused.value, CLIENT_ERRORS)
    kept = asyncio.ensure_future(read_all(pool, server.url()))
    await wait_for(lambda: len(server.requests) == 2)
    with pytest.raises(StreamReset) as gone:
        await pool.request("POST", server.url(), {}, b"{}")
    assert gone.value.refused
    assert await kept == (200, SSE[0])  # a stream the GOAWAY kept completes
    # the next request opens a new connection
    server.handler = sse_handler
    assert await read_all(pool, server.url()) == (200, b"".join(SSE))
    assert stats.opened == 2
    await pool.close()


async def test_the_server_closing_mid_body_fails_the_body(h2serve) -> None:  # type: ignore[no-untyped-def]
    async def vanish(side: H2Side, request: Request) -> None:
        side.head(request[0])
        await side.data(request[0], SSE[0])
        assert side.transport is not None
        side.transport.close()

    server = await h2serve(vanish)
    pool = Http2Pool(PoolStats())
    response = await pool.request("POST", server.url(), {}, b"{}")
    with pytest.raises(CLIENT_ERRORS):
        while await response.content.readany():
            pass
    response.close()
    await pool.close()


async def test_a_stream_limit_of_one_opens_a_second_connection(h2serve) -> None:  # type: ignore[no-untyped-def]
    gate = asyncio.Event()

    async def held(side: H2Side, request: Request) -> None:
        await gate.wait()
        await side.sse(request[0])

    server = await h2serve(held, max_concurrent_streams=1)
    stats = PoolStats()
    pool = Http2Pool(stats, limit=2)
    first = asyncio.ensure_future(read_all(pool, server.url()))
    await wait_for(lambda: server.requests)
    second = asyncio.ensure_future(read_all(pool, server.url()))
    await wait_for(lambda: len(server.requests) == 2)
    third = asyncio.ensure_future(read_all(pool, server.url()))  # at the limit: waits
    await asyncio.sleep(0.01)
    assert len(server.requests) == 2 and stats.opened == 2
    gate.set()
    assert [await first, await second, await third] == [(200, b"".join(SSE))] * 3
    await pool.close()


async def test_a_server_that_does_not_speak_http2(h2serve) -> None:  # type: ignore[no-untyped-def]
    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    plain = await asyncio.start_server(http1, "127.0.0.1", 0)
    port = plain.sockets[0].getsockname()[1]
    pool = Http2Pool(PoolStats())
    with pytest.raises(CLIENT_ERRORS):
        await pool.request("POST", f"http://127.0.0.1:{port}/v1/chat", {}, b"{}")
    await pool.close()
    plain.close()
    assert not own_tasks() - {t for t in own_tasks() if "serve" in repr(t)}


def server_tls(certificate: tuple[Path, Path], alpn: list[str]) -> ssl.SSLContext:
    key, cert = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    served.set_alpn_protocols(alpn)
    return served


async def test_tls_with_alpn_h2(h2serve, certificate) -> None:  # type: ignore[no-untyped-def]
    server = await h2serve(sse_handler, tls=server_tls(certificate, ["h2"]))
    trusted = ssl.create_default_context(cafile=str(certificate[1]))
    pool = Http2Pool(PoolStats(), tls=trusted)
    answers = await asyncio.gather(
        *(read_all(pool, server.url("https", "localhost")) for _ in range(3))
    )
    assert answers == [(200, b"".join(SSE))] * 3
    assert len(server.connections) == 1
    assert server.requests[0][1][b":scheme"] == b"https"
    await pool.close()


async def test_tls_server_choosing_http1_is_served_over_http1(certificate) -> None:  # type: ignore[no-untyped-def]
    seen: list[bytes] = []

    async def http1(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            seen.append(head + await reader.readexactly(length))
            body = b"".join(SSE)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    plain = await asyncio.start_server(
        http1, "127.0.0.1", 0, ssl=server_tls(certificate, ["http/1.1"])
    )
    port = plain.sockets[0].getsockname()[1]
    stats = PoolStats()
    pool = Http2Pool(stats, tls=ssl.create_default_context(cafile=str(certificate[1])))
    url = f"https://localhost:{port}/v1/chat"
    assert await read_all(pool, url) == (200, b"".join(SSE))
    assert await read_all(pool, url) == (200, b"".join(SSE))
    assert len(seen) == 2 and seen[0].startswith(b"POST /v1/chat HTTP/1.1\r\n")
    assert stats.opened == 1 and stats.reused == 1  # the ALPN probe is not counted
    await pool.close()
    plain.close()


async def test_a_connection_that_stops_answering_is_dropped_after_a_ping(
    h2serve, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(connection_module, "PING_WHEN_SILENT_S", 0.0)
    monkeypatch.setattr(connection_module, "PING_TIMEOUT_S", 0.05)

    server = await h2serve(never)
    pool = Http2Pool(PoolStats())
    # a live server answers the PING that dropping a stream sends: the connection stays
    task = asyncio.ensure_future(pool.request("POST", server.url(), {}, b"{}"))
    await wait_for(lambda: server.requests)
    task.cancel()
    await wait_for(lambda: any(isinstance(e, h2.events.PingReceived) for e in server.events))
    (connection,) = pool._connections[("http", "127.0.0.1", server.port)]
    await wait_for(lambda: connection._ping is None)
    assert pool.open_connections() == 1
    # a dead one (it reads nothing more, sends nothing) does not answer: it is dropped
    task = asyncio.ensure_future(pool.request("POST", server.url(), {}, b"{}"))
    await wait_for(lambda: len(server.requests) == 2)
    server.connections[0].data_received = lambda data: None  # type: ignore[method-assign]
    task.cancel()
    await wait_for(lambda: pool.open_connections() == 0)
    await pool.close()


async def test_a_server_that_never_sends_its_settings_times_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, says nothing

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Http2Pool(PoolStats(), connect_timeout_s=0.05)
    for _ in range(2):  # the connect in flight ends with its deadline: the next one is new
        with pytest.raises(TimeoutError):
            await pool.request("POST", f"http://127.0.0.1:{port}/v1/chat", {}, b"{}")
        await wait_for(lambda: not pool._opening)  # its own deadline ended the connect
        assert pool.open_connections() == 0
    assert len(accepted) == 2
    await pool.close()
    server.close()


async def test_a_broken_frame_ends_the_connection_with_goaway(h2serve) -> None:  # type: ignore[no-untyped-def]
    async def broken(side: H2Side, request: Request) -> None:
        if len(side.server.requests) > 1:
            await side.sse(request[0])
            return
        side.head(request[0])
        await side.data(request[0], SSE[0])
        assert side.transport is not None
        side.transport.write(frame(PING, 0, 0, b"1234567"))  # a PING is 8 bytes

    server = await h2serve(broken)
    stats = PoolStats()
    pool = Http2Pool(stats)
    response = await pool.request("POST", server.url(), {}, b"{}")
    with pytest.raises(CLIENT_ERRORS):
        while await response.content.readany():
            pass
    response.close()
    closed = await wait_for(
        lambda: [e for e in server.events if isinstance(e, h2.events.ConnectionTerminated)]
    )
    assert closed[0].error_code == h2.errors.ErrorCodes.FRAME_SIZE_ERROR
    assert await read_all(pool, server.url()) == (200, b"".join(SSE))  # on a new connection
    assert stats.opened == 2
    await pool.close()


async def test_closing_the_pool_says_goaway_on_an_idle_connection(h2serve) -> None:  # type: ignore[no-untyped-def]
    server = await h2serve(sse_handler)
    pool = Http2Pool(PoolStats())
    assert await read_all(pool, server.url()) == (200, b"".join(SSE))
    await pool.close()
    assert pool.open_connections() == 0
    closed = await wait_for(
        lambda: [e for e in server.events if isinstance(e, h2.events.ConnectionTerminated)]
    )
    assert closed[0].error_code == h2.errors.ErrorCodes.NO_ERROR
