"""The fast relay's two seams (streaming/relay.py): a client body's reader diverted or
watched as it is parsed, and a response written without awaiting."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from aiohttp.helpers import _EXC_SENTINEL
from aiohttp.http_writer import StreamWriter
from aiohttp.streams import StreamReader


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
