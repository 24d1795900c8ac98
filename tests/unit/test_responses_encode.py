"""The Responses encoder: every event it emits validates against the openai SDK's own types
(ResponseStreamEvent, Response), the SDK's `responses.stream()` state machine accepts the
whole sequence, and the text / arguments / usage it carries are the upstream's, over
randomised upstream streams cut into arbitrary batches."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.config.model import LimitsConfig
from gateway.doors.responses_encode import ResponsesAssembler, ResponsesStreamEncoder
from gateway.doors.responses_object import error_body
from gateway.doors.responses_parse import ResponsesContext, parse_responses_request
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)

EVENT = TypeAdapter(ResponseStreamEvent)
RID = "resp_0123456789abcdef"
TOOLS = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


def context(**fields: Any) -> ResponsesContext:
    body = {"model": "chat", "input": "hi", **fields}
    return parse_responses_request(orjson.dumps(body), {}, LimitsConfig())[1]


def frames(data: bytes) -> list[Any]:
    """Parse SSE bytes into SDK event models, checking the framing on the way."""
    assert data.endswith(b"\n\n")
    events = []
    for block in data[:-2].split(b"\n\n"):
        name, payload = block.split(b"\n")
        assert name.startswith(b"event: ") and payload.startswith(b"data: ")
        event = EVENT.validate_json(payload[6:])
        assert event.type == name[7:].decode()
        events.append(event)
    return events


def sdk_accepts(events: list[Any]) -> ResponseStreamState[Any]:
    """Run the events through the state machine of `responses.stream()`; the text it
    accumulates per item must be the text each item ends with."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=TOOLS, text_format=omit)
    snapshots: dict[str, str] = {}
    for event in events:
        for seen in state.handle_event(event):
            if seen.type == "response.output_text.delta":
                snapshots[seen.item_id] = seen.snapshot
    for event in events:
        if event.type == "response.output_text.done":
            assert snapshots.get(event.item_id, "") == event.text
    return state


# -- randomised upstream streams ----------------------------------------------------------

texts = st.text(min_size=0, max_size=6)


@st.composite
def text_delta(draw: st.DrawFn) -> TextDelta:
    text = draw(texts)
    if draw(st.booleans()):  # cut from an OpenAI-shaped chunk: escaped body alongside
        return TextDelta(text, raw=orjson.dumps(text)[1:-1].decode())
    return TextDelta(text)


@st.composite
def upstream(draw: st.DrawFn) -> list[Event]:
    """A plausible event sequence: reasoning, text, tool calls (first fragment per index
    names the call), anywhere usage and meta, at most one finish at the end."""
    pieces = st.one_of(
        text_delta(),
        st.builds(ReasoningDelta, texts),
        st.tuples(st.integers(0, 2), st.text(max_size=5)),
        st.builds(Usage, *(st.integers(0, 10_000) for _ in range(4))),
        st.just(ResponseMeta(model="x-1")),
    )
    events: list[Event] = []
    named: set[int] = set()
    for piece in draw(st.lists(pieces, min_size=1, max_size=25)):
        if isinstance(piece, tuple):
            index, arguments = piece
            if index in named:
                events.append(ToolCallDelta(index, arguments=arguments))
            else:
                named.add(index)
                call_id = draw(st.sampled_from([None, f"call_{index}"]))
                events.append(ToolCallDelta(index, call_id, "get_weather", arguments))
        else:
            events.append(piece)
    finish = draw(st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"]))
    if finish is not None:
        events.append(Finish(finish))
    return events


@st.composite
def batches(draw: st.DrawFn) -> list[list[Event]]:
    events = draw(upstream())
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(events) - 1)), max_size=6)))
    bounds = [0, *[c for c in cuts if c < len(events)], len(events)]
    return [events[a:b] for a, b in itertools.pairwise(bounds) if b > a]


ERROR = UpstreamError(502, "server_error", "upstream went away", retryable=True)


@settings(max_examples=300, deadline=None)
@given(batches(), st.sampled_from(["end", "error", "error_in_batch"]))
def test_every_event_validates_and_the_sdk_accepts_the_stream(
    parts: list[list[Event]], ending: str
) -> None:
    encoder = ResponsesStreamEncoder(RID, 1_700_000_000, "chat", context(tools=TOOLS))
    data = b"".join(encoder.encode(batch) for batch in parts)
    if ending == "end":
        data += encoder.end()
    elif ending == "error":
        data += encoder.error(ERROR)
    else:
        data += encoder.encode([ERROR])
    assert encoder.end() == b"" and encoder.error(ERROR) == b""  # closed stays closed
    events = frames(data)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    flat = [e for batch in parts for e in batch]
    finish = next((e.reason for e in flat if isinstance(e, Finish)), None)
    final = events[-1]
    state = sdk_accepts(events)
    if ending != "end":
        assert [e.type for e in events[-2:]] == ["error", "response.failed"]
        assert final.response.error.message == "upstream went away"
        return
    incomplete = finish in ("length", "content_filter")
    assert final.type == ("response.incomplete" if incomplete else "response.completed")
    response = Response.model_validate(encoder.response)
    assert response.id == RID and response.status == final.response.status
    text = "".join(e.text for e in flat if isinstance(e, TextDelta))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert response.output_text == deltas == text
    reasoning = "".join(e.text for e in flat if isinstance(e, ReasoningDelta))
    said = [c.text for i in response.output if i.type == "reasoning" for c in i.content or []]
    assert "".join(said) == reasoning
    calls = {i.call_id: i.arguments for i in response.output if i.type == "function_call"}
    expected: dict[int, str] = {}
    for e in flat:
        if isinstance(e, ToolCallDelta):
            expected[e.index] = expected.get(e.index, "") + e.arguments
    assert sorted(calls.values()) == sorted(expected.values())
    usage = next((e for e in reversed(flat) if isinstance(e, Usage)), Usage())
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        usage.prompt,
        usage.completion,
    )
    assert response.usage.total_tokens == usage.prompt + usage.completion
    assert response.usage.input_tokens_details.cached_tokens == usage.cached
    assert response.usage.output_tokens_details.reasoning_tokens == usage.reasoning
    if not incomplete:
        completed = state._completed_response
        assert completed is not None and completed.output_text == text
    added = [e.output_index for e in events if e.type == "response.output_item.added"]
    done = [e.output_index for e in events if e.type == "response.output_item.done"]
    assert sorted(added) == sorted(done) == list(range(len(response.output)))


@settings(max_examples=150, deadline=None)
@given(batches())
def test_non_stream_body_is_the_streams_final_response(parts: list[list[Event]]) -> None:
    ctx = context(tools=TOOLS)
    encoder = ResponsesStreamEncoder(RID, 5, "chat", ctx)
    for batch in parts:
        encoder.encode(batch)
    encoder.end()
    assembler = ResponsesAssembler(RID, 5, "chat", ctx)
    for batch in parts:
        assembler.add(batch)
    body = assembler.build()
    assert assembler.error is None
    Response.model_validate(body)
    assert body == encoder.response


def test_text_stream_shape() -> None:
    encoder = ResponsesStreamEncoder(RID, 5, "chat", context(instructions="be brief"))
    data = encoder.encode([TextDelta("Hel")]) + encoder.encode([TextDelta("lo"), Usage(3, 2)])
    data += encoder.end()
    events = frames(data)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2].item.content == []  # the part comes with content_part.added
    completed = events[-1].response
    assert completed.output_text == "Hello" and completed.instructions == "be brief"
    assert completed.usage.total_tokens == 5
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {completed.output[0].id}


def test_reasoning_then_text_then_tool_are_three_items_in_order() -> None:
    encoder = ResponsesStreamEncoder(RID, 5, "chat", context(tools=TOOLS))
    encoder.encode([ReasoningDelta("think"), TextDelta("ok"), ToolCallDelta(0, None, "f", "{}")])
    encoder.end()
    assert encoder.response is not None
    output = encoder.response["output"]
    assert [i["type"] for i in output] == ["reasoning", "message", "function_call"]
    assert output[2]["call_id"].startswith("call_") and output[2]["arguments"] == "{}"
    assert all(i["status"] == "completed" for i in output)


def test_length_finish_is_incomplete() -> None:
    encoder = ResponsesStreamEncoder(RID, 5, "chat", context(max_output_tokens=2))
    events = frames(encoder.encode([TextDelta("a b"), Finish("length")]) + encoder.end())
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.output[0].status == "incomplete"


def test_error_before_any_batch_still_opens_the_response() -> None:
    encoder = ResponsesStreamEncoder(RID, 5, "chat", context())
    limited = UpstreamError(
        429, "requests", "slow down", retryable=True, code="rate_limit_exceeded"
    )
    events = frames(encoder.error(limited))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]
    assert events[2].code == "rate_limit_exceeded"
    assert events[3].response.error.code == "rate_limit_exceeded"
    sdk_accepts(events)


def test_raw_text_is_framed_without_reencoding() -> None:
    encoder = ResponsesStreamEncoder(RID, 5, "chat", context())
    data = encoder.encode([TextDelta('say "hi"\n', raw='say \\"hi\\"\\n')])
    delta = next(e for e in frames(data) if e.type == "response.output_text.delta")
    assert delta.delta == 'say "hi"\n'


def test_assembler_stops_at_an_error() -> None:
    assembler = ResponsesAssembler(RID, 5, "chat", context())
    assembler.add([TextDelta("partial"), ERROR, TextDelta("never")])
    assembler.add([TextDelta("never")])
    assert assembler.error is ERROR


def test_echo_of_the_request_validates() -> None:
    ctx = context(
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        reasoning={"effort": "low"},
        metadata={"k": "v"},
        temperature=0.2,
        top_p=0.5,
        user="u",
        store=True,
        previous_response_id="resp_prev",
    )
    assembler = ResponsesAssembler(RID, 5, "chat", ctx)
    assembler.add([TextDelta("{}")])
    response = Response.model_validate(assembler.build())
    assert response.previous_response_id == "resp_prev" and response.metadata == {"k": "v"}
    assert response.tools[0].name == "get_weather" and response.reasoning is not None
    assert response.reasoning.effort == "low"


def test_error_body_is_the_openai_envelope() -> None:
    assert error_body(404, "no such response", "invalid_request_error", None, "id") == {
        "error": {
            "message": "no such response",
            "type": "invalid_request_error",
            "param": "id",
            "code": None,
        }
    }
