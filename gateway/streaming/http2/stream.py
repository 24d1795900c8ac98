"""One request on an HTTP/2 connection: its answer's head, and its body fed to an aiohttp
`StreamReader` as DATA frames arrive, as `http1.connection` feeds an HTTP/1.1 body (the
race's token watch and the fast relay hook that reader the same way).

The stream is its reader's flow control: while the reader holds more than its limit
(`pause_reading`), the bytes it receives are not credited back to the server, so a
stream's unread data is bounded by its receive window however fast the server sends.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import TYPE_CHECKING

from aiohttp import StreamReader

from gateway.compat_aiohttp import body_reader
from gateway.streaming.http1.connection import PayloadError, decompressor
from gateway.streaming.http1.head import ResponseHead

if TYPE_CHECKING:
    from gateway.streaming.http2.connection import Http2Connection

READ_LIMIT = 2**16  # the body reader's low-water mark, as for HTTP/1.1
STREAM_WINDOW = 1 << 20  # what a server may send one stream ahead of its reader
STREAM_CREDIT_AT = STREAM_WINDOW // 2  # credit back in large increments: few frames


class StreamReset(ConnectionError):
    """The stream was reset (by either side) or refused by the server's GOAWAY;
    `refused`: the server says it did not process the request."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class Http2Stream:
    """`head` resolves with the final head; the body then arrives in `reader`."""

    __slots__ = (
        "_coding",
        "_inflate",
        "_reading_paused",
        "connection",
        "done",
        "head",
        "held",
        "id",
        "local_closed",
        "method",
        "pending",
        "reader",
        "recv_window",
        "remote_closed",
        "send_window",
        "unacked",
    )

    def __init__(
        self, connection: Http2Connection, stream_id: int, method: str, send_window: int
    ) -> None:
        self.connection = connection
        self.id = stream_id
        self.method = method
        # the final head, and the reader its body goes to
        self.head: asyncio.Future[tuple[ResponseHead, StreamReader]] = (
            connection.loop.create_future()
        )
        self.reader: StreamReader | None = None
        self._reading_paused = False
        self._coding = ""
        self._inflate: zlib._Decompress | None = None
        self.held = 0  # bytes received while the reader was paused: credited on resume
        self.unacked = 0  # bytes read on, not yet credited back (sent in batches)
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.pending: memoryview | None = None  # request body bytes the windows held back
        self.local_closed = False  # our END_STREAM sent
        self.remote_closed = False  # the server's END_STREAM received
        self.done = False  # closed both ways, reset, or its connection lost

    # -- what aiohttp's StreamReader expects of its protocol ---------------------------

    @property
    def connected(self) -> bool:
        return self.connection.transport is not None

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused:
            self._reading_paused = False
            held, self.held = self.held, 0
            if held and not self.done:
                self.connection.credit(self, held)

    # -- the answer ----------------------------------------------------------------------

    def start_body(self, head: ResponseHead) -> None:
        self._coding = head.content_encoding
        self.reader = body_reader(self, READ_LIMIT, self.connection.loop)
        if not self.head.done():
            self.head.set_result((head, self.reader))

    def body(self, data: bytes) -> None:
        if self._coding:
            if self._inflate is None:
                self._inflate = decompressor(self._coding, data)
            try:
                data = self._inflate.decompress(data)
            except zlib.error as exc:
                raise PayloadError(str(exc) or "broken content coding") from None
            if not data:
                return
        reader = self.reader
        if reader is not None:
            reader.feed_data(data)  # looked up each time: a watch may have hooked the reader

    def end_body(self) -> None:
        """The server's END_STREAM: the body is whole."""
        self.remote_closed = True
        reader = self.reader
        if self._inflate is not None:
            tail = self._inflate.flush()
            self._inflate = None
            if tail and reader is not None:
                reader.feed_data(tail)
        if reader is not None:
            reader.feed_eof()

    def fail(self, exc: Exception) -> None:
        """The stream ends without its answer, or with its body cut short."""
        self.done = True
        head = self.head
        if not head.done():
            head.set_exception(exc)
            head.exception()  # retrieved: a request sent ahead may never be awaited
        elif self.reader is not None and not self.remote_closed:
            self.reader.set_exception(exc)
        self.release()

    def release(self) -> None:
        """Nothing more is fed: the reader refers back here, so let go of it (no cycle)."""
        self.done = True
        self.reader = None
        self.pending = None
        self._inflate = None
