from __future__ import annotations

import dataclasses
import itertools
import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.streaming.lines import LineTooLong
from gateway.streaming.sse import EventTooLarge, SSEDecoder, SSEEvent


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def decode(chunks: list[bytes], flush: bool = False, **limits: int) -> list[SSEEvent]:
    dec = SSEDecoder(**limits)
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    out.extend(dec.close(flush_incomplete=flush))
    return out


def decode_all_ways(data: bytes, flush: bool = False) -> list[SSEEvent]:
    """Decode whole and byte by byte; both must agree."""
    whole = decode([data], flush)
    assert decode(bytewise(data), flush) == whole
    return whole


# --- examples from wire-formats.md -------------------------------------------------

OPENAI = (
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":"",'
    b'"refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-x","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,'
    b'"finish_reason":null}],"usage":null}\n\n'
    b": keep-alive\n\n"
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
    b'"model":"gpt-x","choices":[{"index":0,"delta":{},"logprobs":null,'
    b'"finish_reason":"stop"}],"usage":null}\n\n'
    b"data: [DONE]\n\n"
)

ANTHROPIC = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_01","type":"message",'
    b'"role":"assistant","content":[],"model":"claude-x","stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b"event: ping\n"
    b'data: {"type":"ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b"event: message_stop\n"
    b'data: {"type":"message_stop"}\n\n'
)

GEMINI = (
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]},"index":0}],'
    b'"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"totalTokenCount":6},'
    b'"modelVersion":"gemini-x","responseId":"r1"}\r\n\r\n'
    b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"lo"}]},'
    b'"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,'
    b'"candidatesTokenCount":2,"totalTokenCount":7},"modelVersion":"gemini-x","responseId":"r1"}'
    b"\r\n\r\n"
)


def test_openai_style() -> None:
    dec = SSEDecoder()
    events = dec.feed(OPENAI) + dec.close()
    assert [e.event for e in events] == ["", "", "", ""]
    assert events[-1].data == "[DONE]"
    assert orjson.loads(events[1].data)["choices"][0]["delta"] == {"content": "Hi"}
    assert all(e.id is None and e.retry is None for e in events)
    assert dec.comments_seen == 1
    assert decode_all_ways(OPENAI) == events


def test_anthropic_style() -> None:
    events = decode_all_ways(ANTHROPIC)
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "message_stop",
    ]
    assert [orjson.loads(e.data)["type"] for e in events] == [e.event for e in events]


def test_gemini_crlf_style() -> None:
    events = decode_all_ways(GEMINI)
    texts = [orjson.loads(e.data)["candidates"][0]["content"]["parts"][0]["text"] for e in events]
    assert texts == ["Hel", "lo"]


def test_gemini_without_final_blank_line_needs_flush() -> None:
    truncated = GEMINI.removesuffix(b"\r\n\r\n")
    assert len(decode_all_ways(truncated)) == 1  # spec: incomplete event discarded
    assert len(decode_all_ways(truncated, flush=True)) == 2
    assert len(decode_all_ways(truncated + b"\r\n", flush=True)) == 2
    assert len(decode_all_ways(truncated + b"\r\n", flush=False)) == 1


# --- line endings ------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_all_line_endings(eol: bytes) -> None:
    data = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode_all_ways(data) == [SSEEvent("e", "a\nb"), SSEEvent("", "c")]


def test_crlf_split_across_feeds_is_one_line_ending() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    # If the split CRLF produced an extra blank line, "a" would dispatch alone.
    assert dec.feed(b"\ndata: b\r") == []
    assert dec.feed(b"\n\r") == [SSEEvent("", "a\nb")]
    assert dec.feed(b"\n") == []
    assert dec.close() == []


# --- BOM ---------------------------------------------------------------------------


def test_bom_stripped_at_start() -> None:
    assert decode_all_ways(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent("", "x")]


def test_bom_split_across_feeds() -> None:
    chunks = [b"\xef", b"\xbb", b"\xbf", b"data: x\n\n"]
    assert decode(chunks) == [SSEEvent("", "x")]


def test_bom_only_at_stream_start() -> None:
    # A later BOM makes the field name "\ufeffdata", an unknown field.
    assert decode_all_ways(b"data: x\n\n\xef\xbb\xbfdata: y\n\n") == [SSEEvent("", "x")]
    assert decode_all_ways(b"\xef\xbb\xbf\xef\xbb\xbfdata: y\n\n") == []


def test_bom_then_blank_line_then_event() -> None:
    assert decode_all_ways(b"\xef\xbb\xbf\ndata: x\n\n") == [SSEEvent("", "x")]


# --- fields ------------------------------------------------------------------------


def test_multiline_data_joined_with_lf() -> None:
    assert decode_all_ways(b"data: a\ndata:\ndata:  b\n\n") == [SSEEvent("", "a\n\n b")]


def test_one_optional_space_stripped() -> None:
    assert decode_all_ways(b"data:x\n\ndata: x\n\ndata:  x\n\n") == [
        SSEEvent("", "x"),
        SSEEvent("", "x"),
        SSEEvent("", " x"),
    ]


def test_value_may_contain_colons() -> None:
    assert decode_all_ways(b"data: a: b:c\n\n") == [SSEEvent("", "a: b:c")]


def test_field_without_colon_has_empty_value() -> None:
    assert decode_all_ways(b"data\n\n") == [SSEEvent("", "")]
    assert decode_all_ways(b"event: e\nevent\ndata: x\n\n") == [SSEEvent("", "x")]


def test_empty_data_line_dispatches_empty_event() -> None:
    assert decode_all_ways(b"data:\n\n") == [SSEEvent("", "")]


def test_event_without_data_not_dispatched_and_name_reset() -> None:
    assert decode_all_ways(b"event: ping\n\ndata: x\n\n") == [SSEEvent("", "x")]


def test_extra_blank_lines_dispatch_nothing() -> None:
    assert decode_all_ways(b"\n\n\r\n\rdata: x\n\n\n\n") == [SSEEvent("", "x")]


def test_unknown_fields_ignored() -> None:
    assert decode_all_ways(b"foo: bar\nDATA: no\ndata: x\n\n") == [SSEEvent("", "x")]


def test_comments_ignored_and_counted() -> None:
    dec = SSEDecoder()
    data = b": hi\ndata: a\n:\n: OPENROUTER PROCESSING\ndata: b\n\n: keep-alive\n\n"
    assert dec.feed(data) == [SSEEvent("", "a\nb")]
    assert dec.comments_seen == 4
    assert dec.close() == []


def test_id_persists_and_nul_ignored() -> None:
    data = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x00\ndata: c\n\nid\ndata: d\n\n"
    assert decode_all_ways(data) == [
        SSEEvent("", "a", id="1"),
        SSEEvent("", "b", id="1"),
        SSEEvent("", "c", id="1"),
        SSEEvent("", "d", id=""),
    ]


def test_id_in_undispatched_block_still_counts() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 7\n\ndata: x\n\n") == [SSEEvent("", "x", id="7")]
    assert dec.last_event_id == "7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"1500", 1500), (b"0", 0), (b"", None), (b"-1", None), (b"+1", None), (b"1.5", None),
     (b"1 ", None), (b"1_0", None), ("\u0661".encode(), None)],
)  # fmt: skip
def test_retry_only_ascii_digits(value: bytes, expected: int | None) -> None:
    dec = SSEDecoder()
    events = dec.feed(b"retry: " + value + b"\ndata: x\n\ndata: y\n\n")
    assert events == [SSEEvent("", "x", retry=expected), SSEEvent("", "y")]
    assert dec.reconnection_time == expected


def test_invalid_utf8_replaced_and_split_multibyte_ok() -> None:
    assert decode_all_ways(b"data: a\xffb\n\n") == [SSEEvent("", "a\ufffdb")]
    assert decode([b"data: caf\xc3", b"\xa9\n\n"]) == [SSEEvent("", "caf\u00e9")]
    assert decode_all_ways("event: \u00e9v\ndata: \u2603\n\n".encode()) == [
        SSEEvent("\u00e9v", "\u2603")
    ]


# --- EOF ---------------------------------------------------------------------------


def test_incomplete_event_discarded_by_default() -> None:
    assert decode_all_ways(b"data: a\n\ndata: b\n") == [SSEEvent("", "a")]
    assert decode_all_ways(b"data: a\n\ndata: b") == [SSEEvent("", "a")]


def test_flush_incomplete() -> None:
    assert decode_all_ways(b"data: a\n\ndata: b\n", flush=True) == [
        SSEEvent("", "a"),
        SSEEvent("", "b"),
    ]
    assert decode_all_ways(b"event: e\ndata: b", flush=True) == [SSEEvent("e", "b")]
    assert decode_all_ways(b"event: e\n", flush=True) == []  # no data: nothing to flush
    assert decode_all_ways(b"", flush=True) == []


def test_feed_after_close_raises() -> None:
    dec = SSEDecoder()
    dec.close()
    with pytest.raises(RuntimeError):
        dec.feed(b"data: x\n\n")


# --- limits ------------------------------------------------------------------------


def test_line_too_long() -> None:
    dec = SSEDecoder(max_line_bytes=16)
    assert dec.feed(b"data: short\n\n") == [SSEEvent("", "short")]
    with pytest.raises(LineTooLong, match="max_line_bytes=16"):
        dec.feed(b"data: " + b"x" * 20)


def test_event_too_large() -> None:
    dec = SSEDecoder(max_event_bytes=10)
    assert dec.feed(b"data: 12345\ndata: 1234\n\n") == [SSEEvent("", "12345\n1234")]  # 10 bytes
    with pytest.raises(EventTooLarge, match="max_event_bytes=10") as info:
        dec.feed(b"data: 12345\ndata: 12345\n\n")
    assert isinstance(info.value, ValueError)
    assert info.value.size == 11


def test_invalid_limits_rejected() -> None:
    with pytest.raises(ValueError, match="max_event_bytes"):
        SSEDecoder(max_event_bytes=0)
    with pytest.raises(ValueError, match="max_line_bytes"):
        SSEDecoder(max_line_bytes=0)


def test_event_is_a_slotted_value() -> None:
    """Read-only for the type checker (`value_class`; test_value_class.py shows it), slots,
    equal and hashed by its fields."""
    event = SSEEvent("e", "d")
    assert not hasattr(event, "__dict__")
    assert event == SSEEvent("e", "d") and hash(event) == hash(SSEEvent("e", "d"))
    assert dataclasses.replace(event, data="x") == SSEEvent("e", "x")


# --- properties --------------------------------------------------------------------

line_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]))
id_text = st.text(st.characters(exclude_characters="\r\n\x00", exclude_categories=["Cs"]))
comment = st.builds(lambda t: ":" + t, line_text)
event_spec = st.tuples(
    st.one_of(st.none(), line_text),  # event name
    st.lists(st.tuples(line_text, st.booleans()), min_size=0, max_size=3),  # data, space?
    st.one_of(st.none(), id_text),  # id
    st.one_of(st.none(), st.integers(0, 10**12)),  # retry
    st.lists(comment, max_size=2),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent], int]:
    """A random valid stream, the events a spec decoder yields, and its comment count."""
    eol = draw(st.sampled_from(["\n", "\r", "\r\n"]))
    lines: list[str] = []
    expected: list[SSEEvent] = []
    last_id: str | None = None
    n_comments = 0
    for name, datas, ev_id, retry, comments in draw(st.lists(event_spec, max_size=6)):
        body: list[str] = []
        if name is not None:
            body.append(f"event: {name}")
        if ev_id is not None:
            body.append(f"id: {ev_id}")
            last_id = ev_id
        if retry is not None:
            body.append(f"retry: {retry}")
        for value, space in datas:
            body.append(f"data: {value}" if space or value.startswith(" ") else f"data:{value}")
        for c in comments:  # comments may sit anywhere inside the block
            body.insert(draw(st.integers(0, len(body))), c)
        n_comments += len(comments)
        lines.extend(body)
        lines.append("")
        if datas:
            data = "\n".join(v for v, _ in datas)
            expected.append(SSEEvent(name or "", data, last_id, retry))
    text = "".join(line + eol for line in lines)
    bom = b"\xef\xbb\xbf" if draw(st.booleans()) else b""
    return bom + text.encode(), expected, n_comments


@given(stream=sse_streams(), points=st.lists(st.integers(min_value=0), max_size=30))
def test_model_any_split(stream: tuple[bytes, list[SSEEvent], int], points: list[int]) -> None:
    data, expected, n_comments = stream
    for chunks in ([data], split_at(data, points), bytewise(data)):
        dec = SSEDecoder()
        events = [e for chunk in chunks for e in dec.feed(chunk)]
        assert events + dec.close() == expected
        assert dec.comments_seen == n_comments


sse_noise = st.lists(
    st.sampled_from(
        [b"data:", b"data: x", b"event: e", b"event", b":c", b"id: 1", b"id: \x00",
         b"retry: 5", b"retry: x", b"\r", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xff", b"\xc3",
         b"\xa9", b" ", b":"]
    )
).map(b"".join)  # fmt: skip


@given(data=sse_noise, points=st.lists(st.integers(min_value=0), max_size=30), flush=st.booleans())
def test_arbitrary_bytes_any_split_same_result(data: bytes, points: list[int], flush: bool) -> None:
    def observe(chunks: list[bytes]) -> tuple[object, ...]:
        dec = SSEDecoder()
        events = [e for chunk in chunks for e in dec.feed(chunk)]
        events += dec.close(flush_incomplete=flush)
        return events, dec.comments_seen, dec.last_event_id, dec.reconnection_time

    whole = observe([data])
    assert observe(split_at(data, points)) == whole
    assert observe(bytewise(data)) == whole


def reference_decode(data: bytes) -> list[SSEEvent]:
    """A slow, literal transcription of the WHATWG algorithm, used as an oracle."""
    text = data.decode("utf-8", "replace").removeprefix("\ufeff")
    *lines, _tail = re.split("\r\n|\r|\n", text)  # an unterminated tail is discarded
    events: list[SSEEvent] = []
    event, buf, last_id, retry = "", "", None, None
    for line in lines:
        if line == "":
            if buf:
                events.append(SSEEvent(event, buf.removesuffix("\n"), last_id, retry))
            event, buf, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            buf += value + "\n"
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


@given(data=sse_noise, points=st.lists(st.integers(min_value=0), max_size=30))
def test_matches_reference_algorithm(data: bytes, points: list[int]) -> None:
    expected = reference_decode(data)
    assert decode([data]) == expected
    assert decode(split_at(data, points)) == expected


data_events = st.lists(
    st.sampled_from(
        [b"data: {\"a\":1}\n\n", b"data: x\n\n", b"data:  two spaces\n\n", b"data: \xc3\xa9\n\n",
         b"data: \xff\n\n", b"data: [DONE]\n\n", b"data: a\ndata: b\n\n", b": comment\n\n",
         b"event: e\ndata: y\n\n", b"data: crlf\r\n\r\n", b"\n", b"data: z\n", b"id: 7\n"]
    ),
    max_size=8,
).map(b"".join)  # fmt: skip


@given(
    data=data_events | sse_noise,
    points=st.lists(st.integers(min_value=0), max_size=10),
    flush=st.booleans(),
)
def test_feed_data_is_the_data_of_feed(data: bytes, points: list[int], flush: bool) -> None:
    """The shortcut for whole `data:` events gives what the line-by-line decoder gives."""
    for chunks in ([data], split_at(data, points)):
        slow, fast = SSEDecoder(), SSEDecoder()
        expected = [e.data for chunk in chunks for e in slow.feed(chunk)]
        got = [d for chunk in chunks for d in fast.feed_data(chunk)]
        assert got == expected
        tail = [e.data for e in fast.close(flush_incomplete=flush)]
        assert tail == [e.data for e in slow.close(flush_incomplete=flush)]


def test_feed_data_limits_hold_on_the_shortcut() -> None:
    with pytest.raises(EventTooLarge):
        SSEDecoder(max_event_bytes=8).feed_data(b"data: 0123456789\n\n")
    with pytest.raises(LineTooLong):
        SSEDecoder(max_line_bytes=8).feed_data(b"data: 0123456789\n\n")
