"""HTTP/2 serving of a simulated server's aiohttp application (`SimServerConfig.http2`).

One asyncio protocol per connection runs h2's state machine. Each request, once whole
(HEADERS, then DATA up to END_STREAM), runs in a task of its own through the very app
HTTP/1.1 serves (`compat_aiohttp.serve_foreign_request`): its routes, middlewares,
faults and log records are the HTTP/1.1 path's. What HTTP/2 changes, per stream:

- a client's RST_STREAM cancels that stream's handler, as a dropped HTTP/1.1 connection
  cancels its one (the log says `client_disconnect`); a lost connection cancels them all;
- a cut fault (`request.transport.close()`) resets just that stream (INTERNAL_ERROR);
- each write leaves for the socket in the loop iteration it was made in (the frames of
  all the connection's streams in one write), within the peer's flow-control windows
  and the transport's backpressure.

The connection (this protocol) is what the sim log counts connections by, so
`handshake_ms` is paid by each new HTTP/2 connection's first request, as on HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings

from gateway.compat_aiohttp import serve_foreign_request
from gateway.sim.app import CONNECTION

MAX_CONCURRENT_STREAMS = 1000
STREAM_WINDOW = 16 * 1024 * 1024  # what a client may send on a stream before we ack
CONNECTION_WINDOW = 64 * 1024 * 1024
DEFAULT_WINDOW = 65_535  # every HTTP/2 window's size until a peer changes it
CLOSE_TIMEOUT_S = 1.0  # for a closed connection (TLS close_notify) before it is aborted
# RFC 9113 8.2.2: connection-specific fields are malformed in HTTP/2 (aiohttp sets some
# for HTTP/1.1 framing, a handler may set others)
CONNECTION_FIELDS = frozenset(
    {"connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection"}
)


class H2Server:
    """A listening socket whose connections speak only HTTP/2, serving `app_server`'s app
    (a set-up `web.AppRunner`'s server). `close()` says GOAWAY, closes every connection and
    waits for every handler it cancels."""

    def __init__(
        self, app_server: web.Server, on_accept: Callable[[object], None] | None = None
    ) -> None:
        self.app_server = app_server
        self._on_accept = on_accept  # told of each connection as it is accepted
        self.connections: set[H2ServerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Server | None = None

    async def start(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None, backlog: int
    ) -> None:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            self._accept, host, port, ssl=ssl_context, backlog=backlog
        )

    def _accept(self) -> H2ServerConnection:
        connection = H2ServerConnection(self)
        if self._on_accept is not None:
            self._on_accept(connection)
        return connection

    @property
    def port(self) -> int:
        assert self._listener is not None, "H2Server not started"
        return int(self._listener.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        connections = list(self.connections)
        for connection in connections:
            connection.shut_down()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(c.wait_lost(CLOSE_TIMEOUT_S) for c in connections))
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None


class H2ServerConnection(asyncio.Protocol):
    """One client connection: h2's state machine, its streams, the socket's backpressure."""

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.h2 = H2Connection(config=H2Configuration(client_side=False, header_encoding=None))
        self.transport: asyncio.Transport | None = None
        self._streams: dict[int, Stream] = {}
        self._writable = asyncio.Event()  # clear while the transport's buffer is full
        self._writable.set()
        self._lost = asyncio.Event()
        self._flush_due = False  # a flush is scheduled for this loop iteration

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # tokens are small writes: each must leave at once
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
                SettingCodes.MAX_HEADER_LIST_SIZE: self.h2.DEFAULT_MAX_HEADER_LIST_SIZE,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - DEFAULT_WINDOW)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError:  # h2 has queued the GOAWAY that says why
            self.flush()
            self._close()
            return
        for event in events:
            self._on_event(event)
        self.flush()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RequestReceived):
            self._streams[event.stream_id] = Stream(self, event.stream_id, event.headers)
        elif isinstance(event, DataReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, StreamEnded):
            stream = self._streams.get(event.stream_id)
            if stream is not None and stream.task is None:
                self._start(stream)
        elif isinstance(event, StreamReset):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None:
                stream.lost()  # the client gave up on it
        elif isinstance(event, WindowUpdated):
            for stream in self._streams.values():
                if event.stream_id in (0, stream.id):
                    stream.window.set()
        elif isinstance(event, RemoteSettingsChanged):  # the initial window may have grown
            for stream in self._streams.values():
                stream.window.set()
        elif isinstance(event, ConnectionTerminated):  # the client's GOAWAY: it is done here
            self._close()

    def _start(self, stream: Stream) -> None:
        stream.task = task = asyncio.get_running_loop().create_task(self._serve(stream))
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    async def _serve(self, stream: Stream) -> None:
        pseudo = {name: value for name, value in stream.headers if name.startswith(":")}
        fields = [(name, value) for name, value in stream.headers if not name.startswith(":")]
        if ":authority" in pseudo and not any(name == "host" for name, _ in fields):
            fields.append(("host", pseudo[":authority"]))
        body, stream.body = bytes(stream.body), bytearray()
        try:
            await serve_foreign_request(
                self.server.app_server,
                method=pseudo.get(":method", "GET"),
                target=pseudo.get(":path", "/"),
                headers=fields,
                body=body,
                channel=stream,
                transport=StreamTransport(stream),
                request_keys={CONNECTION: self},
            )
        finally:
            # a response left unfinished (a cancelled handler) must not leave the stream open
            stream.abort()
            self._streams.pop(stream.id, None)

    def flush(self) -> None:
        """Send what h2 has queued, once a loop iteration: the frames every stream wrote
        in it leave in one write, as an HTTP/2 server coalesces them (a write each would
        cost this process a system call per token of every stream)."""
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_soon(self.flush_now)

    def flush_now(self) -> None:
        self._flush_due = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark."""
        while not self._writable.is_set():
            await self._writable.wait()
        if self._lost.is_set():
            raise ConnectionResetError("the HTTP/2 connection is closed")

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost.set()
        self._writable.set()  # drain() then raises
        self.server.connections.discard(self)
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.lost()

    def shut_down(self) -> None:
        """Server stop: GOAWAY, then close (the handlers are cancelled by the caller)."""
        if self._lost.is_set():
            return
        with contextlib.suppress(ProtocolError):
            self.h2.close_connection()
        self.flush_now()
        self._close()

    async def wait_lost(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._lost.wait(), timeout_s)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


class Stream:
    """One request and its response on a connection; the response side is
    `compat_aiohttp.ResponseChannel` (what the app's responses write through)."""

    def __init__(self, connection: H2ServerConnection, stream_id: int, headers: list[Any]) -> None:
        self.connection = connection
        self.id = stream_id
        self.headers = [(_text(name), _text(value)) for name, value in headers]
        self.body = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.open = True  # the response may still be sent (not ended, reset or lost)
        self.window = asyncio.Event()  # set when the send window may have grown

    def send_head(self, status: int, headers: list[tuple[str, str]], end: bool) -> None:
        fields = [(b":status", str(status).encode())]
        for name, value in headers:
            name = name.lower()
            if name not in CONNECTION_FIELDS:
                fields.append((name.encode(), value.encode()))
        self._check_open()
        try:
            self.connection.h2.send_headers(self.id, fields, end_stream=end)
        except ProtocolError as exc:
            self.open = False
            raise ConnectionResetError(f"HTTP/2 stream {self.id}: {exc}") from exc
        self.open = not end
        self.connection.flush()

    async def send_body(self, data: bytes, end: bool) -> None:
        h2 = self.connection.h2
        while data or end:
            self._check_open()
            try:
                window = h2.local_flow_control_window(self.id)
                size = min(len(data), window, h2.max_outbound_frame_size)
                if data and size <= 0:  # wait for the client's WINDOW_UPDATE
                    self.window.clear()
                    await self.window.wait()
                    continue
                chunk, data = data[:size], data[size:]
                last = end and not data
                h2.send_data(self.id, chunk, end_stream=last)
            except ProtocolError as exc:
                self.open = False
                raise ConnectionResetError(f"HTTP/2 stream {self.id}: {exc}") from exc
            self.connection.flush()  # in this loop iteration: the sim logs when tokens leave
            if last:
                self.open = False
                break
        await self.connection.drain()

    async def drain(self) -> None:
        await self.connection.drain()

    def abort(self) -> None:
        """Reset the stream (INTERNAL_ERROR) if its response is not finished."""
        if not self.open:
            return
        self.open = False
        self.window.set()
        with contextlib.suppress(ProtocolError):
            self.connection.h2.reset_stream(self.id, ErrorCodes.INTERNAL_ERROR)
            self.connection.flush()

    def lost(self) -> None:
        """The client reset the stream, or the connection is gone: nothing more is sent,
        and the handler is cancelled (it records a client disconnect)."""
        self.open = False
        self.window.set()
        if self.task is not None:
            self.task.cancel()

    def _check_open(self) -> None:
        if not self.open:
            raise ConnectionResetError(f"HTTP/2 stream {self.id} is closed")


class StreamTransport(asyncio.Transport):
    """`request.transport` of a stream: the connection's addresses and TLS; closing it
    (the sim's cut fault) resets only this stream, as closing an HTTP/1.1 connection ends
    only its one response."""

    def __init__(self, stream: Stream) -> None:
        super().__init__()
        self._stream = stream

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._stream.connection.transport
        return default if transport is None else transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return not self._stream.open

    def close(self) -> None:
        self._stream.abort()

    def abort(self) -> None:
        self._stream.abort()
