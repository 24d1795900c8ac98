"""Anthropic Messages adapter: request mapping, stream decoding (byte by byte), errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.providers.anthropic import AnthropicProvider, register_kinds
from gateway.providers.base import ProviderSettings, TargetModel, UnsupportedParams
from gateway.request import ChatRequest
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
    first_token_index,
    is_token,
)

SETTINGS = ProviderSettings(
    name="anthropic-main", kind="anthropic", base_url="https://api.anthropic.com/", api_key="sk-x"
)
TARGET = TargetModel(model="claude-x", max_tokens_default=1000)
PROVIDER = AnthropicProvider(SETTINGS)


def request(messages: list[dict[str, Any]] | None = None, **params: Any) -> ChatRequest:
    extra = params.pop("extra", {})
    return ChatRequest(
        model="chat",
        messages=messages or [{"role": "user", "content": "Hi"}],
        stream=True,
        params=params,
        extra=extra,
    )


def body_of(req: ChatRequest, target: TargetModel = TARGET) -> dict[str, Any]:
    return orjson.loads(PROVIDER.build_request(req, target).body)


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
        for name, data in events
    )


def block_start(index: int, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = "content_block_start"
    return name, {"type": name, "index": index, "content_block": block}


def block_delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> tuple[str, dict[str, Any]]:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def text(index: int, value: str) -> tuple[str, dict[str, Any]]:
    return block_delta(index, {"type": "text_delta", "text": value})


def json_part(index: int, value: str) -> tuple[str, dict[str, Any]]:
    return block_delta(index, {"type": "input_json_delta", "partial_json": value})


def tool_start(index: int, call_id: str, name: str) -> tuple[str, dict[str, Any]]:
    return block_start(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})


def message_delta(stop_reason: str | None, **usage: int) -> tuple[str, dict[str, Any]]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}


TEXT_START = block_start(0, {"type": "text", "text": ""})
MESSAGE_STOP = ("message_stop", {"type": "message_stop"})


def decode(data: bytes, bytewise: bool) -> list[Event]:
    decoder = PROVIDER.decoder()
    events: list[Event] = []
    if bytewise:
        for i in range(len(data)):
            events += decoder.feed(data[i : i + 1])
    else:
        events += decoder.feed(data)
    return events + decoder.close()


# --- request mapping -------------------------------------------------------------


def test_url_headers_and_basics() -> None:
    upstream = PROVIDER.build_request(request(), TARGET)
    assert upstream.method == "POST"
    assert upstream.url == "https://api.anthropic.com/v1/messages"
    assert upstream.headers["x-api-key"] == "sk-x"
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    assert upstream.headers["content-type"] == "application/json"
    assert upstream.headers["accept"] == "text/event-stream"
    body = orjson.loads(upstream.body)
    assert body == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 1000,
        "stream": True,
    }
    assert "sk-x" not in repr(PROVIDER)


def test_version_override_and_v1_base_url() -> None:
    settings = ProviderSettings(
        name="a",
        kind="anthropic",
        base_url="https://proxy.example/v1",
        options={"anthropic_version": "2099-01-01", "anthropic_beta": ["b1", "b2"]},
    )
    upstream = AnthropicProvider(settings).build_request(request(), TARGET)
    assert upstream.url == "https://proxy.example/v1/messages"
    assert upstream.headers["anthropic-version"] == "2099-01-01"
    assert upstream.headers["anthropic-beta"] == "b1,b2"
    assert "x-api-key" not in upstream.headers


def test_system_developer_and_merging() -> None:
    body = body_of(
        request(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "c"},
                {"role": "assistant", "content": "d"},
            ]
        )
    )
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "No emoji."},
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}],
        },
    ]


def test_max_tokens_from_request() -> None:
    assert body_of(request(max_tokens=50))["max_tokens"] == 50
    assert body_of(request(max_completion_tokens=70, max_tokens=50))["max_tokens"] == 70


def test_images() -> None:
    body = body_of(
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                    ],
                }
            ]
        )
    )
    assert body["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]


def test_tools_and_tool_choice() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    body = body_of(request(tools=tools, tool_choice="auto"))
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert body["tool_choice"] == {"type": "auto"}
    assert body_of(request(tools=tools, tool_choice="required"))["tool_choice"] == {"type": "any"}
    assert body_of(request(tools=tools, tool_choice="none"))["tool_choice"] == {"type": "none"}
    named = {"type": "function", "function": {"name": "now"}}
    assert body_of(request(tools=tools, tool_choice=named))["tool_choice"] == {
        "type": "tool",
        "name": "now",
    }
    assert body_of(request(tools=tools, parallel_tool_calls=False))["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    assert body_of(request(tools=tools, tool_choice="required", parallel_tool_calls=False))[
        "tool_choice"
    ] == {"type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in body_of(request(tools=tools))


def test_tool_calls_and_results() -> None:
    body = body_of(
        request(
            [
                {"role": "user", "content": "Weather in Oslo and Rome?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "12C"},
                {
                    "role": "tool",
                    "tool_call_id": "toolu_2",
                    "content": [{"type": "text", "text": "20C"}],
                },
                {"role": "user", "content": "Thanks"},
            ]
        )
    )
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {}},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12C"},
            {
                "type": "tool_result",
                "tool_use_id": "toolu_2",
                "content": [{"type": "text", "text": "20C"}],
            },
            {"type": "text", "text": "Thanks"},
        ],
    }
    assert len(body["messages"]) == 3


def test_tool_result_blocks_lead_the_user_turn() -> None:
    body = body_of(
        request(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t1", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "user", "content": "also this"},
                {"role": "tool", "tool_call_id": "t1", "content": "r"},
            ]
        )
    )
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]


def test_invalid_tool_arguments_are_rejected_even_with_drop_params() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{"}}],
        },
    ]
    with pytest.raises(UnsupportedParams):
        body_of(request(messages), TargetModel(model="m", drop_params=True))


def test_sampling_stop_and_user() -> None:
    body = body_of(request(temperature=0.3, top_p=0.9, stop="END", user="u-1"))
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body_of(request(stop=["a", "b"]))["stop_sequences"] == ["a", "b"]


def test_temperature_above_one_is_rejected_not_clamped() -> None:
    with pytest.raises(UnsupportedParams) as info:
        body_of(request(temperature=1.5))
    assert info.value.params == ["temperature>1"]
    assert info.value.provider == "anthropic-main"
    dropped = body_of(request(temperature=1.5), TargetModel(model="m", drop_params=True))
    assert "temperature" not in dropped
    assert body_of(request(temperature=1))["temperature"] == 1


@pytest.mark.parametrize(
    ("effort", "budget", "max_tokens"),
    [("low", 1024, 2000), ("medium", 4096, 6096), ("high", 16384, 18384)],
)
def test_reasoning_effort_to_thinking(effort: str, budget: int, max_tokens: int) -> None:
    body = body_of(request(reasoning_effort=effort, max_tokens=2000))
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == max_tokens
    assert body["max_tokens"] > budget


def test_reasoning_effort_none_and_thinking_constraints() -> None:
    assert "thinking" not in body_of(request(reasoning_effort="none"))
    with pytest.raises(UnsupportedParams):
        body_of(request(reasoning_effort="high", temperature=0.2))
    body = body_of(
        request(reasoning_effort="high", temperature=0.2), TargetModel(model="m", drop_params=True)
    )
    assert "temperature" not in body
    assert body["thinking"]["type"] == "enabled"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"n": 2}, "n"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"seed": 7}, "seed"),
        ({"response_format": {"type": "json_object"}}, "response_format=json_object"),
        ({"extra": {"foo_bar": 1}}, "foo_bar"),
    ],
)
def test_unsupported_params(params: dict[str, Any], name: str) -> None:
    with pytest.raises(UnsupportedParams) as info:
        body_of(request(**params))
    assert name in info.value.params
    body = body_of(request(**params), TargetModel(model="m", drop_params=True))
    assert set(body) == {"model", "messages", "max_tokens", "stream"}


def test_neutral_values_and_native_extras_pass() -> None:
    body = body_of(
        request(n=1, presence_penalty=0, logprobs=False, extra={"top_k": 5}, stream_options={})
    )
    assert body["top_k"] == 5
    assert "n" not in body


def test_options_are_validated_and_extra_headers_sent() -> None:
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        AnthropicProvider(
            ProviderSettings(
                name="p",
                kind="anthropic",
                base_url="https://api.anthropic.com",
                options={"bogus": 1},
            )
        )
    with pytest.raises(ValueError, match="headers"):
        AnthropicProvider(
            ProviderSettings(
                name="p",
                kind="anthropic",
                base_url="https://api.anthropic.com",
                options={"headers": [1]},
            )
        )
    settings = ProviderSettings(
        name="p",
        kind="anthropic",
        base_url="https://api.anthropic.com",
        options={"headers": {"X-Team": "search"}},
    )
    assert (
        AnthropicProvider(settings).build_request(request(), TARGET).headers["x-team"] == "search"
    )


def test_registry_creates_the_kind() -> None:
    from gateway.providers import registry

    assert "anthropic" in registry.kinds()
    assert isinstance(registry.create(SETTINGS), AnthropicProvider)


def test_register_kinds() -> None:
    registered: dict[str, Any] = {}
    register_kinds(lambda kind, factory: registered.__setitem__(kind, factory))
    assert isinstance(registered["anthropic"](SETTINGS), AnthropicProvider)


# --- stream decoding -------------------------------------------------------------

MESSAGE_START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-x-2025",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 12,
                "output_tokens": 1,
                "cache_creation_input_tokens": 3,
                "cache_read_input_tokens": 100,
            },
        },
    },
)
WIRE = sse(
    MESSAGE_START,
    TEXT_START,
    ("ping", {"type": "ping"}),
    text(0, "Hi"),
    block_stop(0),
    tool_start(1, "toolu_01", "get_weather"),
    json_part(1, ""),
    json_part(1, '{"city": "Oslo"}'),
    block_stop(1),
    message_delta("tool_use", output_tokens=31),
    MESSAGE_STOP,
)


@pytest.mark.parametrize("bytewise", [True, False])
def test_decode_text_and_tool_call(bytewise: bool) -> None:
    events = decode(WIRE, bytewise)
    assert events == [
        ResponseMeta(model="claude-x-2025"),
        Usage(prompt=115, completion=0, cached=100),
        TextDelta("Hi"),
        ToolCallDelta(0, id="toolu_01", name="get_weather", arguments=""),
        ToolCallDelta(0, arguments='{"city": "Oslo"}'),
        Usage(prompt=115, completion=31, cached=100),
        Finish("tool_calls"),
    ]
    assert first_token_index(events) == 2
    assert not any(is_token(e) for e in events[:2])


def test_decode_crlf_framing() -> None:
    assert decode(WIRE.replace(b"\n", b"\r\n"), bytewise=True) == decode(WIRE, bytewise=False)


def test_tool_without_arguments_and_thinking() -> None:
    wire = sse(
        MESSAGE_START,
        block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        block_delta(0, {"type": "thinking_delta", "thinking": "Hmm."}),
        block_delta(0, {"type": "signature_delta", "signature": "sig"}),
        block_stop(0),
        tool_start(1, "toolu_a", "now"),
        json_part(1, ""),
        block_stop(1),
        tool_start(2, "toolu_b", "f"),
        json_part(2, "{}"),
        block_stop(2),
        ("some_future_event", {"type": "some_future_event"}),
        message_delta("tool_use", output_tokens=9),
        MESSAGE_STOP,
    )
    events = decode(wire, bytewise=True)
    assert events[2:] == [
        ReasoningDelta("Hmm."),
        ReasoningSignature("sig"),  # a client sends it back with the block (Messages door)
        ToolCallDelta(0, id="toolu_a", name="now"),
        ToolCallDelta(0, arguments="{}"),
        ToolCallDelta(1, id="toolu_b", name="f"),
        ToolCallDelta(1, arguments="{}"),
        Usage(prompt=115, completion=9, cached=100),
        Finish("tool_calls"),
    ]
    assert first_token_index(events) == 2


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    wire = sse(
        MESSAGE_START,
        message_delta(stop_reason, output_tokens=2, input_tokens=20),
        MESSAGE_STOP,
    )
    events = decode(wire, bytewise=False)
    assert events[-2:] == [Usage(prompt=123, completion=2, cached=100), Finish(finish)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error_type", "status", "retryable"),
    [
        ("overloaded_error", 529, True),
        ("api_error", 500, True),
        ("rate_limit_error", 429, True),
        ("invalid_request_error", 400, False),
        ("something_new", 502, True),
    ],
)
def test_in_stream_error(error_type: str, status: int, retryable: bool) -> None:
    error = {"type": "error", "error": {"type": error_type, "message": "Boom"}}
    wire = sse(MESSAGE_START, TEXT_START, text(0, "Hi"), ("error", error), text(0, "ignored"))
    events = decode(wire, bytewise=True)
    assert events[2] == TextDelta("Hi")
    last = events[-1]
    assert len(events) == 4 and isinstance(last, UpstreamError)
    assert (last.status, last.type, last.message, last.retryable) == (
        status,
        error_type,
        "Boom",
        retryable,
    )


@pytest.mark.parametrize("cut", [0, 40, WIRE.index(b"event: message_delta") - 3])
def test_truncated_stream(cut: int) -> None:
    events = decode(WIRE[:cut], bytewise=False)
    last = events[-1]
    assert isinstance(last, UpstreamError)
    assert (last.status, last.type, last.retryable) == (502, "upstream_stream_truncated", True)
    assert sum(isinstance(e, UpstreamError) for e in events) == 1


def test_last_event_without_blank_line_still_completes() -> None:
    events = decode(WIRE.rstrip(b"\n"), bytewise=False)
    assert events[-1] == Finish("tool_calls")


def test_missing_message_stop_after_stop_reason_is_complete() -> None:
    events = decode(WIRE[: WIRE.index(b"event: message_stop")], bytewise=True)
    assert events[-1] == Finish("tool_calls")
    events = decode(WIRE[: WIRE.index(b"event: message_stop") + 30], bytewise=False)
    assert events[-1] == Finish("tool_calls")


def test_invalid_json_and_oversized_line() -> None:
    events = decode(b"event: message_start\ndata: {nope\n\n", bytewise=False)
    assert len(events) == 1 and isinstance(events[0], UpstreamError)
    assert events[0].type == "upstream_protocol_error"
    decoder = PROVIDER.decoder()
    huge = decoder.feed(b"data: " + b"x" * (2 << 20))
    assert len(huge) == 1 and isinstance(huge[0], UpstreamError) and huge[0].retryable
    assert decoder.feed(b"\n\n") == [] and decoder.close() == []


def test_data_only_events_fall_back_to_type() -> None:
    wire = WIRE.replace(b"event: ", b": was event ")
    assert decode(wire, bytewise=False) == decode(WIRE, bytewise=False)


# --- non-streaming bodies and errors -------------------------------------------


def test_parse_response() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x-2025",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "s"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    }
    assert PROVIDER.parse_response(orjson.dumps(body)) == [
        ResponseMeta(model="claude-x-2025"),
        ReasoningDelta("Let me see."),
        ReasoningSignature("s"),
        TextDelta("Calling."),
        ToolCallDelta(0, "toolu_9", "f", '{"a":1}'),
        Usage(prompt=12, completion=5, cached=2),
        Finish("tool_calls"),
    ]
    bad = PROVIDER.parse_response(b"<html>")
    assert len(bad) == 1 and isinstance(bad[0], UpstreamError)


@pytest.mark.parametrize(
    ("status", "error_type", "retryable", "opens_circuit"),
    [
        (400, "invalid_request_error", False, False),
        (401, "authentication_error", False, True),
        (403, "permission_error", False, True),
        (404, "not_found_error", False, True),
        (413, "request_too_large", False, False),
        (429, "rate_limit_error", True, True),
        (500, "api_error", True, True),
        (529, "overloaded_error", True, True),
    ],
)
def test_parse_error(status: int, error_type: str, retryable: bool, opens_circuit: bool) -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": error_type, "message": "nope"}, "request_id": "req_1"}
    )
    error = PROVIDER.parse_error(status, {"Retry-After": "7"}, body)
    assert (error.status, error.type, error.message) == (status, error_type, "nope")
    assert (error.retryable, error.opens_circuit) == (retryable, opens_circuit)
    assert error.retry_after_s == 7.0


def test_parse_error_non_json_and_retry_after_ms() -> None:
    error = PROVIDER.parse_error(502, {"retry-after-ms": "1500"}, b"<html>Bad Gateway</html>")
    assert (error.status, error.type, error.retryable) == (502, "api_error", True)
    assert error.message == "upstream returned HTTP 502"  # HTML is never echoed
    assert error.retry_after_s == 1.5
    no_date = PROVIDER.parse_error(529, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"")
    assert no_date.retry_after_s is None and no_date.retryable
    dated = PROVIDER.parse_error(
        429,
        {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT", "Date": "Wed, 21 Oct 2015 07:28:00 GMT"},
        b"",
    )
    assert dated.retry_after_s == 30.0


def test_parse_error_x_should_retry_redirect_and_key_redaction() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "api_error", "message": "x"}})
    assert not PROVIDER.parse_error(500, {"x-should-retry": "false"}, body).retryable
    assert PROVIDER.parse_error(400, {"X-Should-Retry": "true"}, body).retryable
    redirect = PROVIDER.parse_error(301, {}, b"")
    assert (redirect.status, redirect.type, redirect.retryable) == (
        502,
        "upstream_bad_status",
        False,
    )
    assert redirect.opens_circuit
    provider = AnthropicProvider(
        ProviderSettings(name="a", kind="anthropic", base_url="https://h", api_key="sk-secret-123")
    )
    leaky = {
        "type": "error",
        "error": {"type": "authentication_error", "message": "bad sk-secret-123"},
    }
    assert provider.parse_error(401, {}, orjson.dumps(leaky)).message == "bad ***"


# --- a second message_start inside one stream ----------------------------------------------


def message_start(message_id: str) -> tuple[str, dict[str, Any]]:
    name, payload = MESSAGE_START
    return name, {**payload, "message": {**payload["message"], "id": message_id}}


@pytest.mark.parametrize("bytewise", [True, False])
def test_repeated_message_start_with_the_same_id_is_ignored(bytewise: bool) -> None:
    wire = sse(
        message_start("msg_01"),
        TEXT_START,
        text(0, "Hi"),
        message_start("msg_01"),  # the same message announced again: nothing new
        text(0, " there"),
        block_stop(0),
        message_delta("end_turn", output_tokens=2),
        MESSAGE_STOP,
    )
    events = decode(wire, bytewise)
    assert [e for e in events if type(e) is ResponseMeta] == [ResponseMeta(model="claude-x-2025")]
    assert [e.text for e in events if type(e) is TextDelta] == ["Hi", " there"]
    assert events[-1] == Finish("stop")
    assert not any(type(e) is UpstreamError for e in events)


@pytest.mark.parametrize("bytewise", [True, False])
def test_second_message_mid_tool_call_is_a_protocol_error_not_a_merged_answer(
    bytewise: bool,
) -> None:
    """The recorded fault: a new message starts while a tool call's JSON is half sent."""
    wire = sse(
        message_start("msg_01"),
        tool_start(0, "toolu_01", "get_weather"),
        json_part(0, '{"city": "Os'),
        message_start("msg_02"),
        tool_start(0, "toolu_02", "get_weather"),
        json_part(0, '{"city": "Oslo"}'),
        block_stop(0),
        message_delta("tool_use", output_tokens=9),
        MESSAGE_STOP,
    )
    events = decode(wire, bytewise)
    error = events[-1]
    assert isinstance(error, UpstreamError)
    assert error.status == 502 and error.type == "upstream_protocol_error"
    assert "msg_02" in error.message and "msg_01" in error.message
    assert first_token_index(events) < len(events) - 1  # after the first token: in-stream
    assert not any(type(e) is Finish for e in events)  # never finishes cleanly
    calls = [e for e in events if type(e) is ToolCallDelta]
    assert [c.id for c in calls if c.id] == ["toolu_01"]  # nothing of the second message


def test_second_message_before_any_token_is_a_pre_token_failure() -> None:
    wire = sse(message_start("msg_01"), TEXT_START, message_start("msg_02"), text(0, "Hi"))
    events = decode(wire, bytewise=True)
    assert first_token_index(events) == -1  # the race moves on to the next candidate
    assert isinstance(events[-1], UpstreamError) and events[-1].retryable
