"""The fast relay's run over a real aiohttp StreamReader, fed as aiohttp's parser feeds it:
what it writes, what it gives back to the reader and when (a client that cannot take a
write now, an end, a cancellation), and its accounting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import orjson
import pytest
from aiohttp.streams import StreamReader

from gateway import compat_aiohttp
from gateway.providers.openai_reframe import relay_spec
from gateway.streaming.accounting import AttemptRecord
from gateway.streaming.encode import TextFrame
from gateway.streaming.relay import Relay, watch_for_token
from tests.readers import reader

HEAD = (
    '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{'
)
SPEC = relay_spec(HEAD, 1 << 20)
FRAME = TextFrame(b"<", b">")


@pytest.fixture(autouse=True)
def nothing_left_diverted() -> Iterator[None]:
    """Every diverted or watched reader is given back, whatever way its stream ended."""
    yield
    assert compat_aiohttp._DIVERTED == {}


def text(word: str) -> bytes:
    body = orjson.dumps({"content": word}).decode()[1:]
    return f'data: {HEAD}{body},"logprobs":null,"finish_reason":null}}]}}\n\n'.encode()


class _Writer:
    """Takes writes while `accept` says yes (one answer per ready() call; empty: yes)."""

    def __init__(self, writes: list[bytes], accept: list[bool]) -> None:
        self.writes = writes
        self.accept = accept

    def ready(self) -> bool:
        return self.accept.pop(0) if self.accept else True

    def write(self, data: bytes) -> None:
        self.writes.append(data)


async def started(relay: Relay, writes: list[bytes], accept: list[bool]) -> asyncio.Task[None]:
    task = asyncio.create_task(relay.run(_Writer(writes, accept)))
    await asyncio.sleep(0)  # the relay is in place once its task has started
    return task


async def test_the_text_of_one_read_is_counted_as_parsed_and_written_once() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    writes: list[bytes] = []
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), writes, [])
    body.feed_data(text("a"))  # one upstream read parsed into two HTTP chunks
    body.feed_data(text("b"))
    assert writes == [] and record.tokens == record.relayed == 2
    await asyncio.sleep(0)  # the write queued behind the read's parsing (no task woken)
    assert writes == [b"<ab>"]  # one write for the read, framed as one batch
    body.feed_data(text("c")[:10])
    body.feed_data(text("c")[10:] + text("d"))
    await asyncio.sleep(0)
    assert writes == [b"<ab>", b"<cd>"] and record.tokens == record.relayed == 4
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert type(body) is StreamReader


async def test_what_the_reader_held_when_it_took_over_is_relayed_first() -> None:
    """Chunks that arrived while the general path wrote the first token are the relay's
    first piece (one write), not a batch of the general path."""
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    body.feed_data(text("a") + text("b")[:9])  # unread: the second event only begun
    writes: list[bytes] = []
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), writes, [])
    assert record.tokens == record.relayed == 1 and not body._buffer  # taken out of it
    await asyncio.sleep(0)  # its write, queued as a read's is
    assert writes == [b"<a>"]
    body.feed_data(text("b")[9:])
    await asyncio.sleep(0)
    assert writes == [b"<a>", b"<b>"] and record.relayed == 2
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert type(body) is StreamReader


async def test_held_bytes_it_does_not_understand_go_back_to_the_reader_whole() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    finish = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    body.feed_data(text("a") + finish)
    writes: list[bytes] = []
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), writes, [])
    await asyncio.wait_for(task, 5)
    assert writes == [b"<a>"] and record.relayed == 1
    assert type(body) is StreamReader and await body.readany() == finish


async def test_held_bytes_a_full_client_cannot_take_stay_for_the_general_path() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    body.feed_data(text("a"))
    writes: list[bytes] = []
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), writes, [False])
    await asyncio.wait_for(task, 5)
    assert writes == [] and record.relayed == 0
    assert await body.readany() == text("a")


async def test_a_client_that_cannot_take_a_write_gets_it_from_the_general_path() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    writes: list[bytes] = []
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), writes, [True, False])
    body.feed_data(text("a"))
    await asyncio.sleep(0)  # written: the next piece is another read
    body.feed_data(text("b"))  # refused: nothing written, all of it back to the reader
    await asyncio.wait_for(task, 5)
    assert writes == [b"<a>"] and record.relayed == 1
    assert await body.readany() == text("b")


async def test_what_it_does_not_understand_goes_back_whole_with_what_it_held() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    writes: list[bytes] = []
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), writes, [])
    finish = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    body.feed_data(text("a") + b"data: {")
    body.feed_data(finish[7:] + b"data: [DONE]\n\n")
    await asyncio.wait_for(task, 5)
    assert writes == [b"<a>"]
    assert await body.readany() == finish + b"data: [DONE]\n\n"


async def test_cancelled_it_gives_back_what_it_held() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), [], [])
    body.feed_data(text("a")[:12])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and type(body) is StreamReader
    assert await body.readany() == text("a")[:12]


async def test_an_idle_upstream_is_stalled() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    relay = Relay(body, SPEC, FRAME, record, 0.01)
    task = await started(relay, [], [])
    await asyncio.wait_for(task, 5)
    assert relay.stalled and type(body) is StreamReader


async def test_the_end_of_the_body_ends_the_run() -> None:
    assert SPEC is not None
    body, record = reader(), AttemptRecord("d", 0.0)
    task = await started(Relay(body, SPEC, FRAME, record, 30.0), [], [])
    body.feed_data(text("a")[:12])
    body.feed_eof()
    await asyncio.wait_for(task, 5)
    assert await body.read() == text("a")[:12] and body.at_eof()


class _Source:
    def __init__(self, body: StreamReader, spec: object) -> None:
        self.reader = body
        self.decoder = self
        self._spec = spec

    def token_spec(self) -> object:
        return self._spec


async def test_a_watch_sees_the_first_token_in_the_feeding_call() -> None:
    body = reader()
    seen: list[str] = []
    watch = watch_for_token(_Source(body, SPEC), lambda: seen.append("token"))  # type: ignore[arg-type]
    assert watch is not None
    body.feed_data(b": keep-alive\n\n" + text("")[:20])
    body.feed_data(text("")[20:])  # an empty text event: not a token
    assert seen == []
    body.feed_data(text("hi"))
    assert seen == ["token"]  # before any task ran: synchronously, in feed_data
    assert type(body) is StreamReader  # it stopped watching
    expected = b": keep-alive\n\n" + text("") + text("hi")
    assert await body.read(len(expected)) == expected  # the reader got every byte as usual


async def test_a_watch_stops_at_what_it_does_not_understand() -> None:
    body = reader()
    seen: list[str] = []
    watch = watch_for_token(_Source(body, SPEC), lambda: seen.append("token"))  # type: ignore[arg-type]
    assert watch is not None
    body.feed_data(b'data: {"error":{"message":"x"}}\n\n')
    body.feed_data(text("after an error"))
    assert seen == [] and type(body) is StreamReader


async def test_no_watch_without_a_spec_or_on_a_busy_reader() -> None:
    body = reader()
    assert watch_for_token(_Source(body, None), lambda: None) is None  # type: ignore[arg-type]
    body.feed_data(b"unread")
    assert watch_for_token(_Source(body, SPEC), lambda: None) is None  # type: ignore[arg-type]
