"""The race's token watch on an Anthropic stream (`AnthropicStreamDecoder.token_spec`):
it sees a text delta's token in the call that feeds it, and never one the decoder would
not produce from the same bytes."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp.streams import StreamReader
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.providers.anthropic_stream import AnthropicStreamDecoder
from gateway.streaming.attempt import RelaySource
from gateway.streaming.events import is_token
from gateway.streaming.relay import TokenWatch, watch_for_token
from tests.readers import reader


def sse(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def text_delta(text: str, index: int = 0) -> bytes:
    delta = {"type": "text_delta", "text": text}
    return sse(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    )


START = sse("message_start", {"type": "message_start", "message": {"id": "m", "model": "c"}})
BLOCK = sse(
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
PING = b'event: ping\ndata: {"type": "ping"}\n\n'


async def test_a_text_delta_is_seen_in_the_call_that_feeds_it() -> None:
    body, decoder = reader(), AnthropicStreamDecoder()
    assert not any(is_token(e) for e in decoder.feed(START + BLOCK + PING))
    seen: list[str] = []
    watch = watch_for_token(RelaySource(body, decoder), lambda: seen.append("token"))
    assert watch is not None
    event = text_delta("Hi")
    body.feed_data(event[:30])  # the event split inside its data line
    assert seen == []
    body.feed_data(event[30:])
    assert seen == ["token"] and type(body) is StreamReader  # seen, and the watch let go
    assert await body.read(len(event)) == event  # the reader got every byte as usual


async def test_an_empty_text_is_no_token_and_anything_else_stops_the_watch() -> None:
    body, decoder = reader(), AnthropicStreamDecoder()
    decoder.feed(START + BLOCK)
    seen: list[str] = []
    assert watch_for_token(RelaySource(body, decoder), lambda: seen.append("token"))
    body.feed_data(text_delta(""))
    assert seen == [] and type(body) is not StreamReader  # still watching
    body.feed_data(PING + text_delta("late"))  # a ping: not understood, the watch stops
    assert seen == [] and type(body) is StreamReader


async def test_no_watch_mid_event_or_after_the_end() -> None:
    decoder = AnthropicStreamDecoder()
    decoder.feed(START + BLOCK[:20])
    assert decoder.token_spec() is None  # mid-event
    decoder.feed(BLOCK[20:] + sse("message_stop", {"type": "message_stop"}))
    assert decoder.token_spec() is None  # done


other_event = st.sampled_from(
    [
        PING,
        BLOCK,
        b": a comment\n\n",
        b"\n",
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"},
            },
        ),
        sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "x"}}),
        text_delta("sp aced").replace(b'":"', b'": "'),  # another spelling: not understood
        text_delta("bad \\q escape").replace(b"\\\\q", b"\\q"),  # invalid JSON escape
        sse("message_stop", {"type": "message_stop"}),
    ]
)
event = st.one_of(st.text(max_size=6).map(text_delta), other_event)


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=8), st.lists(st.integers(1, 40), max_size=12))
def test_the_watch_never_sees_a_token_the_decoder_would_not_produce(
    events: list[bytes], cuts: list[int]
) -> None:
    stream = START + BLOCK + b"".join(events)
    reads: list[bytes] = []
    at = 0
    for size in cuts:
        if at >= len(stream):
            break
        reads.append(stream[at : at + size])
        at += size
    if at < len(stream):
        reads.append(stream[at:])
    decoder = AnthropicStreamDecoder()
    watch: TokenWatch | None = None
    seen: list[str] = []
    fired_at: list[int] = []
    token_at: int | None = None
    for i, piece in enumerate(reads):
        if watch is not None and not fired_at:
            watch.on_data(piece)  # as the parser feeds the reader, before the decoder reads
            if seen:
                fired_at.append(i)
        if any(is_token(e) for e in decoder.feed(piece)) and token_at is None:
            token_at = i
        spec = decoder.token_spec() if token_at is None and watch is None else None
        if spec is not None:  # the attempt's task installs it after a batch without a token
            watch = TokenWatch(_Unhooked(), spec, lambda: seen.append("token"))
    if fired_at:
        assert token_at is not None and token_at <= fired_at[0]


class _Unhooked(StreamReader):
    """Stands for the response's reader: the watch only unhooks it (nothing to do here)."""

    def __init__(self) -> None:  # no loop needed: nothing is read from it
        pass
