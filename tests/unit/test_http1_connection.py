"""The upstream client's connection protocol without a socket: whatever way an answer is
framed, coded and split into reads, the body reader gets exactly the body, and the
connection is reusable exactly when the answer ended cleanly and may be followed."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.streaming.http1.connection import (
    Http1Connection,
    PayloadError,
    ServerDisconnected,
    _chunk_size,
)
from gateway.streaming.http1.head import ProtocolError, ResponseHead


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closing = False
        self.paused = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def connect(loop: asyncio.AbstractEventLoop) -> tuple[Http1Connection, FakeTransport, list[object]]:
    lost: list[object] = []
    connection = Http1Connection(loop, lost.append)
    transport = FakeTransport()
    connection.connection_made(transport)
    return connection, transport, lost


def chunked(pieces: list[bytes], extension: bool, trailers: bool) -> bytes:
    out = b""
    for piece in pieces:
        out += b"%x%s\r\n%s\r\n" % (len(piece), b";name=value" if extension else b"", piece)
    return out + b"0\r\n" + (b"X-Trailer: 1\r\n" if trailers else b"") + b"\r\n"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


async def read_all(connection: Http1Connection) -> bytes:
    reader = connection.reader
    assert reader is not None
    body = b""
    while data := await reader.readany():
        body += data
    return body


def sent(
    method: str = "POST",
) -> tuple[Http1Connection, FakeTransport, asyncio.Future[ResponseHead]]:
    """A connection that has sent a request: its transport and the future of its head."""
    connection, transport, _ = connect(asyncio.get_running_loop())
    return connection, transport, connection.send(b"request", method)


async def answer(data: list[bytes], method: str = "POST") -> tuple[Http1Connection, ResponseHead]:
    connection, _, head = sent(method)
    for piece in data:
        connection.data_received(piece)
    return connection, await head


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0), max_size=12),
    extension=st.booleans(),
    trailers=st.booleans(),
    coding=st.sampled_from(["", "gzip", "deflate", "raw-deflate"]),
    framing=st.sampled_from(["chunked", "length"]),
)
def test_any_framing_coding_and_split_gives_the_body(
    pieces: list[bytes],
    cuts: list[int],
    extension: bool,
    trailers: bool,
    coding: str,
    framing: str,
) -> None:
    body = b"".join(pieces)
    encoded, header = body, b""
    if coding == "gzip":
        encoded, header = gzip.compress(body), b"Content-Encoding: gzip\r\n"
    elif coding == "deflate":
        encoded, header = zlib.compress(body), b"Content-Encoding: deflate\r\n"
    elif coding == "raw-deflate":
        squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        encoded = squeeze.compress(body) + squeeze.flush()
        header = b"Content-Encoding: deflate\r\n"
    if framing == "chunked":
        size = max(1, len(encoded) // max(1, len(pieces)))
        parts = [encoded[i : i + size] for i in range(0, len(encoded), size)]
        payload = b"Transfer-Encoding: chunked\r\n" + header + b"\r\n"
        payload += chunked(parts, extension, trailers)
    else:
        payload = b"Content-Length: %d\r\n%s\r\n%s" % (len(encoded), header, encoded)
    wire = b"HTTP/1.1 200 OK\r\n" + payload

    async def run() -> None:
        connection, head = await answer(split(wire, cuts))
        assert head.status == 200
        assert await read_all(connection) == body
        assert connection.complete and connection.reusable

    asyncio.run(run())


async def test_interim_answers_are_skipped() -> None:
    connection, head = await answer(
        [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n", _ok(b"hi")]
    )
    assert head.status == 200 and await read_all(connection) == b"hi"


def _ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


async def test_an_answer_until_close_ends_with_the_connection() -> None:
    loop = asyncio.get_running_loop()
    connection, _, lost = connect(loop)
    head = connection.send(b"request", "POST")
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    connection.data_received(b"part two")
    reader = connection.reader
    connection.connection_lost(None)
    assert (await head).status == 200 and reader is not None
    body = b""
    while data := await reader.readany():
        body += data
    assert body == b"part one, part two"
    assert connection.reader is None  # no cycle between the two is left
    assert not connection.reusable and lost == [connection]


async def test_a_body_cut_short_fails_the_reader() -> None:
    connection, _, head = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    await head
    reader = connection.reader
    connection.connection_lost(None)
    assert reader is not None
    with pytest.raises(ServerDisconnected):  # at once, as aiohttp's own client reader
        await reader.readany()


async def test_a_connection_lost_before_the_head_fails_the_request() -> None:
    connection, _, head = sent()
    connection.data_received(b"HTTP/1.1 200 O")
    connection.connection_lost(ConnectionResetError())
    with pytest.raises(ServerDisconnected):
        await head


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello!!\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0_5\r\nhello\r\n0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
    ],
)
async def test_broken_chunk_framing_fails_the_body_and_the_connection(body: bytes) -> None:
    connection, transport, head = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    await head
    with pytest.raises(PayloadError):
        await read_all(connection)
    assert transport.closing and not connection.reusable


@pytest.mark.parametrize("bad", [b"0x1a", b"+1a", b"1_a", b"1g", b"", b"1a 1a", b"1" * 17])
def test_a_remembered_size_line_never_lets_a_malformed_one_pass(bad: bytes) -> None:
    """Size lines seen valid are remembered (a streamed answer repeats a few); what is
    not one of them is parsed and checked, however alike."""
    assert [_chunk_size(line) for line in (b"1a", b"1a", b"1A", b"1a;x=y", b"1a \t")] == [26] * 5
    with pytest.raises(ProtocolError):
        _chunk_size(bad)


async def test_a_malformed_head_fails_the_request_and_drops_the_connection() -> None:
    connection, transport, head = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    with pytest.raises(ProtocolError):
        await head
    assert transport.closing


async def test_bytes_past_the_answer_make_the_connection_unfit() -> None:
    connection, _ = await answer([_ok(b"hi") + b"HTTP/1.1 200 OK\r\n"])
    assert await read_all(connection) == b"hi"
    assert not connection.reusable
    chunks, _ = await answer(
        [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\nextra"]
    )
    assert await read_all(chunks) == b"hi" and not chunks.reusable


async def test_connection_close_and_head_answers() -> None:
    closing, _ = await answer(
        [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"]
    )
    assert closing.complete and not closing.reusable
    headed, head = await answer([b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"], "HEAD")
    assert head.status == 200 and await read_all(headed) == b"" and headed.reusable


async def test_a_full_reader_pauses_the_transport_and_resumes_it() -> None:
    connection, transport, head = sent()
    size = 1 << 20
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
    await head
    connection.data_received(b"x" * (size // 2))
    assert transport.paused  # more than twice the reader's limit is buffered
    reader = connection.reader
    assert reader is not None
    got = len(await reader.read(size))
    assert not transport.paused
    connection.data_received(b"x" * (size // 2))
    while got < size:
        got += len(await reader.readany())
    assert got == size and connection.reusable


async def test_data_nobody_asked_for_drops_an_idle_connection() -> None:
    loop = asyncio.get_running_loop()
    connection, transport, _ = connect(loop)
    connection.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.closing and not connection.reusable


async def test_a_close_after_the_last_chunk_ends_the_body_cleanly() -> None:
    connection, _, head = sent()
    connection.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    connection.data_received(b"2\r\nhi\r\n0\r\n")  # no empty line: the server closed
    await head
    reader = connection.reader
    connection.connection_lost(None)
    assert reader is not None and await reader.read() == b"hi"
    assert not connection.reusable
