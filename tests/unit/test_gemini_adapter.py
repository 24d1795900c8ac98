"""Gemini adapter: request mapping, `alt=sse` decoding (byte by byte), errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.providers.base import ProviderSettings, TargetModel, UnsupportedParams
from gateway.providers.gemini import GeminiProvider, guess_mime_type, register_kinds
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

SETTINGS = ProviderSettings(
    name="gemini-main",
    kind="gemini",
    base_url="https://generativelanguage.googleapis.com",
    api_key="g-key",
)
TARGET = TargetModel(model="gemini-x")
DROP = TargetModel(model="gemini-x", drop_params=True)
PROVIDER = GeminiProvider(SETTINGS)


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


def sse(*chunks: dict[str, Any], newline: bytes = b"\n") -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + newline + newline for c in chunks)


def decode(data: bytes, bytewise: bool) -> list[Event]:
    decoder = PROVIDER.decoder()
    events: list[Event] = []
    if bytewise:
        for i in range(len(data)):
            events += decoder.feed(data[i : i + 1])
    else:
        events += decoder.feed(data)
    return events + decoder.close()


def chunk(
    parts: list[dict[str, Any]], finish: str | None = None, usage: tuple[int, int, int] = (5, 1, 0)
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    prompt, candidates, thoughts = usage
    meta = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
    }
    if thoughts:
        meta["thoughtsTokenCount"] = thoughts
    return {
        "candidates": [candidate],
        "usageMetadata": meta,
        "modelVersion": "gemini-x-001",
        "responseId": "r1",
    }


# --- request mapping -------------------------------------------------------------


def test_url_headers_and_basics() -> None:
    upstream = PROVIDER.build_request(request(), TARGET)
    assert upstream.method == "POST"
    assert upstream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-x:streamGenerateContent?alt=sse"
    )
    assert upstream.headers["x-goog-api-key"] == "g-key"
    assert upstream.headers["content-type"] == "application/json"
    assert orjson.loads(upstream.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}]
    }
    assert "g-key" not in repr(PROVIDER)
    other = GeminiProvider(
        ProviderSettings(name="g", kind="gemini", base_url="http://127.0.0.1:9/v1beta/")
    )
    url = other.build_request(request(), TargetModel(model="models/gemini-y")).url
    assert url == "http://127.0.0.1:9/v1beta/models/gemini-y:streamGenerateContent?alt=sse"


def test_roles_system_and_merging() -> None:
    body = body_of(
        request(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
                {"role": "user", "content": ""},
            ]
        )
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "No emoji."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}]},
    ]


def test_generation_config() -> None:
    body = body_of(
        request(
            temperature=1.7,
            top_p=0.9,
            max_tokens=100,
            stop=["END"],
            seed=3,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            n=1,
            extra={"top_k": 40},
        )
    )
    assert body["generationConfig"] == {
        "temperature": 1.7,
        "topP": 0.9,
        "seed": 3,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "topK": 40,
    }


def test_response_format() -> None:
    config = body_of(request(response_format={"type": "json_object"}))["generationConfig"]
    assert config == {"responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    config = body_of(
        request(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        )
    )["generationConfig"]
    assert config == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    assert "generationConfig" not in body_of(request(response_format={"type": "text"}))


def test_reasoning_effort() -> None:
    config = body_of(request(reasoning_effort="medium"))["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    config = body_of(request(reasoning_effort="none"))["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 0, "includeThoughts": False}


def test_images_and_audio() -> None:
    body = body_of(
        request(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Look"},
                        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a/cat.PNG?s=1"}},
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}},
                    ],
                }
            ]
        )
    )
    assert body["contents"][0]["parts"] == [
        {"text": "Look"},
        {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/a/cat.PNG?s=1"}},
        {"inlineData": {"mimeType": "audio/mp3", "data": "AAAA"}},
    ]
    assert guess_mime_type("https://x.test/photo") == "image/jpeg"
    assert guess_mime_type("https://x.test/a.b/doc.pdf") == "application/pdf"


def test_tools_and_tool_choice() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "W", "parameters": schema},
        },
        {"type": "function", "function": {"name": "now"}},
    ]
    body = body_of(request(tools=tools, tool_choice="auto"))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "get_weather", "description": "W", "parametersJsonSchema": schema},
                {"name": "now"},
            ]
        }
    ]

    def mode(choice: Any) -> dict[str, Any]:
        return body_of(request(tools=tools, tool_choice=choice))["toolConfig"][
            "functionCallingConfig"
        ]

    assert mode("auto") == {"mode": "AUTO"}
    assert mode("required") == {"mode": "ANY"}
    assert mode("none") == {"mode": "NONE"}
    assert mode({"type": "function", "function": {"name": "now"}}) == {
        "mode": "ANY",
        "allowedFunctionNames": ["now"],
    }
    assert "toolConfig" not in body_of(request(tools=tools))


OSLO = '{"city":"Oslo"}'


def test_tool_calls_and_function_responses() -> None:
    body = body_of(
        request(
            [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": "Checking.",
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "get_weather", "arguments": OSLO}},
                        {"id": "c2", "function": {"name": "lookup", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "12C"},
                {"role": "tool", "tool_call_id": "c2", "content": '{"temp": 12}'},
                {"role": "user", "content": "Thanks"},
            ]
        )
    )
    assert body["contents"][1] == {
        "role": "model",
        "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
            {"functionCall": {"name": "lookup", "args": {}}},
        ],
    }
    assert body["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"result": "12C"}}},
            {"functionResponse": {"name": "lookup", "response": {"temp": 12}}},
            {"text": "Thanks"},
        ],
    }


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"n": 2}, "n"),
        ({"extra": {"safety_whatever": 1}}, "safety_whatever"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort=extreme"),
    ],
)
def test_unsupported_params(params: dict[str, Any], name: str) -> None:
    with pytest.raises(UnsupportedParams) as info:
        body_of(request(**params))
    assert name in info.value.params and info.value.provider == "gemini-main"
    assert set(body_of(request(**params), DROP)) == {"contents"}


def test_parallel_tool_calls_false_is_unsupported() -> None:
    tools = [{"type": "function", "function": {"name": "now"}}]
    with pytest.raises(UnsupportedParams):
        body_of(request(tools=tools, parallel_tool_calls=False))
    assert "tools" in body_of(request(tools=tools, parallel_tool_calls=False), DROP)


def test_options_are_validated_and_extra_headers_sent() -> None:
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        GeminiProvider(
            ProviderSettings(
                name="p",
                kind="gemini",
                base_url="https://generativelanguage.googleapis.com",
                options={"bogus": 1},
            )
        )
    with pytest.raises(ValueError, match="headers"):
        GeminiProvider(
            ProviderSettings(
                name="p",
                kind="gemini",
                base_url="https://generativelanguage.googleapis.com",
                options={"headers": [1]},
            )
        )
    settings = ProviderSettings(
        name="p",
        kind="gemini",
        base_url="https://generativelanguage.googleapis.com",
        options={"headers": {"X-Team": "search"}},
    )
    assert GeminiProvider(settings).build_request(request(), TARGET).headers["x-team"] == "search"


def test_registry_creates_the_kind() -> None:
    from gateway.providers import registry

    assert "gemini" in registry.kinds()
    assert isinstance(registry.create(SETTINGS), GeminiProvider)


def test_register_kinds() -> None:
    registered: dict[str, Any] = {}
    register_kinds(lambda kind, factory: registered.__setitem__(kind, factory))
    assert isinstance(registered["gemini"](SETTINGS), GeminiProvider)


# --- stream decoding -------------------------------------------------------------

WIRE = sse(chunk([{"text": "Hel"}]), chunk([{"text": "lo"}], "STOP", (5, 2, 0)))


@pytest.mark.parametrize("bytewise", [True, False])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_decode_text(bytewise: bool, newline: bytes) -> None:
    wire = WIRE.replace(b"\n", newline)
    events = decode(wire, bytewise)
    assert events == [
        ResponseMeta(model="gemini-x-001"),
        TextDelta("Hel"),
        Usage(prompt=5, completion=1, total=6),
        TextDelta("lo"),
        Usage(prompt=5, completion=2, total=7),
        Finish("stop"),
    ]
    assert first_token_index(events) == 1


def test_reasoning_signature_and_usage() -> None:
    wire = sse(
        chunk([{"text": "Thinking about it", "thought": True}], usage=(5, 0, 7)),
        chunk([{"text": "", "thoughtSignature": "c2ln"}], usage=(5, 0, 7)),
        chunk([{"text": "Answer"}], usage=(5, 3, 7)),
        {**chunk([{"text": "", "thoughtSignature": "c2ln"}], "MAX_TOKENS", (5, 4, 7))},
    )
    events = decode(wire, bytewise=True)
    assert events == [
        ResponseMeta(model="gemini-x-001"),
        ReasoningDelta("Thinking about it"),
        Usage(prompt=5, completion=7, reasoning=7, total=12),
        TextDelta("Answer"),
        Usage(prompt=5, completion=10, reasoning=7, total=15),
        Usage(prompt=5, completion=11, reasoning=7, total=16),
        Finish("length"),
    ]
    usage_only = decode(sse(chunk([{"text": "", "thoughtSignature": "x"}], "STOP")), False)
    assert first_token_index(usage_only) == -1


def test_function_calls_make_tool_calls_finish() -> None:
    wire = sse(
        chunk([{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]),
        chunk([{"functionCall": {"name": "now", "args": {}}}], "STOP", (5, 9, 0)),
    )
    events = decode(wire, bytewise=True)
    assert events[1] == ToolCallDelta(0, "call_r1_0", "get_weather", '{"city":"Oslo"}')
    assert events[3] == ToolCallDelta(1, "call_r1_1", "now", "{}")
    assert events[-1] == Finish("tool_calls")
    assert first_token_index(events) == 1


def test_cached_tokens() -> None:
    data = chunk([{"text": "x"}], "STOP")
    data["usageMetadata"]["cachedContentTokenCount"] = 3
    assert Usage(prompt=5, completion=1, cached=3, total=6) in decode(sse(data), False)


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("SAFETY", "content_filter"), ("RECITATION", "content_filter"), ("OTHER", "stop")],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    assert decode(sse(chunk([{"text": "x"}], reason)), False)[-1] == Finish(finish)  # type: ignore[arg-type]


def test_malformed_function_call_is_a_retryable_error() -> None:
    data = chunk([], "MALFORMED_FUNCTION_CALL")
    data["candidates"][0]["finishMessage"] = "bad call"
    events = decode(sse(data), bytewise=False)
    last = events[-1]
    assert isinstance(last, UpstreamError)
    assert last.status == 502 and last.retryable and "bad call" in last.message
    assert sum(isinstance(e, UpstreamError) for e in events) == 1


def test_blocked_prompt() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
        "modelVersion": "gemini-x-001",
    }
    events = decode(sse(blocked), bytewise=True)
    assert events == [
        ResponseMeta("gemini-x-001"),
        Usage(prompt=8, total=8),
        Finish("content_filter"),
    ]
    assert not any(is_token(e) for e in events)


def test_mid_stream_error() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    events = decode(sse(chunk([{"text": "Hi"}]), error, chunk([{"text": "x"}])), bytewise=True)
    assert events[1] == TextDelta("Hi")
    last = events[-1]
    assert isinstance(last, UpstreamError) and len(events) == 4
    assert (last.status, last.code, last.retryable) == (503, "UNAVAILABLE", True)


def test_final_event_without_blank_line_is_flushed() -> None:
    events = decode(WIRE.rstrip(b"\n"), bytewise=False)
    assert events[-1] == Finish("stop")


@pytest.mark.parametrize("cut", [0, len(sse(chunk([{"text": "Hel"}]))), len(WIRE) - 20])
def test_truncated_stream(cut: int) -> None:
    events = decode(WIRE[:cut], bytewise=False)
    last = events[-1]
    assert isinstance(last, UpstreamError)
    assert (last.status, last.type, last.retryable) == (502, "upstream_stream_truncated", True)


def test_invalid_json_mid_stream() -> None:
    events = decode(b"data: {oops\n\n" + WIRE, bytewise=False)
    assert len(events) == 1 and isinstance(events[0], UpstreamError)
    assert events[0].type == "upstream_protocol_error"


# --- non-streaming bodies and errors -------------------------------------------


def test_parse_response() -> None:
    body = chunk([{"text": "Hello"}, {"functionCall": {"name": "f", "args": {"a": 1}}}], "STOP")
    assert PROVIDER.parse_response(orjson.dumps(body)) == [
        ResponseMeta("gemini-x-001"),
        TextDelta("Hello"),
        ToolCallDelta(0, "call_r1_0", "f", '{"a":1}'),
        Usage(prompt=5, completion=1, total=6),
        Finish("tool_calls"),
    ]


def test_parse_error_invalid_key() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        }
    }
    error = PROVIDER.parse_error(400, {}, orjson.dumps(body))
    assert (error.status, error.type, error.code) == (
        401,
        "authentication_error",
        "API_KEY_INVALID",
    )
    assert error.opens_circuit and not error.retryable


def test_parse_error_quota_with_retry_delay() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "34.4s"},
            ],
        }
    }
    error = PROVIDER.parse_error(429, {}, orjson.dumps(body))
    assert (error.status, error.code, error.retryable, error.opens_circuit) == (
        429,
        "RESOURCE_EXHAUSTED",
        True,
        True,
    )
    assert error.retry_after_s == pytest.approx(34.4)


@pytest.mark.parametrize(
    ("status", "rpc", "retryable", "opens_circuit"),
    [
        (400, "INVALID_ARGUMENT", False, False),
        (403, "PERMISSION_DENIED", False, True),
        (404, "NOT_FOUND", False, True),
        (500, "INTERNAL", True, True),
        (503, "UNAVAILABLE", True, True),
    ],
)
def test_parse_error_statuses(status: int, rpc: str, retryable: bool, opens_circuit: bool) -> None:
    body = orjson.dumps({"error": {"code": status, "message": "m", "status": rpc}})
    error = PROVIDER.parse_error(status, {"retry-after": "2"}, body)
    assert (error.status, error.code, error.message) == (status, rpc, "m")
    assert (error.retryable, error.opens_circuit) == (retryable, opens_circuit)
    assert error.retry_after_s == 2.0


def test_parse_error_non_json_redirect_and_redaction() -> None:
    error = PROVIDER.parse_error(502, {"Retry-After": "5"}, b"<html>Bad Gateway</html>")
    assert (error.status, error.retryable, error.retry_after_s) == (502, True, 5.0)
    assert error.message == "upstream returned HTTP 502"  # HTML is never echoed
    redirect = PROVIDER.parse_error(302, {}, b"")
    assert (redirect.status, redirect.type, redirect.retryable) == (
        502,
        "upstream_bad_status",
        False,
    )
    provider = GeminiProvider(
        ProviderSettings(name="g", kind="gemini", base_url="https://h", api_key="AIzaSecret99")
    )
    body = orjson.dumps({"error": {"code": 403, "message": "key AIzaSecret99 is blocked"}})
    assert provider.parse_error(403, {}, body).message == "key *** is blocked"
