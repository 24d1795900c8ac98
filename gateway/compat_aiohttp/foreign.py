"""An application served over another protocol (sim/h2serve.py: HTTP/2)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import HttpVersion, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.compat_aiohttp.body import body_reader

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
