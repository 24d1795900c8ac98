"""One client HTTP/1.1 connection to an upstream: writes a request, parses the answer's
head, and feeds the body, unframed (chunked, fixed length or to the close) and decoded
(gzip, deflate), to an aiohttp `StreamReader` as it arrives.

The body goes to a `StreamReader` because the race engine's token watch and the fast
relay hook that class (`compat_aiohttp.watch_reader`, `divert_reader`): every piece is
fed through `reader.feed_data` looked up on the reader each time, never a bound method
kept from before, so a hook swapped in meanwhile sees it. The reader's flow control
calls back here (`pause_reading`, `resume_reading`).
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

from aiohttp import StreamReader

from gateway.compat_aiohttp import body_reader
from gateway.streaming.http1.head import (
    CHUNKED,
    LENGTH,
    MAX_HEAD,
    NONE,
    UNTIL_CLOSE,
    ProtocolError,
    ResponseHead,
    parse_head,
)
from gateway.streaming.http1.request import Target

READ_LIMIT = 2**16  # the body reader's low-water mark, as aiohttp's client default
MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
MAX_TRAILERS = 16 * 1024


class ServerDisconnected(ConnectionError):
    """The server closed the connection before its answer was complete."""


class PayloadError(ConnectionError):
    """The body's framing or content coding is broken (protocol error mid-body)."""


# chunked parsing states
_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class Http1Connection(asyncio.Protocol):
    """A connection carries one request at a time. `send` writes it and returns a future
    for the final head; the body then arrives in `reader`. `reusable` says whether it may
    carry the next request once the body is complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[Http1Connection], None]):
        self._loop = loop
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self._reading_paused = False
        self.reader: StreamReader | None = None
        self._head: asyncio.Future[ResponseHead] | None = None
        self._method = "GET"
        self._buffer = b""  # bytes of the head, or of a partial chunk line, not yet parsed
        self._framing = NONE
        self._remaining = 0  # body bytes still due (LENGTH) or of the current chunk
        self._state = _SIZE
        self._trailer_size = 0
        self._coding = ""  # the body's content coding: "", "gzip" or "deflate"
        self._inflate: zlib._Decompress | None = None
        self._keep_alive = False
        self.complete = False  # the current answer's body arrived whole
        self.broken = False  # something makes the connection unfit for another request
        self.idle_since = 0.0
        self.key: tuple[str, str, int] = ("", "", 0)  # the pool's: scheme, host, port
        self.target: Target | None = None  # what it was dialed for (the pool's refills)
        self.uses = 0  # requests carried so far (the pool tells one from the next)

    # -- what aiohttp's StreamReader expects of its protocol ---------------------------

    @property
    def connected(self) -> bool:
        return self.transport is not None

    def pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    # -- the request ------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return (
            self.complete
            and self._keep_alive
            and not self.broken
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def send(self, data: bytes, method: str) -> asyncio.Future[ResponseHead]:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ServerDisconnected("connection closed before the request")
        self._method = method
        self._head = self._loop.create_future()
        self.reader = None
        self.complete = False
        self._buffer = b""
        transport.write(data)
        return self._head

    def abort(self) -> None:
        """A reset, not a graceful close; the connection is gone at once. A head still
        due fails now (a request sent ahead, `Http1Pool.send_idle`, may be dropped before
        anyone awaits it: that is no error to report)."""
        self.broken = True
        head = self._head
        if head is not None and not head.done():
            head.set_exception(ServerDisconnected("connection dropped"))
            head.exception()  # retrieved: a drop nobody awaits is not logged as lost
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.reader is None:
            if self._head is None or self._head.done():  # nothing asked: a broken server
                self.abort()
                return
            data = self._read_head(data)
            if self.reader is None or not data:
                return
        if self.complete:  # bytes past the end of the answer
            self.abort()
            return
        try:
            if self._framing == CHUNKED:
                self._feed_chunked(data)
            elif self._framing == LENGTH:
                self._feed_length(data)
            else:  # UNTIL_CLOSE
                self._body(data)
        except (ProtocolError, zlib.error) as exc:
            self._fail_body(PayloadError(str(exc) or type(exc).__name__))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost ends the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.broken = True
        head = self._head
        if head is not None and not head.done():
            head.set_exception(ServerDisconnected("server closed the connection"))
        elif self.reader is not None and not self.complete:
            if exc is None and (
                self._framing == UNTIL_CLOSE
                # the last chunk came, and the server closed before the empty line after
                # it (or its trailers): nothing of the body is missing
                or (self._framing == CHUNKED and self._state == _TRAILER)
            ):
                self._finish()
            else:
                self._fail_body(ServerDisconnected("response body ended early"))
        # the reader refers to this connection (its protocol): no cycle is left behind
        self.reader = None
        self._head = None
        self._on_lost(self)

    # -- the head ---------------------------------------------------------------------

    def _read_head(self, data: bytes) -> bytes:
        """Parse what arrived of the head; returns the bytes after it (body bytes)."""
        buffer = self._buffer + data if self._buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    self._fail_head(ProtocolError("response head too large"))
                    return b""
                self._buffer = buffer
                return b""
            try:
                head = parse_head(buffer[:end], self._method)
            except ProtocolError as exc:
                self._fail_head(exc)
                return b""
            buffer = buffer[end + 4 :]
            if not head.informational:
                break
        self._buffer = b""
        self._start_body(head)
        future = self._head
        if future is not None and not future.done():
            future.set_result(head)
        return buffer

    def _fail_head(self, exc: Exception) -> None:
        future = self._head
        if future is not None and not future.done():
            future.set_exception(exc)
        self.abort()

    def _start_body(self, head: ResponseHead) -> None:
        self._framing = head.framing
        self._keep_alive = head.keep_alive
        self._remaining = head.length
        self._state = _SIZE
        self._trailer_size = 0
        self._coding = head.content_encoding
        self._inflate = None
        self.reader = body_reader(self, READ_LIMIT, self._loop)
        if head.framing == NONE or (head.framing == LENGTH and head.length == 0):
            self._finish()

    # -- the body ---------------------------------------------------------------------

    def _body(self, data: bytes) -> None:
        if self._coding:
            if self._inflate is None:
                self._inflate = decompressor(self._coding, data)
            data = self._inflate.decompress(data)
            if not data:
                return
        reader = self.reader
        if reader is not None:
            reader.feed_data(data)  # looked up each time: a watch may have hooked the reader

    def _feed_length(self, data: bytes) -> None:
        remaining = self._remaining
        if len(data) > remaining:  # more than the declared length: keep none of the rest
            self.broken = True
            data = data[:remaining]
        self._remaining = remaining - len(data)
        self._body(data)
        if not self._remaining:
            self._finish()

    def _feed_chunked(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        pos, end = 0, len(buffer)
        while pos < end and not self.complete:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                self._body(buffer if take == end and not pos else buffer[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _DATA_END
                continue
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                if end - pos > (MAX_CHUNK_LINE if state != _TRAILER else MAX_TRAILERS):
                    raise ProtocolError("chunk line too long")
                self._buffer = buffer[pos:]
                return
            line = buffer[pos:line_end]
            pos = line_end + 2
            if state == _DATA_END:
                if line:
                    raise ProtocolError("chunk data longer than its size")
                self._state = _SIZE
            elif state == _SIZE:
                size = _chunk_size(line)
                if not size:
                    self._state = _TRAILER
                elif pos + size + 2 <= end and buffer[pos + size : pos + size + 2] == b"\r\n":
                    self._body(buffer[pos : pos + size])  # a whole chunk in hand: most reads
                    pos += size + 2
                else:
                    self._remaining = size
                    self._state = _DATA
            else:  # _TRAILER: fields until an empty line, then the answer is complete
                self._trailer_size += len(line) + 2
                if self._trailer_size > MAX_TRAILERS:
                    raise ProtocolError("trailers too large")
                if not line:
                    self._finish()
        if pos < end:  # bytes after the last chunk
            self.broken = True

    def _finish(self) -> None:
        self._coding = ""
        if self._inflate is not None:
            tail = self._inflate.flush()
            self._inflate = None
            if tail and self.reader is not None:
                self.reader.feed_data(tail)
        self.complete = True
        if self.reader is not None:
            self.reader.feed_eof()

    def _fail_body(self, exc: Exception) -> None:
        self.broken = True
        self._coding = ""
        self._inflate = None
        reader = self.reader
        if reader is not None and not self.complete:
            self.complete = True  # nothing more is fed; not reusable (broken)
            reader.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()


_SIZES: dict[bytes, int] = {}  # chunk-size lines seen valid (a streamed answer repeats a few)


def _chunk_size(line: bytes) -> int:
    """Hex digits only: `int` alone would take "0x1a", "+1a" or "1_a" too."""
    known = _SIZES.get(line)
    if known is not None:
        return known
    size = line.partition(b";")[0].rstrip(b" \t")  # chunk extensions are ignored
    if 0 < len(size) <= 16 and size.isalnum() and b"x" not in size and b"X" not in size:
        try:
            value = int(size, 16)
        except ValueError:  # a letter past f
            pass
        else:
            if len(line) <= 16 and len(_SIZES) < 1024:  # sizes, not extensions: bounded
                _SIZES[line] = value
            return value
    raise ProtocolError("malformed chunk size")


def decompressor(coding: str, first: bytes) -> zlib._Decompress:
    if coding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    # "deflate" is meant as zlib-wrapped (RFC 9110), but some servers send it raw
    wrapped = bool(first) and first[0] & 0x0F == 8
    return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
