"""The one place that touches aiohttp's internals (private attributes, undocumented hooks).

aiohttp offers no public way to do these few things; each function says which internal
it relies on and why. `tests/unit/test_aiohttp_compat.py` asserts that every one of them
still exists with the shape used here, so an aiohttp upgrade fails that test first, with
a message naming the internal, instead of a subtle failure elsewhere; pyproject.toml
bounds aiohttp to the minor versions that test has covered.

Server side (server/), client side (streaming/upstream.py) and the simulated providers'
HTTP/2 server (sim/h2serve.py) use it, so it sits outside those packages and imports
nothing from the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from aiohttp import HttpVersion, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import _EXC_SENTINEL, rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

ErrorRenderer = Callable[[int], web.StreamResponse]  # HTTP status -> the response to send


def render_protocol_errors(runner: web.AppRunner, render: ErrorRenderer) -> bool:
    """Have `render(status)` answer the errors aiohttp raises itself, before any middleware
    runs (a malformed request line, a header over the limits, a broken body framing).
    Call after `runner.setup()`; returns False when the runner's server is not aiohttp's
    plain `web.Server` (nothing is changed then).

    Relies on: `web.Server` being the connection protocol factory: `Server.__call__()`
    builds `web_protocol.RequestHandler(self, loop=self._loop, **self._kwargs)` for each
    connection (private `_loop`, `_kwargs`), and `RequestHandler.handle_error(request,
    status, exc, message)` renders those errors as plain text. There is no public hook
    (middlewares never see these requests), so the runner's server gets its class swapped
    for a subclass that builds a handler subclass overriding `handle_error`. aiohttp's own
    `handle_error` still runs first (it logs, and raises when a response is already under
    way); its answer is kept when it is not the error status asked for.
    """
    server = runner.server
    if server is None or type(server) is not web.Server:
        return False

    class RenderingRequestHandler(RequestHandler):
        def handle_error(
            self,
            request: BaseRequest,
            status: int = 500,
            exc: BaseException | None = None,
            message: str | None = None,
        ) -> web.StreamResponse:
            response = super().handle_error(request, status, exc, message)
            if response.status != status:
                return response
            rendered = render(status)
            rendered.force_close()  # as aiohttp's own error response: the connection is done
            return rendered

    class RenderingServer(web.Server):
        def __call__(self) -> RequestHandler:
            return RenderingRequestHandler(self, loop=self._loop, **self._kwargs)

    server.__class__ = RenderingServer
    return True


def open_connection_count(server: web.Server) -> int:
    """Connections the server holds open (idle keep-alive ones included).

    Relies on: `web.Server.connections` (undocumented; one `RequestHandler` per open
    connection). Used to log how many connections a shutdown starts with.
    """
    return len(server.connections)


def abort_connections(server: web.Server) -> int:
    """Abort every connection the server still holds open; returns how many were cut.

    Relies on: `web.Server.connections` (undocumented) and `RequestHandler.transport`
    (the asyncio transport, None once the connection is lost). `transport.abort()` makes
    aiohttp call `connection_lost`, which cancels the connection's handler (with
    `handler_cancellation=True`) as a client disconnect would. aiohttp's own shutdown
    timeout cancels handlers without waiting for them; this lets a graceful drain end
    in-flight streams first and then wait for their cleanup.
    """
    cut = 0
    for connection in list(server.connections):
        transport = connection.transport
        if transport is not None:
            transport.abort()
            cut += 1
    return cut


# -- the fast relay's two seams (streaming/relay.py) ---------------------------------


class ReaderDiversion(Protocol):
    """Where a diverted client body goes: each piece as it is parsed, then its end."""

    def on_data(self, data: bytes) -> None: ...

    def on_end(self) -> bytes:
        """The body ended (or failed): what the diversion holds back goes to the reader."""
        ...


_DIVERTED: dict[int, ReaderDiversion] = {}  # id(reader) -> its diversion, while diverted


class _HookedReader(StreamReader):
    """A StreamReader with a diversion attached; its end (EOF, a lost connection) restores
    the reader first, with what the diversion held back ahead of it, so nothing is lost."""

    __slots__ = ()

    def feed_eof(self) -> None:
        _end_diversion(self)
        StreamReader.feed_eof(self)

    def set_exception(self, exc: BaseException, exc_cause: BaseException = _EXC_SENTINEL) -> None:
        _end_diversion(self)
        StreamReader.set_exception(self, exc, exc_cause)


class _DivertedReader(_HookedReader):
    """Body pieces go to the diversion instead of the buffer."""

    __slots__ = ()

    def feed_data(self, data: bytes, size: int = 0) -> bool:
        if data:  # bytes from aiohttp's parsers; a copy only of anything else
            _DIVERTED[id(self)].on_data(data if type(data) is bytes else bytes(data))
        return False


class _WatchedReader(_HookedReader):
    """Body pieces are buffered as usual, then shown to the diversion (a watcher)."""

    __slots__ = ()

    def feed_data(self, data: bytes, size: int = 0) -> bool:
        StreamReader.feed_data(self, data, size)
        if data and type(self) is _WatchedReader:  # the watcher may have let go already
            _DIVERTED[id(self)].on_data(data if type(data) is bytes else bytes(data))
        return False


def _end_diversion(reader: StreamReader) -> None:
    leftover = _restore(reader).on_end()
    if leftover:
        StreamReader.feed_data(reader, leftover)


def _restore(reader: StreamReader) -> ReaderDiversion:
    reader.__class__ = StreamReader
    return _DIVERTED.pop(id(reader))


def _hookable(reader: StreamReader) -> bool:
    """Not hooked already, not at its end, no error (buffered bytes aside)."""
    return type(reader) is StreamReader and not reader._eof and reader._exception is None


def _hook(reader: StreamReader, kind: type[_HookedReader], diversion: ReaderDiversion) -> None:
    _DIVERTED[id(reader)] = diversion
    reader.__class__ = kind


def _unhook(reader: StreamReader, kind: type[_HookedReader], leftover: bytes) -> None:
    if type(reader) is kind:  # not if its body ended meanwhile (already restored)
        _restore(reader)
        if leftover:
            StreamReader.feed_data(reader, leftover)


def divert_reader(reader: StreamReader, diversion: ReaderDiversion) -> bytes | None:
    """Send `reader`'s next body pieces to `diversion.on_data`, synchronously, in the loop
    iteration that parses them (no task wakes up). Returns what the reader held unread,
    taken out of it (`read_nowait`): the diversion's first bytes, ahead of every piece
    fed from now on (b"" when it held nothing); None when the reader cannot be diverted
    (at its end, failed, or hooked already), nothing changed.

    Relies on: aiohttp's response parsers (the C one and the pure-Python one) calling
    `payload.feed_data(data, size)`, `feed_eof()` and `set_exception(exc, cause)` on the
    response's `StreamReader` by attribute lookup for every piece, and `StreamReader`'s
    private `_buffer`/`_eof`/`_exception`. The reader's class is swapped for a subclass
    with no slots of its own (same layout), and swapped back by `undivert_reader` or at
    the body's end.
    """
    if not _hookable(reader):
        return None
    held = reader.read_nowait() if reader._buffer else b""
    _hook(reader, _DivertedReader, diversion)
    return held


def undivert_reader(reader: StreamReader, leftover: bytes = b"") -> None:
    """Give `reader` back its body, `leftover` (bytes the diversion took but did not use)
    first. Does nothing if the reader is no longer diverted (its body ended)."""
    _unhook(reader, _DivertedReader, leftover)


def watch_reader(reader: StreamReader, watcher: ReaderDiversion) -> bool:
    """Show `reader`'s next body pieces to `watcher.on_data` as the parser feeds them, in
    that loop iteration, after they are buffered as usual (the reader's own consumer sees
    no difference); False, nothing changed, unless the reader is idle (nothing buffered:
    a watcher sees every byte its consumer has not, not at its end, no error, no other
    hook). Relies on what `divert_reader` relies on."""
    if reader._buffer or not _hookable(reader):
        return False
    _hook(reader, _WatchedReader, watcher)
    return True


def unwatch_reader(reader: StreamReader) -> None:
    """Stop watching `reader` (nothing happens if it is not watched any more)."""
    _unhook(reader, _WatchedReader, b"")


class SyncWriter:
    """Writes body bytes to a prepared response without awaiting: `ready()` first (the
    client's connection is open and its send buffer below the limit), then `write()`."""

    __slots__ = ("_chunked", "_max_buffer", "_protocol", "_writer")

    def __init__(self, writer: StreamWriter, max_buffer: int) -> None:
        self._writer = writer
        self._protocol = writer._protocol
        self._chunked = writer.chunked
        self._max_buffer = max_buffer

    def ready(self) -> bool:
        transport = self._protocol.transport
        return (
            transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() <= self._max_buffer
        )

    def write(self, data: bytes) -> None:
        """Write now; dropped if the client's connection closed since `ready()` (the
        caller's next await on the response then fails as any write to it would)."""
        transport = self._protocol.transport
        if transport is None or transport.is_closing():
            return
        if self._chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        self._writer.output_size += len(data)
        transport.write(data)


def sync_writer(response: web.StreamResponse, max_buffer: int) -> SyncWriter | None:
    """A writer for a prepared response's body that needs no await (`SyncWriter`); None
    when the response is not a plain one whose headers have gone out (compressed, fixed
    length, at its end, body-write hooks). The caller awaits a normal write when
    `ready()` says no (that one drains).

    Relies on: `StreamResponse._payload_writer` (aiohttp's `StreamWriter`) and its
    `chunked`, `_compress`, `length`, `_headers_buf`, `_on_chunk_sent`, `on_body_write`,
    `output_size` and `_protocol.transport`; it frames a chunk as `StreamWriter.write`
    does (`hex length CRLF data CRLF` when chunked).
    """
    writer = response._payload_writer
    if (
        not isinstance(writer, StreamWriter)
        or response._eof_sent
        or writer._compress is not None
        or writer.length is not None
        or writer._headers_buf is not None
        or writer._on_chunk_sent is not None
        or writer.on_body_write is not None
    ):
        return None
    return SyncWriter(writer, max_buffer)


# -- the upstream client's body reader (streaming/http1/connection.py) ----------------


class ReaderFlowControl(Protocol):
    """What a `StreamReader` calls on the protocol that feeds it."""

    _reading_paused: bool

    @property
    def connected(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self, resume_parser: bool = True) -> None: ...


def body_reader(
    protocol: ReaderFlowControl, limit: int, loop: asyncio.AbstractEventLoop
) -> StreamReader:
    """An aiohttp `StreamReader` fed by a protocol of the gateway's own (the upstream
    client's connection), so the body hooks above (`watch_reader`, `divert_reader`) and
    every reader of `StreamReader` work on it unchanged.

    Relies on: `StreamReader(protocol, limit, loop=loop)` asking only this of its
    protocol: `pause_reading()` above twice `limit` buffered, `resume_reading()` (with
    `resume_parser=False` at EOF) below it, `_reading_paused` read to decide, and
    `connected` checked before a read waits. The signature wants aiohttp's
    `BaseProtocol`, which would bring a parser this client does not have.
    """
    return StreamReader(protocol, limit, loop=loop)  # type: ignore[arg-type]


# -- a streamed answer's head, cheaply (server/answering.py) --------------------------

_STATUS_200 = b"HTTP/1.1 200 OK\r\n"
_CHUNKED_TAIL = b"Transfer-Encoding: chunked\r\n"
_SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()


def _head_is_ours(request: web.Request, response: web.StreamResponse) -> bool:
    """May `ready_stream` ready this response's head itself? Only a fresh 200 (no
    cookies, compression or chunking asked for, headers held for the first write) on an
    HTTP/1.1 request whose app has no `on_response_prepare` hook (CORS, the workers'
    tag) and whose writer has no headers yet and no `on_headers_sent` hook."""
    writer = request._payload_writer
    if (
        response._payload_writer is not None
        or response.status != 200
        or response._cookies
        or response._compression
        or response._chunked
        or response._send_headers_immediately
        or response._headers
        or request.version != HttpVersion11
        or not isinstance(writer, StreamWriter)
        or writer._headers_buf is not None
        or writer._on_headers_sent is not None
    ):
        return False
    match_info = request._match_info
    return match_info is not None and not any(app.on_response_prepare for app in match_info._apps)


class ReadyHead(NamedTuple):
    """A streamed answer's head readied by `ready_stream`, but for what `start_stream` adds."""

    start: bytes  # the status line and the readied fields
    end: bytes  # Server, Connection (when not kept alive), Transfer-Encoding, the empty line
    keep_alive: bool


def ready_stream(
    request: web.Request, response: web.StreamResponse, head: dict[str, str]
) -> ReadyHead | None:
    """Ready the head of `response` (a fresh 200 without headers, whose headers leave with
    its first body write) from `head` ahead of `start_stream`: `response.headers` gets
    `head`, aiohttp's Server, chunked and, on a connection not kept alive, Connection:
    close, as `prepare` would set them. Nothing is written, and neither the request nor
    its writer is touched, so the response may still be dropped (or, should the start
    fall back, prepared by aiohttp, which sets the same). None, having changed nothing,
    where aiohttp's own `prepare` must run (`_head_is_ours`, or a CR or LF in `head`,
    which aiohttp refuses).

    Relies on: `StreamResponse._headers`, `_keep_alive`; `SERVER_SOFTWARE`.
    """
    if not _head_is_ours(request, response) or _breaks_a_line(head):
        return None
    keep_alive = response._keep_alive
    if keep_alive is None:
        keep_alive = request.keep_alive
    headers = response._headers
    headers.extend(head)
    headers["Transfer-Encoding"] = "chunked"
    headers["Server"] = SERVER_SOFTWARE
    end = _SERVER
    if not keep_alive:
        headers["Connection"] = "close"
        end += b"Connection: close\r\n"
    text = "".join([f"{name}: {value}\r\n" for name, value in head.items()])
    return ReadyHead(_STATUS_200 + text.encode(), end + _CHUNKED_TAIL + b"\r\n", keep_alive)


def start_stream(
    request: web.Request, response: web.StreamResponse, ready: ReadyHead, more: dict[str, str]
) -> bool:
    """Do for `response`, readied by `ready_stream`, what `response.headers.update(more)`
    and `await response.prepare(request)` would do: the head is the readied fields, then
    `more`, aiohttp's own Date and the rest; the response and its writer are left as
    aiohttp's `prepare` leaves them. False, having changed nothing, where aiohttp's own
    `prepare` must run (the writer was given a head or a hook meanwhile, or a CR or LF
    in `more`): the caller then does that, with `more` added to `response.headers`.

    Relies on: `StreamResponse._req`, `_payload_writer`, `_keep_alive`,
    `_must_be_empty_body`, `_headers`; `StreamWriter.enable_chunking()`, `_headers_buf`,
    `_headers_written`, `_on_headers_sent`; `helpers.rfc822_formatted_time`.
    """
    writer = request._payload_writer
    if (
        response._payload_writer is not None
        or not isinstance(writer, StreamWriter)
        or writer._headers_buf is not None
        or writer._on_headers_sent is not None
        or _breaks_a_line(more)
    ):
        return False
    response._keep_alive = ready.keep_alive
    response._must_be_empty_body = False
    response._req = request
    response._payload_writer = writer
    writer.enable_chunking()
    date = rfc822_formatted_time()
    text = "".join([f"{name}: {value}\r\n" for name, value in more.items()])
    headers = response._headers
    headers.extend(more)
    headers["Date"] = date
    writer._headers_buf = ready.start + f"{text}Date: {date}\r\n".encode() + ready.end
    writer._headers_written = False
    return True


def _breaks_a_line(fields: dict[str, str]) -> bool:
    text = "".join(fields) + "".join(fields.values())
    return "\r" in text or "\n" in text


def malformed_http_status(exc: BaseException) -> int | None:
    """The status aiohttp answered a client's malformed HTTP with, when `exc` is its
    refusal (aiohttp logs it with a traceback that quotes the client's bytes); else None."""
    if isinstance(exc, HttpProcessingError) and isinstance(exc.code, int):
        return exc.code
    return None


# -- an application served over another protocol (sim/h2serve.py: HTTP/2) -------------

HTTP2 = HttpVersion(2, 0)
_SERVER_LOG = logging.getLogger("aiohttp.server")  # where aiohttp logs a handler's failure


class ResponseChannel(Protocol):
    """Where a response goes when it does not leave through aiohttp's own HTTP/1.1
    connection (an HTTP/2 stream): the head, then body pieces as the handler writes them."""

    def send_head(self, status: int, headers: list[tuple[str, str]], end: bool) -> None: ...

    async def send_body(self, data: bytes, end: bool) -> None:
        """Raises ConnectionError when the response cannot go on (the stream is gone)."""
        ...

    async def drain(self) -> None: ...

    def abort(self) -> None:
        """End the response unfinished (a handler failed after its head went out)."""
        ...


class _ChannelWriter(AbstractStreamWriter):
    """The writer a `StreamResponse` writes through (`request._payload_writer`), onto a
    ResponseChannel: each write goes out at once; the head waits for the first body
    write, `send_headers()` or the end, as aiohttp's `StreamWriter` holds it."""

    def __init__(self, channel: ResponseChannel) -> None:
        self._channel = channel
        self._head: tuple[int, list[tuple[str, str]]] | None = None
        self._ended = False
        self.started = False  # the head went out: no other response can follow
        self.length = None

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        # status_line is "HTTP/2.0 200 OK"; the fields as aiohttp prepared them (its
        # HTTP/1.1 framing ones included: the channel drops what its protocol forbids)
        self._head = (int(status_line.split(" ", 2)[1]), list(headers.items()))

    def send_headers(self) -> None:
        if self._head is not None:
            self._send_head(end=False)

    def _send_head(self, end: bool) -> None:
        assert self._head is not None
        status, fields = self._head
        self._head = None
        self.started = True
        self._channel.send_head(status, fields, end)

    async def write(self, chunk: bytes | bytearray | memoryview) -> None:
        self.send_headers()
        if chunk:
            await self._send(bytes(chunk), end=False)

    async def write_eof(self, chunk: bytes = b"") -> None:
        if self._ended:
            return
        self._ended = True
        if self._head is not None and not chunk:
            self._send_head(end=True)
            return
        self.send_headers()
        await self._send(bytes(chunk), end=True)

    async def _send(self, data: bytes, end: bool) -> None:
        self.output_size += len(data)
        await self._channel.send_body(data, end)
        if self.on_body_write is not None and data:
            self.on_body_write(len(data), self.output_size)

    async def drain(self) -> None:
        await self._channel.drain()

    def enable_chunking(self) -> None:
        """aiohttp asks for chunks on any HTTP/1.1+ response without a length; the
        channel's protocol frames the body itself."""

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        raise NotImplementedError("a streamed response is not compressed on this channel")


class _ForeignConnection:
    """Stands in for aiohttp's `RequestHandler` (one HTTP/1.1 connection) for one request
    served elsewhere: what a `Request` reads of its connection (transport, addresses, TLS
    context, header limits for multipart) and what the body's `StreamReader` asks of its
    feeder (`ReaderFlowControl`; the body is whole before the handler runs: no pausing)."""

    max_field_size = 8190
    max_line_length = 8190
    max_headers = 128
    connected = True
    _reading_paused = False

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.peername = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        self.ssl_context = transport.get_extra_info("sslcontext")

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def _message(method: str, target: str, headers: list[tuple[str, str]]) -> RawRequestMessage:
    """The request line and fields as aiohttp's parser hands them over (origin-form)."""
    path, _, fragment = target.partition("#")
    path, _, query = path.partition("?")
    url = URL.build(path=path, query_string=query, fragment=fragment, encoded=True)
    fields = CIMultiDictProxy(CIMultiDict(headers))
    raw = tuple((name.encode(), value.encode()) for name, value in headers)
    return RawRequestMessage(method, target, HTTP2, fields, raw, False, None, False, False, url)


async def serve_foreign_request(
    server: web.Server,
    *,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    channel: ResponseChannel,
    transport: asyncio.Transport,
    request_keys: Mapping[web.RequestKey[Any], object] | None = None,
) -> None:
    """Run one whole request (HTTP/2 semantics: version 2.0, a body already received)
    through the app of `server` (a set-up `AppRunner`'s) as aiohttp's own connection would:
    the app's request factory, routing, middlewares and handler, then `prepare` and
    `write_eof` of the response it returns or raises; an exception is logged and answered
    500 (or the channel aborted when the head went out). `request.transport` is
    `transport`; `request_keys` are set on the request first. Cancelling the caller's
    task cancels the handler, as a lost connection does under `handler_cancellation`.

    Relies on: `web.Server.request_factory(message, payload, protocol, writer, task)` and
    `request_handler(request)` (what `RequestHandler` calls; an `AppRunner` sets them to
    the app's `_make_request` and `_handle`); `RawRequestMessage`'s fields; a Request's
    use of its protocol (`_ForeignConnection`); `StreamResponse` writing through
    `request._payload_writer` with `write_headers(status_line, headers)`,
    `send_headers()`, `write()`, `write_eof()`, `drain()`, `enable_chunking()`,
    `length` and `output_size`; `StreamReader` as in `body_reader`.
    """
    loop = asyncio.get_running_loop()
    connection = _ForeignConnection(transport)
    payload = body_reader(connection, max(len(body), 2**16), loop)
    if body:
        payload.feed_data(body)
    payload.feed_eof()
    writer = _ChannelWriter(channel)
    task = asyncio.current_task()
    assert task is not None
    request = server.request_factory(
        _message(method, target, headers),
        payload,
        connection,  # type: ignore[arg-type]  # a stand-in for RequestHandler
        writer,
        task,
    )
    for key, value in (request_keys or {}).items():
        request[key] = value
    try:
        response = await server.request_handler(request)
    except web.HTTPException as exc:
        response = exc
    except Exception:
        _SERVER_LOG.exception("Error handling request %s %s", method, target)
        if writer.started:
            channel.abort()
            return
        response = web.Response(status=500, text="500 Internal Server Error")
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass  # the stream went away meanwhile: the handler has recorded what it saw
