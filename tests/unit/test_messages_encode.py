"""Messages door encoder: every event validates against the anthropic SDK's own types.

The bytes are read back with the SDK's SSE decoder, each event is validated with a
pydantic TypeAdapter over `RawMessageStreamEvent` (errors over `ErrorResponse`), and the
stream is folded with the SDK's `accumulate_event` (what `messages.stream()` runs), over
randomised upstream event sequences and batchings (Hypothesis).
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from anthropic._streaming import SSEDecoder
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types.shared import ErrorResponse
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from gateway.doors.messages_encode import (
    MessagesAssembler,
    MessagesStreamEncoder,
    error_body,
    error_status,
    error_type,
)
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)

STREAM_EVENT = TypeAdapter(RawMessageStreamEvent)
ERROR = TypeAdapter(ErrorResponse)
MESSAGE = TypeAdapter(Message)
OVERLOADED = UpstreamError(529, "overloaded_error", "Overloaded", retryable=True)


def decode(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = list(SSEDecoder().iter_bytes(iter([raw])))
    assert raw.endswith(b"\n\n")  # the last event is dispatched too
    out = []
    for sse in events:
        assert sse.event is not None, "the anthropic SDK drops events without an event: line"
        out.append((sse.event, sse.json()))
    return out


def check_stream(raw: bytes) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """Validate every event and the protocol's order; return the events and the SDK's
    accumulated message (None when the stream ended in an error)."""
    events = decode(raw)
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    open_block: int | None = None
    next_index = 0
    for position, (name, data) in enumerate(events):
        assert data["type"] == name
        if name == "ping":
            assert data == {"type": "ping"}
            continue
        if name == "error":
            ERROR.validate_python(data)
            assert position == len(events) - 1, "nothing follows an error"
            return events, None
        event = STREAM_EVENT.validate_python(data)
        if name == "content_block_start":
            assert open_block is None, "a block opens only after the previous one closed"
            assert data["index"] == next_index
            open_block, next_index = next_index, next_index + 1
        elif name == "content_block_stop":
            assert data["index"] == open_block
            open_block = None
        elif name == "content_block_delta":
            assert data["index"] < next_index
        elif name in ("message_delta", "message_stop"):
            assert open_block is None
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)
    assert events[-1][0] == "message_stop"
    MESSAGE.validate_python(snapshot.to_dict())
    return events, snapshot


def test_text_stream_shape() -> None:
    enc = MessagesStreamEncoder("msg_abc", 0, "chat")
    raw = enc.encode([TextDelta("Hel"), TextDelta("lo")]) + enc.encode(
        [Finish("stop"), Usage(prompt=12, completion=3, cached=2)]
    )
    raw += enc.end()
    events, message = check_stream(raw)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_abc" and start["model"] == "chat" and start["stop_reason"] is None
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "Hello"}  # one delta per run
    delta = events[4][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"] == {"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": 2}
    assert message.content[0].text == "Hello" and message.stop_reason == "end_turn"


def test_message_start_has_the_winners_prompt_count_or_the_estimate() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m", prompt_estimate=40)
    events, _ = check_stream(enc.encode([TextDelta("x")]) + enc.end())
    assert events[0][1]["message"]["usage"] == {"input_tokens": 40, "output_tokens": 0}
    enc = MessagesStreamEncoder("msg_1", 0, "m", prompt_estimate=40)
    events, _ = check_stream(enc.encode([Usage(prompt=52), TextDelta("x")]) + enc.end())
    assert events[0][1]["message"]["usage"] == {"input_tokens": 52, "output_tokens": 0}


def test_blocks_open_and_close_when_the_kind_changes() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    raw = enc.encode(
        [
            ReasoningDelta("think "),
            ReasoningDelta("more"),
            TextDelta("answer"),
            ToolCallDelta(0, "call_a", "get_weather", '{"city"'),
            ToolCallDelta(0, arguments=': "Oslo"}'),
            ToolCallDelta(1, "call_b", "get_time", ""),
            Finish("tool_calls"),
        ]
    )
    events, message = check_stream(raw + enc.end())
    starts = [d["content_block"] for n, d in events if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["thinking", "text", "tool_use", "tool_use"]
    assert starts[2]["id"] == "call_a" and starts[2]["name"] == "get_weather"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "think more"
    assert message.content[2].input == {"city": "Oslo"}
    assert message.content[3].input == {}  # no arguments: no delta, the start's {} stands
    assert message.stop_reason == "tool_use"


def test_a_signature_closes_its_thinking_block() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    events: list[Event] = [
        ReasoningDelta("a"),
        ReasoningSignature("sig-1"),
        ReasoningDelta("b"),
        ReasoningSignature("sig-2"),
        TextDelta("t"),
    ]
    _, message = check_stream(enc.encode(events) + enc.end())
    assert [(b.type, getattr(b, "signature", None)) for b in message.content] == [
        ("thinking", "sig-1"),
        ("thinking", "sig-2"),
        ("text", None),
    ]
    assembler = MessagesAssembler()
    assembler.add(events)
    body = assembler.build("msg_1", "m")
    assert [b.get("signature") for b in body["content"]] == ["sig-1", "sig-2", None]


def test_raw_text_from_openai_upstreams_is_framed_as_is() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    raw = enc.encode([TextDelta('a "q"\n', raw='a \\"q\\"\\n'), TextDelta("!", raw="!")])
    _events, message = check_stream(raw + enc.end())
    assert message.content[0].text == 'a "q"\n!'


def test_interleaved_tool_fragments_go_to_their_own_block() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    raw = enc.encode(
        [
            ToolCallDelta(0, "a", "f", '{"x":'),
            ToolCallDelta(1, "b", "g", '{"y":2}'),
            ToolCallDelta(0, arguments="1}"),
        ]
    )
    _events, message = check_stream(raw + enc.end())
    assert message.content[0].input == {"x": 1} and message.content[1].input == {"y": 2}


def test_error_mid_stream_is_one_error_event_and_the_end() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    raw = enc.encode([TextDelta("par"), OVERLOADED, TextDelta("never")])
    events, message = check_stream(raw + enc.end() + enc.encode([TextDelta("x")]))
    assert message is None
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )


def test_error_and_heartbeat_before_any_batch() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    raw = enc.heartbeat() + enc.heartbeat() + enc.error(OVERLOADED)
    events, _message = check_stream(raw)
    assert [n for n, _ in events] == ["ping", "ping", "error"]


def test_end_without_any_output_is_still_a_message() -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    _events, message = check_stream(enc.end())
    assert message.content == [] and message.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("finish", "reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use")],
)
def test_stop_reasons(finish: str, reason: str) -> None:
    enc = MessagesStreamEncoder("msg_1", 0, "m")
    raw = enc.encode([TextDelta("x"), Finish(finish)]) + enc.end()  # type: ignore[arg-type]
    assert check_stream(raw)[1].stop_reason == reason


@pytest.mark.parametrize(
    ("status", "type_", "expected"),
    [
        (400, "invalid_request_error", "invalid_request_error"),
        (401, "invalid_request_error", "authentication_error"),
        (403, "permission_error", "permission_error"),
        (404, "invalid_request_error", "not_found_error"),
        (413, "invalid_request_error", "invalid_request_error"),
        (415, "invalid_request_error", "invalid_request_error"),
        (429, "requests", "rate_limit_error"),
        (500, "server_error", "api_error"),
        (502, "upstream_error", "api_error"),
        (503, "overloaded_error", "overloaded_error"),
        (529, "overloaded_error", "overloaded_error"),
        (504, "timeout", "timeout_error"),
    ],
)
def test_error_body_types(status: int, type_: str, expected: str) -> None:
    body = error_body(status, "boom", type_, "code", "param")
    assert body == {"type": "error", "error": {"type": expected, "message": "boom"}}
    ERROR.validate_python(body)
    assert error_type(status) in (expected, "api_error")


def test_error_status_keeps_529_for_overload() -> None:
    assert error_status(503, "overloaded_error") == 529  # the race reports overload as 503
    assert error_status(503, "server_error") == 503
    assert error_status(0, "upstream_error") == 502  # a connection reset has no status


# --- randomised upstream streams --------------------------------------------------------

_text = st.text(min_size=0, max_size=6)
_value = st.one_of(st.integers(-(2**53), 2**53), st.text(max_size=5))
_args = st.dictionaries(st.text(min_size=1, max_size=4), _value, max_size=3)


@st.composite
def upstream_events(draw: st.DrawFn) -> list[Event]:
    """Text, reasoning and tool calls (each call's fragments in order, calls one after
    another as every upstream sends them), usage and finishes anywhere."""
    events: list[Event] = []
    tools = 0
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["text", "reasoning", "signature", "tool", "usage", "finish"]))
        if kind == "text":
            events.append(TextDelta(draw(_text)))
        elif kind == "reasoning":
            events.append(ReasoningDelta(draw(_text)))
        elif kind == "signature":
            events.append(ReasoningSignature(draw(st.text(min_size=1, max_size=8))))
        elif kind == "tool":
            args = orjson.dumps(draw(_args)).decode()
            cuts = sorted(draw(st.lists(st.integers(0, len(args)), max_size=3)))
            pieces = [args[a:b] for a, b in zip([0, *cuts], [*cuts, len(args)], strict=True)]
            call_id = draw(st.one_of(st.none(), st.just(f"call_{tools}")))
            events.append(ToolCallDelta(tools, call_id, f"fn{tools}", pieces[0]))
            events.extend(ToolCallDelta(tools, arguments=p) for p in pieces[1:])
            tools += 1
        elif kind == "usage":
            prompt = draw(st.integers(0, 1000))
            cached = draw(st.integers(0, prompt))
            events.append(Usage(prompt, draw(st.integers(0, 1000)), cached))
        else:
            events.append(Finish(draw(st.sampled_from(["stop", "length", "tool_calls"]))))
    return events


def batches(draw: st.DrawFn, events: list[Event]) -> list[list[Event]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(events)), max_size=6))))
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=300, deadline=None)
@given(st.data(), upstream_events(), st.sampled_from(["end", "error_in_batch", "error_call"]))
def test_any_upstream_stream_is_a_valid_anthropic_stream(
    data: st.DataObject, events: list[Event], ending: str
) -> None:
    enc = MessagesStreamEncoder("msg_0123456789abcdef", 0, "chat")
    parts = batches(data.draw, events)
    if ending == "error_in_batch":
        parts[-1] = [*parts[-1], OVERLOADED]
    raw = b"".join(enc.encode(batch) for batch in parts)
    raw += enc.error(OVERLOADED) if ending == "error_call" else enc.end()
    _, message = check_stream(raw)
    if ending != "end":
        return
    text = [e.text for e in events if type(e) is TextDelta]
    thinking = [e.text for e in events if type(e) is ReasoningDelta]
    blocks = message.content
    assert "".join(b.text for b in blocks if b.type == "text") == "".join(text)
    assert "".join(b.thinking for b in blocks if b.type == "thinking") == "".join(thinking)
    calls = [b for b in blocks if b.type == "tool_use"]
    expected = {}
    for e in events:
        if type(e) is ToolCallDelta:
            expected[e.index] = expected.get(e.index, "") + e.arguments
    assert [c.input for c in calls] == [orjson.loads(a) for _, a in sorted(expected.items())]
    assert all(c.id for c in calls)
    assembled = MessagesAssembler()
    for batch in parts:
        assembled.add(batch)
    body = MESSAGE.validate_python(assembled.build("msg_0123456789abcdef", "chat"))
    # the non-stream body holds the same blocks as the stream
    assert [b.to_dict() for b in body.content] == [b.to_dict() for b in blocks]
    assert body.stop_reason == message.stop_reason
    assert body.usage.output_tokens == message.usage.output_tokens


def test_assembler_message_and_error() -> None:
    assembler = MessagesAssembler()
    assembler.add([TextDelta("hi"), Finish("length"), Usage(5, 2)])
    body = assembler.build("msg_1", "chat")
    MESSAGE.validate_python(body)
    assert body["content"] == [{"type": "text", "text": "hi"}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"] == {"input_tokens": 5, "output_tokens": 2}
    assembler.add([OVERLOADED, TextDelta("late")])
    assert assembler.error is OVERLOADED


def test_assembler_keeps_arguments_that_are_not_an_object() -> None:
    assembler = MessagesAssembler()
    assembler.add([ToolCallDelta(0, None, "f", "not json")])
    body = assembler.build("msg_1", "chat")
    MESSAGE.validate_python(body)
    assert body["content"][0]["input"] == {"_arguments": "not json"}
    assert body["content"][0]["id"].startswith("toolu_")
