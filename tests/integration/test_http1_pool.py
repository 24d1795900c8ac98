"""The upstream client's pool against scripted servers on real sockets: keep-alive reuse
and its limits, the per-request cut, the limit on connections, TLS, and every way an
answer can end early or break framing. What the server saw is checked too."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.streaming.dial import ConnectFailed
from gateway.streaming.http1.connection import PayloadError, ServerDisconnected
from gateway.streaming.http1.handles import Response
from gateway.streaming.http1.head import ProtocolError
from gateway.streaming.http1.pool import Http1Pool
from gateway.streaming.upstream import PoolStats

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SSE = b'data: {"x":1}\n\ndata: [DONE]\n\n'
CHUNKED_SSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
CHUNKED_SSE += b"%x\r\n%s\r\n0\r\n\r\n" % (len(SSE), SSE)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request, head and body (by Content-Length); b"" when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


class Server:
    """A raw server: each connection is handed to `handler`; requests are recorded."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.connections = 0
        self.closed = asyncio.Event()  # a connection ended on the server's side
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.closed.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def url(self, path: str = "/v1/chat", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"


def answering(*answers: bytes, close_after: bool = False) -> Callable[[Server], Handler]:
    """Answer each request on a connection with the next of `answers` (the last repeats)."""

    def make(server: Server) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            index = 0
            while request := await read_request(reader):
                server.requests.append(request)
                writer.write(answers[min(index, len(answers) - 1)])
                await writer.drain()
                index += 1
                if close_after:
                    return

        return handle

    return make


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(make: Callable[[Server], Handler], tls: ssl.SSLContext | None = None) -> Server:
        server = Server(lambda r, w: asyncio.sleep(0))
        server.handler = make(server)
        await server.start(tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


async def body_of(response: Response) -> bytes:
    data = b""
    while piece := await response.content.readany():
        data += piece
    return data


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`: the client's loop sees a peer's close a few turns after the
    peer acts, and the pool offers nothing to await for it (bounded: 5 s)."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 (no event exists for a peer's close)
            await asyncio.sleep(0.001)


async def test_keep_alive_connections_carry_the_next_requests(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    stats = PoolStats()
    pool = Http1Pool(stats)
    try:
        for _ in range(3):
            response = await pool.request("POST", server.url(), {"X-Key": "k"}, b'{"a":1}')
            assert response.status == 200 and response.content_type == "text/event-stream"
            assert await body_of(response) == SSE
            response.release()
        assert (stats.opened, stats.reused, server.connections) == (1, 2, 1)
        assert pool.open_connections() == 1  # idle in the pool
    finally:
        await pool.close()
    assert pool.open_connections() == 0
    request = server.requests[0]
    assert request.startswith(b"POST /v1/chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % server.port)
    assert b"\r\nX-Key: k\r\n" in request and b"\r\nContent-Length: 7\r\n" in request
    assert request.endswith(b'\r\n\r\n{"a":1}')


async def test_the_request_line_and_own_headers_are_the_clients(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(b"HTTP/1.1 204 No Content\r\n\r\n"))
    pool = Http1Pool(PoolStats())
    try:
        url = server.url("/v1beta/models/gémini:stream?alt=sse&key=a%2Fb")
        headers = {"host": "evil", "Content-Length": "1", "Accept-Encoding": "identity"}
        response = await pool.request("GET", url, headers)
        assert response.status == 204 and await body_of(response) == b""
        response.release()
    finally:
        await pool.close()
    request = server.requests[0].decode()
    assert request.startswith("GET /v1beta/models/g%C3%A9mini:stream?alt=sse&key=a%2Fb HTTP/1.1")
    assert "evil" not in request and "Content-Length" not in request
    assert request.count("Accept-Encoding") == 1 and "identity" in request


@pytest.mark.parametrize(
    "headers", [{"X": "a\r\nInjected: 1"}, {"X": "a\nb"}, {"Bad Name": "x"}, {"X": "a\0"}]
)
async def test_a_header_that_would_break_the_message_is_refused(serve, headers) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    pool = Http1Pool(PoolStats())
    with pytest.raises(ValueError):
        await pool.request("POST", server.url(), headers, b"")
    assert server.connections == 0  # refused before any connection was made
    await pool.close()


async def test_a_closing_answer_is_not_pooled(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(
        answering(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    )
    stats = PoolStats()
    pool = Http1Pool(stats)
    try:
        for _ in range(2):
            response = await pool.request("POST", server.url(), {}, b"")
            assert await body_of(response) == b"ok"
            response.release()
            assert pool.open_connections() == 0
        assert (stats.opened, stats.reused) == (2, 0)
    finally:
        await pool.close()


async def test_a_connection_the_server_closes_leaves_the_pool(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE, close_after=True))
    stats = PoolStats()
    pool = Http1Pool(stats)
    try:
        response = await pool.request("POST", server.url(), {}, b"")
        assert await body_of(response) == SSE
        response.release()
        await server.closed.wait()
        await until(lambda: pool.open_connections() == 0)
        response = await pool.request("POST", server.url(), {}, b"")
        assert await body_of(response) == SSE
        response.release()
        assert (stats.opened, stats.reused) == (2, 0)
    finally:
        await pool.close()


async def test_idle_connections_past_the_keep_alive_time_are_not_used(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    stats = PoolStats()
    pool = Http1Pool(stats, keepalive_s=0.05)
    try:
        response = await pool.request("POST", server.url(), {}, b"")
        await body_of(response)
        response.release()
        await until(lambda: pool.open_connections() == 0)  # the sweep closed it
        response = await pool.request("POST", server.url(), {}, b"")
        await body_of(response)
        response.release()
        assert (stats.opened, stats.reused) == (2, 0)
    finally:
        await pool.close()


async def test_the_limit_makes_a_request_wait_for_a_connection(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    stats = PoolStats()
    pool = Http1Pool(stats, limit=1, connect_timeout_s=5)
    try:
        first = await pool.request("POST", server.url(), {}, b"")
        second = asyncio.ensure_future(pool.request("POST", server.url(), {}, b""))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not second.done() and server.connections == 1
        await body_of(first)
        first.release()
        response = await second
        assert await body_of(response) == SSE
        response.release()
        assert (stats.opened, stats.reused) == (1, 1)
    finally:
        await pool.close()


async def test_waiting_for_a_connection_ends_at_the_connect_timeout(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    pool = Http1Pool(PoolStats(), limit=1, connect_timeout_s=0.05)
    try:
        held = await pool.request("POST", server.url(), {}, b"")
        with pytest.raises(TimeoutError):
            await pool.request("POST", server.url(), {}, b"")
        held.close()
        response = await pool.request("POST", server.url(), {}, b"")  # the slot came back
        assert await body_of(response) == SSE
        response.release()
    finally:
        await pool.close()


async def test_at_the_limit_an_idle_connection_to_another_host_is_closed(serve) -> None:  # type: ignore[no-untyped-def]
    one = await serve(answering(CHUNKED_SSE))
    two = await serve(answering(CHUNKED_SSE))
    pool = Http1Pool(PoolStats(), limit=1, connect_timeout_s=0.5)
    try:
        for server in (one, two, one):
            response = await pool.request("POST", server.url(), {}, b"")
            assert await body_of(response) == SSE
            response.release()
            assert pool.open_connections() == 1
        assert (one.connections, two.connections) == (2, 1)
    finally:
        await pool.close()


async def test_a_cut_drops_its_own_request_connection_only(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    cuts: list[Callable[[], None]] = []
    pool = Http1Pool(PoolStats(), on_connection=cuts.append)
    try:
        response = await pool.request("POST", server.url(), {}, b"")
        await body_of(response)
        response.release()
        response.release()  # twice: nothing more
        again = await pool.request("POST", server.url(), {}, b"")  # the same connection
        assert len(cuts) == 2 and server.connections == 1
        cuts[0]()  # the first request's cut: that request is over
        assert pool.open_connections() == 1
        assert await body_of(again) == SSE
        cuts[1]()
        assert pool.open_connections() == 0  # dropped at once, never pooled
        again.release()  # after the cut: nothing
        assert pool.open_connections() == 0
    finally:
        await pool.close()


async def test_a_cut_before_the_answer_fails_the_request(serve) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()  # until the client goes

    server = await serve(lambda _: silent)
    cuts: list[Callable[[], None]] = []
    pool = Http1Pool(PoolStats(), on_connection=cuts.append)
    try:
        request = asyncio.ensure_future(pool.request("POST", server.url(), {}, b""))
        await until(lambda: bool(cuts))
        cuts[0]()
        assert pool.open_connections() == 0
        with pytest.raises(ServerDisconnected):
            await request
        await server.closed.wait()  # the server saw the connection go
    finally:
        await pool.close()


async def test_a_cancelled_request_drops_its_connection(serve) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await reader.read()

    server = await serve(lambda _: silent)
    pool = Http1Pool(PoolStats())
    try:
        request = asyncio.ensure_future(pool.request("POST", server.url(), {}, b""))
        await until(lambda: pool.open_connections() == 1)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        assert pool.open_connections() == 0
        await server.closed.wait()
    finally:
        await pool.close()


async def test_answers_that_end_early_or_break(serve) -> None:  # type: ignore[no-untyped-def]
    cut_short = await serve(
        answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close_after=True)
    )
    malformed = await serve(answering(b"HTTP/1.1 OK\r\n\r\n"))
    gone = await serve(lambda _: read_request)  # reads the request, closes without a word
    pool = Http1Pool(PoolStats())
    try:
        response = await pool.request("POST", cut_short.url(), {}, b"")
        with pytest.raises(ServerDisconnected):
            await body_of(response)
        response.close()
        with pytest.raises(ProtocolError):
            await pool.request("POST", malformed.url(), {}, b"")
        with pytest.raises(ServerDisconnected):
            await pool.request("POST", gone.url(), {}, b"")
        assert pool.open_connections() == 0
    finally:
        await pool.close()


async def test_a_redirect_is_an_answer_not_followed(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(
        answering(
            b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://x/\r\nContent-Length: 0\r\n\r\n"
        )
    )
    pool = Http1Pool(PoolStats())
    try:
        response = await pool.request("POST", server.url(), {"Authorization": "Bearer k"}, b"")
        assert response.status == 307 and response.headers["location"] == "http://x/"
        response.release()
        assert len(server.requests) == 1
    finally:
        await pool.close()


async def test_a_refused_connection_and_a_name_to_resolve(serve) -> None:  # type: ignore[no-untyped-def]
    server = await serve(answering(CHUNKED_SSE))
    pool = Http1Pool(PoolStats())
    try:
        # "localhost" resolves (maybe to ::1 first, which nothing serves here: next address)
        response = await pool.request("POST", server.url(host="localhost"), {}, b"")
        assert await body_of(response) == SSE
        response.release()
        await server.stop()
        await pool.close()
        pool = Http1Pool(PoolStats())
        with pytest.raises(ConnectFailed):
            await pool.request("POST", server.url(), {}, b"")
        with pytest.raises(ValueError):
            await pool.request("POST", "ftp://127.0.0.1/x", {}, b"")
    finally:
        await pool.close()


async def test_close_fails_the_requests_waiting_for_a_connection(serve) -> None:  # type: ignore[no-untyped-def]
    unfinished = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"
    server = await serve(answering(unfinished))
    pool = Http1Pool(PoolStats(), limit=1)
    held = await pool.request("POST", server.url(), {}, b"")
    waiting = asyncio.ensure_future(pool.request("POST", server.url(), {}, b""))
    await asyncio.sleep(0)
    await pool.close()
    with pytest.raises(ConnectionError):
        await waiting
    with pytest.raises(ConnectionError):
        await body_of(held)
    assert pool.open_connections() == 0


# --- TLS --------------------------------------------------------------------------------


async def test_tls_with_a_trusted_certificate(serve, certificate) -> None:  # type: ignore[no-untyped-def]
    key, cert = certificate
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    server = await serve(answering(CHUNKED_SSE), tls=served)
    trusting = ssl.create_default_context(cafile=str(cert))
    stats = PoolStats()
    pool = Http1Pool(stats, tls=trusting)
    try:
        for host in ("localhost", "localhost", "127.0.0.1"):
            response = await pool.request("POST", server.url(scheme="https", host=host), {}, b"")
            assert await body_of(response) == SSE
            response.release()
        assert (stats.opened, stats.reused) == (2, 1)  # one connection per host name
    finally:
        await pool.close()
    default = Http1Pool(PoolStats())  # the system's trust store does not know this one
    try:
        with pytest.raises(ConnectFailed):
            await default.request("POST", server.url(scheme="https", host="localhost"), {}, b"")
    finally:
        await default.close()


async def test_gzip_answers_are_decoded(serve) -> None:  # type: ignore[no-untyped-def]
    import gzip

    packed = gzip.compress(SSE)
    server = await serve(
        answering(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
            % (len(packed), packed)
        )
    )
    pool = Http1Pool(PoolStats())
    try:
        response = await pool.request("POST", server.url(), {}, b"")
        assert await body_of(response) == SSE
        response.release()
        assert pool.open_connections() == 1
    finally:
        await pool.close()


async def test_a_body_larger_than_the_reader_limit_arrives_whole(serve) -> None:  # type: ignore[no-untyped-def]
    big = bytes(range(256)) * 8192  # 2 MiB
    server = await serve(
        answering(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
    )
    pool = Http1Pool(PoolStats())
    try:
        response = await pool.request("POST", server.url(), {}, b"x" * 100_000)
        assert await body_of(response) == big
        response.release()
        assert pool.open_connections() == 1
        assert server.requests[0].endswith(b"x" * 100_000)
    finally:
        await pool.close()


def test_payload_errors_are_connection_errors() -> None:
    # the upstream layer maps every ConnectionError to a retryable connection failure
    assert issubclass(PayloadError, ConnectionError) and issubclass(ConnectFailed, ConnectionError)


async def test_a_connect_that_hangs_ends_at_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = Http1Pool(PoolStats(), connect_timeout_s=0.01)

    async def hang(target: object) -> None:
        await asyncio.get_running_loop().create_future()  # a peer that drops SYNs

    monkeypatch.setattr(pool, "_connect", hang)
    request = asyncio.ensure_future(pool.request("POST", "http://127.0.0.1:9/", {}, b""))
    done, _ = await asyncio.wait({request}, timeout=5)  # a bound for a broken pool only
    assert request in done, "the connect timeout did not end the request"
    with pytest.raises(TimeoutError):
        request.result()
    assert pool.open_connections() == 0
    await pool.close()


async def test_send_idle_writes_on_an_idle_connection_before_anything_awaits(serve) -> None:  # type: ignore[no-untyped-def]
    arrived = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await read_request(reader):
            server.requests.append(request)
            arrived.set()
            writer.write(CHUNKED_SSE)
            await writer.drain()

    server = await serve(lambda _: handle)
    stats = PoolStats()
    pool = Http1Pool(stats)
    try:
        assert pool.send_idle("POST", server.url(), {}, b"{}") is None  # nothing idle yet
        assert server.connections == 0
        response = await pool.request("POST", server.url(), {}, b"{}")
        await body_of(response)
        response.release()
        arrived.clear()
        # a request `request` would refuse is left to it
        assert pool.send_idle("POST", server.url(), {"X-Bad": "a\r\nb"}, b"{}") is None
        sent = pool.send_idle("POST", server.url(), {"X-Early": "1"}, b'{"n":2}')
        assert sent is not None
        async with asyncio.timeout(5):
            await arrived.wait()  # the bytes went out with no request() awaited
        assert server.requests[-1].endswith(b'{"n":2}') and b"X-Early: 1" in server.requests[-1]
        again = await pool.request("POST", server.url(), {}, None, sent)
        assert again.status == 200 and await body_of(again) == SSE
        again.release()
        assert (server.connections, stats.opened, stats.reused) == (1, 1, 1)
        assert pool.open_connections() == 1
    finally:
        await pool.close()


async def test_a_request_sent_ahead_and_never_awaited_is_dropped_by_its_cut(serve) -> None:  # type: ignore[no-untyped-def]
    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(CHUNKED_SSE)  # the first answer; the next one never comes
        await writer.drain()
        await read_request(reader)
        await reader.read()  # until the client goes

    server = await serve(lambda _: held)
    cuts: list[Callable[[], None]] = []
    pool = Http1Pool(PoolStats(), on_connection=cuts.append)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        response = await pool.request("POST", server.url(), {}, b"")
        await body_of(response)
        response.release()
        sent = pool.send_idle("POST", server.url(), {}, b"")
        assert sent is not None and len(cuts) == 2
        cuts[1]()  # the caller left before it awaited the answer
        assert pool.open_connections() == 0
        async with asyncio.timeout(5):
            await server.closed.wait()  # the server saw the connection go
        del sent
        gc.collect()
        assert reported == []  # no "Future exception was never retrieved"
    finally:
        loop.set_exception_handler(None)
        await pool.close()
