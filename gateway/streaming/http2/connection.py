"""One client HTTP/2 connection to an upstream: many requests at once, one stream each.

Why HTTP/2: a race's loser is dropped with a RST_STREAM, and the connection carries the
next request; over HTTP/1.1 the only way to stop an answer is to close its connection,
and against a TLS upstream the replacement's handshake costs more CPU than the rest of
the loser's attempt.

The frame layer is the gateway's own, not the `h2` library's: a DATA frame, the frame of
every token, is sliced out and fed to its stream's reader in a few microseconds, where
`h2`'s state machine spends about 19 per frame. Header blocks are joined and decoded by
`heads.py` (with `hpack_decoder`: once per answer, a third of the `hpack` library's
time). What a client must do is done: settings and their acknowledgement, PING answers,
flow control both ways (credit sent back in large increments), header blocks across
CONTINUATION frames, padding, trailers, 1xx heads, RST_STREAM and GOAWAY (the streams a
GOAWAY refuses fail as retryable). A connection error ends every stream with an error
and the connection with a GOAWAY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.streaming.http1.connection import PayloadError, ServerDisconnected
from gateway.streaming.http1.head import ProtocolError
from gateway.streaming.http2 import frames as f
from gateway.streaming.http2.frames import ConnectionFault
from gateway.streaming.http2.heads import Fields, HeadBlocks, answer_head
from gateway.streaming.http2.stream import STREAM_CREDIT_AT, STREAM_WINDOW, Http2Stream, StreamReset

CONNECTION_WINDOW = 16 << 20  # what a server may send all streams ahead of their readers
CONNECTION_CREDIT_AT = CONNECTION_WINDOW // 2
MAX_HEADER_LIST = 64 * 1024  # as an HTTP/1.1 head's limit
ASSUMED_STREAMS = 100  # until the server's settings say (RFC 9113 recommends at least 100)
LAST_STREAM_ID = 2**31 - 1
# A stream we drop on a connection silent this long gets a PING sent: one not answered in
# PING_TIMEOUT_S ends the connection, so a dead one (no FIN ever came) is not handed the
# next requests as well (a stalled attempt is dropped after its idle timeout).
PING_WHEN_SILENT_S = 5.0
PING_TIMEOUT_S = 5.0
_PING = b"gw-alive"
_OUR_SETTINGS = {
    f.ENABLE_PUSH: 0,
    f.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
    f.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
}


class NotHttp2(ConnectionError):
    """The server chose another protocol (ALPN) or did not answer as HTTP/2."""


class Http2Connection(asyncio.Protocol):
    """An asyncio protocol. `ready` resolves with the server's first SETTINGS; `open`
    then starts a request at once (no await) while `available()`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[Http2Connection], None],
        on_free: Callable[[Http2Connection], None],
    ) -> None:
        self.loop = loop
        self._on_lost = on_lost  # the connection is gone
        self._on_free = on_free  # a stream ended: room for another
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.streams: dict[int, Http2Stream] = {}
        self._blocked: dict[int, Http2Stream] = {}  # streams with body bytes the windows hold
        self._next_id = 1
        self._buffer = b""
        self._heads = HeadBlocks(MAX_HEADER_LIST)
        self._size_update = True  # our (unused) HPACK table is announced as empty
        self.max_streams = ASSUMED_STREAMS
        self.peer_window = f.DEFAULT_WINDOW  # the server's initial window for each stream
        self.max_frame = f.DEFAULT_MAX_FRAME
        self.send_window = f.DEFAULT_WINDOW
        self.recv_window = CONNECTION_WINDOW
        self._unacked = 0
        self.closing = False  # no new streams: GOAWAY sent or received
        self.key: tuple[str, str, int] = ("", "", 0)  # the pool's: scheme, host, port
        self.idle_since = 0.0
        self.carried = 0  # streams opened so far
        self._heard = loop.time()  # when bytes last arrived
        self._ping: asyncio.TimerHandle | None = None  # a PING answer is due

    # -- the pool's view ---------------------------------------------------------------

    def available(self) -> bool:
        """Room for another stream now."""
        return (
            self.transport is not None
            and not self.closing
            and len(self.streams) < self.max_streams
            and self._next_id <= LAST_STREAM_ID
        )

    def open(self, method: str, block: bytes, body: bytes | None) -> Http2Stream:
        """Start a request: its head (and as much of its body as the windows allow) is
        written now. Raises ServerDisconnected if the connection cannot take it."""
        transport = self.transport
        if transport is None or not self.available():
            raise ServerDisconnected("connection cannot take another request")
        stream_id = self._next_id
        self._next_id += 2
        self.carried += 1
        stream = Http2Stream(self, stream_id, method, self.peer_window)
        self.streams[stream_id] = stream
        if self._size_update:
            block = b"\x20" + block  # dynamic table size update to 0 (RFC 7541 6.3)
            self._size_update = False
        data = f.headers_frames(stream_id, block, not body, self.max_frame)
        if body:
            stream.pending = memoryview(body)
            data += self._body_frames(stream)
        else:
            stream.local_closed = True
        transport.write(data)
        return stream

    def reset(self, stream: Http2Stream, code: int = f.CANCEL) -> None:
        """Drop a stream now (a race's loser, an abandoned answer): RST_STREAM, and its
        head or body fails. Nothing happens to a stream that has ended."""
        if stream.done:
            return
        if self.transport is not None:
            self.transport.write(f.rst_stream(stream.id, code))
            if self._ping is None and self.loop.time() - self._heard > PING_WHEN_SILENT_S:
                self.transport.write(f.frame(f.PING, 0, 0, _PING))
                self._ping = self.loop.call_later(PING_TIMEOUT_S, self._unanswered)
        stream.fail(StreamReset("stream cancelled"))
        self._forget(stream)

    def _unanswered(self) -> None:
        """No answer to our PING: the connection is dead."""
        self._ping = None
        self.abort()

    def credit(self, stream: Http2Stream, size: int) -> None:
        """`size` bytes of the stream were read on: let the server send that much more."""
        unacked = stream.unacked + size
        if unacked >= STREAM_CREDIT_AT and not stream.remote_closed:
            stream.unacked = 0
            stream.recv_window += unacked
            if self.transport is not None:
                self.transport.write(f.window_update(stream.id, unacked))
        else:
            stream.unacked = unacked

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_idle(self) -> None:
        """Close gracefully (GOAWAY, then the connection); for a connection with no streams."""
        self.closing = True
        if self.transport is not None:
            self.transport.write(f.goaway(0, f.NO_ERROR))
            self.transport.close()

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        tls = transport.get_extra_info("ssl_object")
        if tls is not None and tls.selected_alpn_protocol() != "h2":
            self._not_ready(NotHttp2("the server did not choose HTTP/2 (ALPN)"))
            return
        initial = f.window_update(0, CONNECTION_WINDOW - f.DEFAULT_WINDOW)
        transport.write(f.PREFACE + f.settings(_OUR_SETTINGS) + initial)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.transport is None:  # failed (`_fail`): what still arrives is not read
            return
        self._heard = self.loop.time()
        buffer = self._buffer + data if self._buffer else data
        pos, end = 0, len(buffer)
        unpack = f.FRAME_HEAD.unpack_from
        try:
            while end - pos >= 9:
                high, low, kind, flags, stream_id = unpack(buffer, pos)
                length = (high << 8) | low
                if length > f.DEFAULT_MAX_FRAME:  # ours: SETTINGS_MAX_FRAME_SIZE not raised
                    raise ConnectionFault(f.FRAME_SIZE_ERROR, "frame larger than allowed")
                stop = pos + 9 + length
                if stop > end:
                    break
                payload = buffer[pos + 9 : stop]
                pos = stop
                if kind == f.DATA and not self._heads.open and self.ready.done():
                    self._on_data(flags, stream_id & f.MAX_WINDOW, payload)
                else:
                    self._on_frame(kind, flags, stream_id & f.MAX_WINDOW, payload)
                if self.transport is None:
                    return
        except ConnectionFault as exc:
            self._fail(exc.code, str(exc))
            return
        self._buffer = buffer[pos:] if pos < end else b""

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends the streams

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closing = True
        if self._ping is not None:
            self._ping.cancel()
            self._ping = None
        self._not_ready(ServerDisconnected("server closed the connection"))
        for stream in list(self.streams.values()):
            lost = "server closed the connection" if not stream.head.done() else "body ended early"
            stream.fail(ServerDisconnected(lost))
        self.streams.clear()
        self._blocked.clear()
        self._on_lost(self)

    # -- frames ------------------------------------------------------------------------

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        size = len(payload)
        self.recv_window -= size  # every DATA frame counts against the connection
        if self.recv_window < 0:
            raise ConnectionFault(f.FLOW_CONTROL_ERROR, "connection window exceeded")
        self._unacked += size
        if self._unacked >= CONNECTION_CREDIT_AT:
            self.recv_window += self._unacked
            self._write(f.window_update(0, self._unacked))
            self._unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id == 0 or stream_id >= self._next_id:
                raise ConnectionFault(f.PROTOCOL_ERROR, "DATA on a stream never opened")
            return  # a stream reset or ended here: its late frames are dropped
        if stream.reader is None or stream.remote_closed:
            self._reset_with(stream, f.PROTOCOL_ERROR, ProtocolError("DATA outside the body"))
            return
        stream.recv_window -= size
        if stream.recv_window < 0:
            self._reset_with(stream, f.FLOW_CONTROL_ERROR, PayloadError("stream window exceeded"))
            return
        try:
            body = f.strip_padding(flags, payload) if flags & f.PADDED else payload
        except ValueError as exc:
            raise ConnectionFault(f.PROTOCOL_ERROR, str(exc)) from None
        if body:
            try:
                stream.body(body)
            except PayloadError as exc:
                self._reset_with(stream, f.PROTOCOL_ERROR, exc)
                return
        if flags & f.END_STREAM:
            self._end(stream)
        elif stream._reading_paused:
            stream.held += size
        else:
            self.credit(stream, size)

    def _on_frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._heads.open and kind != f.CONTINUATION:
            raise ConnectionFault(f.PROTOCOL_ERROR, "header block interrupted")
        if not self.ready.done() and kind != f.SETTINGS:
            raise ConnectionFault(f.PROTOCOL_ERROR, "the server did not start with SETTINGS")
        if kind == f.HEADERS or kind == f.CONTINUATION:
            read = self._heads.headers if kind == f.HEADERS else self._heads.continuation
            block = read(flags, stream_id, payload)
            if block is not None:
                self._on_head(block[0], stream_id, block[1])
        elif kind == f.DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == f.SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif kind == f.WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif kind == f.RST_STREAM:
            if len(payload) != 4 or stream_id == 0:
                raise ConnectionFault(f.PROTOCOL_ERROR, "malformed RST_STREAM")
            stream = self.streams.get(stream_id)
            if stream is not None:
                code = f.u32(payload)
                refused = code == f.REFUSED_STREAM
                stream.fail(StreamReset(f"stream reset by the server ({code})", refused))
                self._forget(stream)
        elif kind == f.PING:
            if len(payload) != 8 or stream_id != 0:
                raise ConnectionFault(f.FRAME_SIZE_ERROR, "malformed PING")
            if not flags & f.ACK:
                self._write(f.frame(f.PING, f.ACK, 0, payload))
            elif self._ping is not None:
                self._ping.cancel()
                self._ping = None
        elif kind == f.GOAWAY:
            self._on_goaway(stream_id, payload)
        elif kind == f.PUSH_PROMISE:
            raise ConnectionFault(f.PROTOCOL_ERROR, "push was disabled")
        # PRIORITY and unknown frame types are ignored (RFC 9113 4.1, 5.5)

    def _on_head(self, flags: int, stream_id: int, fields: Fields) -> None:
        """A whole header block for a stream: its head, an interim head or its trailers."""
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id >= self._next_id or not stream_id % 2:
                raise ConnectionFault(f.PROTOCOL_ERROR, "HEADERS on a stream never opened")
            return
        if stream.remote_closed:
            self._reset_with(stream, f.STREAM_CLOSED, ProtocolError("HEADERS after the end"))
            return
        if stream.reader is not None:  # trailers: nothing in them is used
            if not flags & f.END_STREAM:
                self._reset_with(stream, f.PROTOCOL_ERROR, ProtocolError("trailers not last"))
            else:
                self._end(stream)
            return
        try:
            head = answer_head(fields, stream.method)
        except ProtocolError as exc:
            self._reset_with(stream, f.PROTOCOL_ERROR, exc)
            return
        if head is None:  # an interim (1xx) head: the final one follows
            if flags & f.END_STREAM:
                self._reset_with(stream, f.PROTOCOL_ERROR, ProtocolError("1xx head ends stream"))
            return
        stream.start_body(head)
        if flags & f.END_STREAM:
            self._end(stream)

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id != 0:
            raise ConnectionFault(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise ConnectionFault(f.FRAME_SIZE_ERROR, "SETTINGS acknowledgement with a payload")
            return
        try:
            values = f.parse_settings(payload)
        except ValueError as exc:
            raise ConnectionFault(f.FRAME_SIZE_ERROR, str(exc)) from None
        for key, value in values:
            if key == f.MAX_CONCURRENT_STREAMS:
                self.max_streams = value
            elif key == f.INITIAL_WINDOW_SIZE:
                if value > f.MAX_WINDOW:
                    raise ConnectionFault(f.FLOW_CONTROL_ERROR, "initial window too large")
                delta, self.peer_window = value - self.peer_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        raise ConnectionFault(f.FLOW_CONTROL_ERROR, "stream window overflow")
            elif key == f.MAX_FRAME_SIZE:
                if not f.DEFAULT_MAX_FRAME <= value <= 2**24 - 1:
                    raise ConnectionFault(f.PROTOCOL_ERROR, "invalid SETTINGS_MAX_FRAME_SIZE")
                self.max_frame = value
            elif key == f.HEADER_TABLE_SIZE:
                self._size_update = True  # announce our empty table again
        self._write(f.frame(f.SETTINGS, f.ACK, 0))
        if not self.ready.done():
            self.ready.set_result(None)
        self._send_blocked()
        self._on_free(self)  # its stream limit may have grown

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionFault(f.FRAME_SIZE_ERROR, "malformed WINDOW_UPDATE")
        increment = f.u32(payload) & f.MAX_WINDOW
        if stream_id == 0:
            if not increment:
                raise ConnectionFault(f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > f.MAX_WINDOW:
                raise ConnectionFault(f.FLOW_CONTROL_ERROR, "connection window overflow")
            self._send_blocked()
            return
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if not increment:
            self._reset_with(stream, f.PROTOCOL_ERROR, ProtocolError("WINDOW_UPDATE of 0"))
            return
        stream.send_window += increment
        if stream.send_window > f.MAX_WINDOW:
            self._reset_with(stream, f.FLOW_CONTROL_ERROR, ProtocolError("window overflow"))
        elif stream.pending is not None:
            self._write(self._body_frames(stream))

    def _on_goaway(self, stream_id: int, payload: bytes) -> None:
        if len(payload) < 8 or stream_id != 0:
            raise ConnectionFault(f.PROTOCOL_ERROR, "malformed GOAWAY")
        last, code = f.parse_goaway(payload)
        self.closing = True
        for open_id, stream in list(self.streams.items()):
            if open_id > last:  # never processed: safe to send again elsewhere
                stream.fail(StreamReset(f"refused: the server is going away ({code})", True))
                self._forget(stream)
        if not self.streams and self.transport is not None:
            self.transport.close()

    # -- streams ending ------------------------------------------------------------------

    def _end(self, stream: Http2Stream) -> None:
        stream.end_body()
        if not stream.local_closed:  # answered before our body was sent: stop sending it
            self._write(f.rst_stream(stream.id, f.CANCEL))
        stream.release()
        self._forget(stream)

    def _reset_with(self, stream: Http2Stream, code: int, exc: Exception) -> None:
        self._write(f.rst_stream(stream.id, code))
        stream.fail(exc)
        self._forget(stream)

    def _forget(self, stream: Http2Stream) -> None:
        if self.streams.pop(stream.id, None) is None:
            return
        self._blocked.pop(stream.id, None)
        if not self.streams:
            self.idle_since = self.loop.time()
            if self.closing and self.transport is not None:
                self.transport.close()
        self._on_free(self)

    def _fail(self, code: int, message: str) -> None:
        """A connection error: GOAWAY, every stream fails, the connection closes."""
        self.closing = True
        self._not_ready(NotHttp2(message))
        for stream in list(self.streams.values()):
            stream.fail(ProtocolError(f"HTTP/2 connection error: {message}"))
        self.streams.clear()
        self._blocked.clear()
        if self.transport is not None:
            self.transport.write(f.goaway(0, code))
            self.transport.close()
            self.transport = None  # nothing more is read or written here
        self._on_free(self)

    def _not_ready(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
            self.ready.exception()  # retrieved: the pool may have stopped waiting

    # -- sending -------------------------------------------------------------------------

    def _body_frames(self, stream: Http2Stream) -> bytes:
        """DATA frames for as much of the stream's body as both windows allow."""
        view = stream.pending
        out: list[bytes] = []
        while view is not None:
            room = min(self.send_window, stream.send_window, self.max_frame)
            if room <= 0:
                break
            piece, rest = view[:room], view[room:]
            self.send_window -= len(piece)
            stream.send_window -= len(piece)
            last = not rest
            out.append(f.frame(f.DATA, f.END_STREAM if last else 0, stream.id, bytes(piece)))
            view = None if last else rest
        stream.pending = view
        if view is None:
            stream.local_closed = True
            self._blocked.pop(stream.id, None)
        else:
            self._blocked[stream.id] = stream
        return b"".join(out)

    def _send_blocked(self) -> None:
        for stream in list(self._blocked.values()):
            if self.send_window <= 0:
                return
            self._write(self._body_frames(stream))

    def _write(self, data: bytes) -> None:
        if data and self.transport is not None:
            self.transport.write(data)
