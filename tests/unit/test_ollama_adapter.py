"""Ollama native adapter: request mapping, NDJSON decoding (byte by byte), errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.providers.base import ProviderSettings, TargetModel, UnsupportedParams
from gateway.providers.ollama import OllamaProvider, register_kinds
from gateway.request import ChatRequest
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
    first_token_index,
    is_token,
)

SETTINGS = ProviderSettings(name="local", kind="ollama", base_url="http://127.0.0.1:11434")
TARGET = TargetModel(model="llama3.2")
DROP = TargetModel(model="llama3.2", drop_params=True)
PROVIDER = OllamaProvider(SETTINGS)


def request(messages: list[dict[str, Any]] | None = None, **params: Any) -> ChatRequest:
    extra = params.pop("extra", {})
    return ChatRequest(
        model="chat",
        messages=messages or [{"role": "user", "content": "Hi"}],
        stream=True,
        params=params,
        extra=extra,
    )


def body_of(
    req: ChatRequest, target: TargetModel = TARGET, provider: OllamaProvider = PROVIDER
) -> dict[str, Any]:
    return orjson.loads(provider.build_request(req, target).body)


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


def decode(data: bytes, bytewise: bool) -> list[Event]:
    decoder = PROVIDER.decoder()
    events: list[Event] = []
    if bytewise:
        for i in range(len(data)):
            events += decoder.feed(data[i : i + 1])
    else:
        events += decoder.feed(data)
    return events + decoder.close()


def line(content: str = "", done: bool = False, **fields: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, **fields.pop("message", {})}
    return {
        "model": "llama3.2",
        "created_at": "2025-01-01T00:00:00Z",
        "message": message,
        "done": done,
        **fields,
    }


DONE = line(
    done=True,
    done_reason="stop",
    total_duration=1200000000,
    load_duration=1000000,
    prompt_eval_count=8,
    prompt_eval_duration=20000000,
    eval_count=2,
    eval_duration=40000000,
)


# --- request mapping -------------------------------------------------------------


def test_url_headers_and_basics() -> None:
    upstream = PROVIDER.build_request(request(), TARGET)
    assert (upstream.method, upstream.url) == ("POST", "http://127.0.0.1:11434/api/chat")
    assert upstream.headers["content-type"] == "application/json"
    assert "authorization" not in upstream.headers
    assert orjson.loads(upstream.body) == {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
    }
    keyed = OllamaProvider(
        ProviderSettings(
            name="c", kind="ollama", base_url="https://ollama.example/api/", api_key="k"
        )
    )
    upstream = keyed.build_request(request(), TARGET)
    assert upstream.url == "https://ollama.example/api/chat"
    assert upstream.headers["authorization"] == "Bearer k"
    assert "'k'" not in repr(keyed)


def test_messages_flattened_with_images() -> None:
    body = body_of(
        request(
            [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is"},
                        {"type": "text", "text": "this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    ],
                },
            ]
        )
    )
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is\nthis?", "images": ["iVBO"]},
    ]


def test_http_images_are_unsupported() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
            ],
        }
    ]
    with pytest.raises(UnsupportedParams) as info:
        body_of(request(messages))
    assert info.value.provider == "local"
    assert body_of(request(messages), DROP)["messages"] == [{"role": "user", "content": "Look"}]


OSLO = '{"city":"Oslo"}'


def test_tools_and_tool_messages() -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    body = body_of(
        request(
            [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "get_weather", "arguments": OSLO}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "12C"},
            ],
            tools=tools,
            tool_choice="auto",
        )
    )
    assert body["tools"] == tools
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}, "id": "c1"}
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": "12C",
        "tool_name": "get_weather",
        "tool_call_id": "c1",
    }
    assert "tools" not in body_of(request(tools=tools, tool_choice="none"))
    with pytest.raises(UnsupportedParams):
        body_of(request(tools=tools, tool_choice="required"))


def test_options_keep_alive_and_target_options() -> None:
    target = TargetModel(
        model="llama3.2", options={"num_ctx": 8192, "top_k": 20, "keep_alive": "10m"}
    )
    body = body_of(
        request(
            temperature=0.2, top_p=0.8, seed=1, max_tokens=64, stop="END", presence_penalty=0.5
        ),
        target,
    )
    assert body["options"] == {
        "top_k": 20,
        "num_ctx": 8192,
        "temperature": 0.2,
        "top_p": 0.8,
        "seed": 1,
        "presence_penalty": 0.5,
        "num_predict": 64,
        "stop": ["END"],
    }
    assert body["keep_alive"] == "10m"
    provider = OllamaProvider(
        ProviderSettings(name="l", kind="ollama", base_url="http://h", options={"keep_alive": -1})
    )
    assert body_of(request(), TARGET, provider)["keep_alive"] == -1


def test_reasoning_effort_and_format() -> None:
    assert body_of(request(reasoning_effort="high"))["think"] is True
    assert body_of(request(reasoning_effort="none"))["think"] is False
    levels = TargetModel(model="gpt-oss", options={"think_levels": True})
    assert body_of(request(reasoning_effort="medium"), levels)["think"] == "medium"
    assert body_of(request(response_format={"type": "json_object"}))["format"] == "json"
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    assert body_of(request(response_format=fmt))["format"] == schema


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"n": 3}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"extra": {"mystery": 1}}, "mystery"),
    ],
)
def test_unsupported_params(params: dict[str, Any], name: str) -> None:
    with pytest.raises(UnsupportedParams) as info:
        body_of(request(**params))
    assert name in info.value.params
    assert set(body_of(request(**params), DROP)) == {"model", "messages", "stream"}


def test_options_are_validated_and_extra_headers_sent() -> None:
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        OllamaProvider(
            ProviderSettings(
                name="p", kind="ollama", base_url="http://127.0.0.1:11434", options={"bogus": 1}
            )
        )
    with pytest.raises(ValueError, match="headers"):
        OllamaProvider(
            ProviderSettings(
                name="p", kind="ollama", base_url="http://127.0.0.1:11434", options={"headers": [1]}
            )
        )
    settings = ProviderSettings(
        name="p",
        kind="ollama",
        base_url="http://127.0.0.1:11434",
        options={"headers": {"X-Team": "search"}},
    )
    assert OllamaProvider(settings).build_request(request(), TARGET).headers["x-team"] == "search"


def test_registry_creates_the_kind() -> None:
    from gateway.providers import registry

    assert "ollama" in registry.kinds()
    assert isinstance(registry.create(SETTINGS), OllamaProvider)


def test_register_kinds() -> None:
    registered: dict[str, Any] = {}
    register_kinds(lambda kind, factory: registered.__setitem__(kind, factory))
    assert isinstance(registered["ollama"](SETTINGS), OllamaProvider)


# --- stream decoding -------------------------------------------------------------

WIRE = ndjson(line("Hi"), DONE)


@pytest.mark.parametrize("bytewise", [True, False])
def test_decode_text(bytewise: bool) -> None:
    events = decode(WIRE, bytewise)
    assert events == [
        ResponseMeta(model="llama3.2"),
        TextDelta("Hi"),
        Usage(prompt=8, completion=2),
        Finish("stop"),
    ]
    assert first_token_index(events) == 1


def test_thinking_then_content_and_length() -> None:
    wire = ndjson(
        line("", message={"thinking": "Hmm"}),
        line("Answer"),
        {**DONE, "done_reason": "length"},
    )
    events = decode(wire.replace(b"\n", b"\r\n"), bytewise=True)
    assert events[1:3] == [ReasoningDelta("Hmm"), TextDelta("Answer")]
    assert events[-1] == Finish("length")


def test_tool_calls_whole() -> None:
    call = {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}}
    with_id = {"id": "call_x", "function": {"name": "now", "arguments": {}}}
    wire = ndjson(line(message={"tool_calls": [call, with_id]}), DONE)
    events = decode(wire, bytewise=True)
    first = events[1]
    assert isinstance(first, ToolCallDelta)
    assert (first.index, first.name, first.arguments) == (0, "get_weather", '{"city":"Oslo"}')
    assert first.id and first.id.startswith("call_")
    assert events[2] == ToolCallDelta(1, "call_x", "now", "{}")
    assert events[-1] == Finish("tool_calls")
    assert first_token_index(events) == 1
    again = decode(wire, bytewise=False)[1]
    assert isinstance(again, ToolCallDelta) and again.id == first.id  # deterministic
    later = {**line(message={"tool_calls": [call]}), "created_at": "2025-02-02T00:00:00Z"}
    other = decode(ndjson(later, DONE), bytewise=False)[1]
    assert isinstance(other, ToolCallDelta) and other.id != first.id  # differs between turns


def test_empty_lines_are_not_tokens() -> None:
    events = decode(ndjson(line(""), line(""), DONE), bytewise=False)
    assert first_token_index(events) == -1
    assert not any(is_token(e) for e in events)


def test_mid_stream_error_line() -> None:
    wire = ndjson(line("Hi"), {"error": "model runner has unexpectedly stopped"}, line("more"))
    events = decode(wire, bytewise=True)
    last = events[-1]
    assert events[1] == TextDelta("Hi") and len(events) == 3
    assert isinstance(last, UpstreamError)
    assert (last.status, last.retryable, last.message) == (
        502,
        True,
        "model runner has unexpectedly stopped",
    )


@pytest.mark.parametrize("cut", [0, len(ndjson(line("Hi"))), len(WIRE) - 10])
def test_truncated_stream(cut: int) -> None:
    events = decode(WIRE[:cut], bytewise=False)
    last = events[-1]
    assert isinstance(last, UpstreamError)
    assert (last.status, last.type, last.retryable) == (502, "upstream_stream_truncated", True)


def test_last_line_without_newline_completes() -> None:
    assert decode(WIRE.rstrip(b"\n"), bytewise=False)[-1] == Finish("stop")


def test_invalid_line_is_a_protocol_error() -> None:
    events = decode(b"not json\n" + WIRE, bytewise=False)
    assert len(events) == 1 and isinstance(events[0], UpstreamError)
    assert events[0].type == "upstream_protocol_error"


# --- non-streaming bodies and errors -------------------------------------------


def test_parse_response() -> None:
    body = {**DONE, "message": {"role": "assistant", "content": "Hello there"}}
    assert PROVIDER.parse_response(orjson.dumps(body)) == [
        ResponseMeta("llama3.2"),
        TextDelta("Hello there"),
        Usage(prompt=8, completion=2),
        Finish("stop"),
    ]


@pytest.mark.parametrize(
    ("status", "retryable", "opens_circuit"),
    [
        (400, False, False),
        (404, False, True),
        (429, True, True),
        (500, True, True),
        (502, True, True),
    ],
)
def test_parse_error(status: int, retryable: bool, opens_circuit: bool) -> None:
    message = "model 'llama9' not found, try pulling it first"
    error = PROVIDER.parse_error(status, {"Retry-After": "3"}, orjson.dumps({"error": message}))
    assert (error.status, error.message) == (status, message)
    assert (error.retryable, error.opens_circuit) == (retryable, opens_circuit)
    assert error.retry_after_s == 3.0


def test_parse_error_non_json_and_redirect() -> None:
    error = PROVIDER.parse_error(503, {}, b"<html>busy</html>")
    assert error.status == 503 and error.retryable
    assert error.message == "upstream returned HTTP 503"  # HTML is never echoed
    redirect = PROVIDER.parse_error(307, {}, b"")
    assert (redirect.status, redirect.type, redirect.retryable) == (
        502,
        "upstream_bad_status",
        False,
    )
    envelope = orjson.dumps({"error": {"message": "not found", "type": "not_found_error"}})
    assert PROVIDER.parse_error(404, {}, envelope).message == "not found"
