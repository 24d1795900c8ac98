"""The OpenAI-compatible adapter: quirks, parameters, and decoder/error details.

The shared behaviour (streams, errors, request shape per kind) is covered by
tests/conformance; these are the adapter's own edge cases.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from gateway.providers.base import ProviderSettings, TargetModel, UnsupportedParams
from gateway.providers.openai_compat import OpenAICompatProvider, openai_compatible
from gateway.providers.quirks import BUILTIN_QUIRKS, QUIRK_NAMES, Quirks, with_options
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
)

KEY = "sk-test-0123456789abcdef"


def provider(kind: str = "openai", key: str | None = KEY, **options: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider(ProviderSettings("p", kind, "https://up.example/v1", key, options))


def chat(params: dict[str, Any] | None = None, **extra: Any) -> ChatRequest:
    messages = [{"role": "user", "content": "hi"}]
    return ChatRequest("chat", messages, stream=True, params=params or {}, extra=extra)


def body(p: OpenAICompatProvider, request: ChatRequest, drop: bool = False) -> dict[str, Any]:
    return orjson.loads(p.build_request(request, TargetModel("m-1", drop_params=drop)).body)


def sse(*payloads: str | dict[str, Any]) -> bytes:
    out = b""
    for payload in payloads:
        data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
        out += f"data: {data}\n\n".encode()
    return out


def decode(data: bytes, p: OpenAICompatProvider | None = None) -> list[Event]:
    decoder = (p or provider()).decoder()
    events = decoder.feed(data)
    return events + decoder.close()


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **more: Any) -> dict:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "c", "object": "chat.completion.chunk", "choices": [choice], **more}


# --------------------------------------------------------------------------- quirks


def test_every_kind_has_valid_quirks() -> None:
    assert set(BUILTIN_QUIRKS) == {
        "openai",
        "openai_compatible",
        "deepseek",
        "mistral",
        "vllm",
        "ollama_openai",
        "groq",
        "together",
    }
    assert BUILTIN_QUIRKS["mistral"].renamed_params == (("seed", "random_seed"),)
    assert BUILTIN_QUIRKS["mistral"].send_stream_options is False
    assert set(QUIRK_NAMES) >= {
        "path",
        "auth_scheme",
        "rejected_params",
        "renamed_params",
        "send_stream_options",
        "reasoning_fields",
        "max_tokens_field",
    }


def test_options_override_quirks() -> None:
    p = provider(
        "vllm",
        path="/v2/chat",
        auth_scheme="header:api-key",
        rejected_params=["logprobs"],
        renamed_params={"seed": "sampling_seed"},
        send_stream_options=False,
        reasoning_fields=["thinking"],
        max_tokens_field="max_completion_tokens",
        usage_fields=["usage", "meta.usage"],
        headers={"X-Tenant": "a", "Accept": "text/event-stream; charset=utf-8"},
    )
    request = p.build_request(chat({"seed": 1, "max_tokens": 9}), TargetModel("m-1"))
    assert request.url == "https://up.example/v1/v2/chat"
    assert request.headers["api-key"] == KEY and "authorization" not in request.headers
    assert request.headers["x-tenant"] == "a"
    assert request.headers["accept"] == "text/event-stream; charset=utf-8"  # overridden, once
    sent = orjson.loads(request.body)
    assert sent["sampling_seed"] == 1 and "seed" not in sent
    assert sent["max_completion_tokens"] == 9 and "max_tokens" not in sent
    assert "stream_options" not in sent
    with pytest.raises(UnsupportedParams):
        p.build_request(chat({"logprobs": True}), TargetModel("m-1"))
    events = decode(
        sse(chunk({"thinking": "hmm", "reasoning_content": "no"}, model="m", meta={"usage": {}}))
    )
    assert ReasoningDelta("no") in events  # the default provider reads reasoning_content
    events = decode(sse(chunk({"thinking": "hmm"}, meta={"usage": {"prompt_tokens": 3}})), p)
    assert events[:2] == [ReasoningDelta("hmm"), Usage(prompt=3)]


def test_unknown_option_is_rejected_with_the_known_names() -> None:
    with pytest.raises(ValueError) as info:
        provider(rejected_param=["seed"])
    message = str(info.value)
    assert "provider 'p' (kind 'openai')" in message
    assert "unknown option 'rejected_param'" in message
    assert "rejected_params" in message and "headers" in message


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("path", "chat/completions", "starting with '/'"),
        ("path", 5, "starting with '/'"),
        ("auth_scheme", "basic", "'bearer', 'none' or 'header:<name>'"),
        ("auth_scheme", "header:", "'bearer', 'none' or 'header:<name>'"),
        ("auth_scheme", "header:bad name", "'bearer', 'none' or 'header:<name>'"),
        ("rejected_params", "seed", "list of strings"),
        ("rejected_params", ["seed", 3], "list of strings"),
        ("rejected_params", ["model"], "owned by the gateway"),
        ("rejected_params", ["not a name"], "invalid field name"),
        ("renamed_params", [["seed", "random_seed"]], "map names to names"),
        ("renamed_params", {"stream": "streaming"}, "owned by the gateway"),
        ("send_stream_options", "yes", "true or false"),
        ("reasoning_fields", "reasoning", "list of strings"),
        ("max_tokens_field", "max_new_tokens", "one of passthrough, max_tokens"),
        ("usage_fields", ["x..usage"], "invalid field name"),
        ("headers", ["x-a"], "map header names to strings"),
        ("headers", {"x-a": 1}, "map header names to strings"),
    ],
)
def test_invalid_option_values(name: str, value: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        provider(**{name: value})
    assert f"'{name}'" in str(info.value)


def test_with_options_returns_base_when_nothing_changes() -> None:
    base = Quirks()
    assert with_options(base, {"headers": {}}, "x") is base
    with pytest.raises(ValueError, match="max_tokens_field"):
        Quirks(max_tokens_field="nope")  # type: ignore[arg-type]


def test_plugin_factory_with_custom_quirks() -> None:
    factory = openai_compatible(Quirks(path="/api/chat", auth_scheme="none"))
    p = factory(ProviderSettings("x", "acme", "http://h:1", KEY))
    request = p.build_request(chat(), TargetModel("m"))
    assert request.url == "http://h:1/api/chat" and "authorization" not in request.headers


# ---------------------------------------------------------------------- parameters


def test_body_passes_params_and_extra_and_forces_streaming() -> None:
    params = {"temperature": 0.1, "stream_options": {"include_obfuscation": False}}
    sent = body(provider(), chat(params, vendor_flag={"a": [1]}))
    assert sent == {
        "model": "m-1",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.1,
        "vendor_flag": {"a": [1]},
        "stream": True,
        "stream_options": {"include_obfuscation": False, "include_usage": True},
    }


def test_client_stream_flags_never_reach_the_upstream() -> None:
    request = chat({"stream_options": {"include_usage": False}}, model="x", stream=False)
    assert body(provider("mistral"), request)["stream"] is True
    assert "stream_options" not in body(provider("mistral"), request)
    assert body(provider(), request)["stream_options"] == {"include_usage": True}
    assert body(provider(), request)["model"] == "m-1"


def test_rejected_params_raise_or_are_dropped() -> None:
    p = provider("groq")
    request = chat({"logprobs": True, "top_logprobs": 2, "temperature": 0.3}, logit_bias={"1": 2})
    with pytest.raises(UnsupportedParams) as info:
        p.build_request(request, TargetModel("m-1"))
    assert sorted(info.value.params) == ["logit_bias", "logprobs", "top_logprobs"]
    assert info.value.provider == "p"
    assert "logit_bias, logprobs, top_logprobs" in str(info.value)
    sent = body(p, request, drop=True)
    assert sent["temperature"] == 0.3
    assert not {"logprobs", "top_logprobs", "logit_bias"} & set(sent)


@pytest.mark.parametrize(
    ("kind", "params", "expected"),
    [
        ("openai", {"max_tokens": 5}, {"max_tokens": 5}),
        ("openai", {"max_completion_tokens": 5}, {"max_completion_tokens": 5}),
        ("mistral", {"max_completion_tokens": 5}, {"max_tokens": 5}),
        ("deepseek", {"max_completion_tokens": 7, "max_tokens": 5}, {"max_tokens": 7}),
        ("ollama_openai", {}, {}),
    ],
)
def test_max_tokens_field(kind: str, params: dict[str, Any], expected: dict[str, int]) -> None:
    sent = body(provider(kind), chat(params))
    assert {k: v for k, v in sent.items() if k.startswith("max_")} == expected


def test_auth_schemes() -> None:
    assert provider().build_request(chat(), TargetModel("m")).headers["authorization"] == (
        f"Bearer {KEY}"
    )
    assert "authorization" not in provider(key=None).build_request(chat(), TargetModel("m")).headers
    headers = provider(auth_scheme="none").build_request(chat(), TargetModel("m")).headers
    assert KEY not in str(headers)
    assert KEY not in repr(provider())


# ------------------------------------------------------------------------- decoder


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "stop"),
        ("function_call", "tool_calls"),
        ("insufficient_system_resource", "stop"),
        ("model_length", "length"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(reason: str, expected: str) -> None:
    assert decode(sse(chunk(finish=reason), "[DONE]")) == [Finish(expected)]  # type: ignore[arg-type]


def test_finish_without_done_is_complete_but_nothing_is_not() -> None:
    assert decode(sse(chunk({"content": "a"}, finish="stop"))) == [TextDelta("a"), Finish("stop")]
    events = decode(sse(chunk({"content": "a"})))
    assert events[0] == TextDelta("a")
    assert type(events[1]) is UpstreamError and events[1].type == "upstream_stream_truncated"
    assert decode(sse("[DONE]")) == []  # [DONE] ends the stream cleanly


def test_nothing_is_decoded_after_done() -> None:
    data = sse(chunk({"content": "a"}), "[DONE]", chunk({"content": "b"}), "not json")
    assert decode(data) == [TextDelta("a")]


def test_refusal_and_legacy_function_call() -> None:
    events = decode(sse(chunk({"refusal": "I can't"}), chunk({"refusal": ""}), "[DONE]"))
    assert events == [TextDelta("I can't")]
    legacy = chunk({"function_call": {"name": "f", "arguments": "{}"}}, finish="function_call")
    events = decode(sse(legacy))
    assert events == [ToolCallDelta(0, None, "f", "{}"), Finish("tool_calls")]


def test_only_the_first_reasoning_field_of_a_delta_is_used() -> None:
    delta = {"reasoning_content": "a", "reasoning": "a"}  # transitional vLLM sends both
    assert decode(sse(chunk(delta), "[DONE]")) == [ReasoningDelta("a")]


def test_tool_call_ids_and_names_only_once() -> None:
    first = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    again = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}}
    empty = {"index": 0, "function": {"arguments": ""}}
    events = decode(sse(chunk({"tool_calls": [first]}), chunk({"tool_calls": [again, empty]})))
    assert events[:2] == [ToolCallDelta(0, "call_1", "f", ""), ToolCallDelta(0, None, None, "{}")]


def test_whole_calls_without_index_in_separate_chunks() -> None:
    def whole(call_id: str) -> dict[str, Any]:
        return {"id": call_id, "function": {"name": "f", "arguments": {"x": 1}}}

    events = decode(sse(chunk({"tool_calls": [whole("a")]}), chunk({"tool_calls": [whole("b")]})))
    assert events[:2] == [
        ToolCallDelta(0, "a", "f", '{"x":1}'),
        ToolCallDelta(1, "b", "f", '{"x":1}'),
    ]


def test_usage_variants() -> None:
    groq = chunk(finish="stop", x_groq={"usage": {"prompt_tokens": 4, "completion_tokens": 2}})
    assert decode(sse(groq), provider("groq"))[-1] == Usage(4, 2)
    assert decode(sse(groq))[-1] == Finish("stop")  # other kinds do not look there
    bools = {"usage": {"prompt_tokens": True, "completion_tokens": "3"}, "choices": []}
    assert decode(sse(bools, "[DONE]")) == [Usage()]


def test_meta_once_and_not_from_empty_models() -> None:
    data = sse(
        {"choices": [], "model": "", "prompt_filter_results": []},
        chunk({"content": "a"}, model="m-2", system_fingerprint=None),
        chunk({"content": "b"}, model="m-3"),
        "[DONE]",
    )
    assert decode(data) == [ResponseMeta("m-2"), TextDelta("a"), TextDelta("b")]


@pytest.mark.parametrize(
    ("payload", "status", "err_type", "retryable"),
    [
        ({"object": "error", "message": "slow down", "type": "x", "code": 429}, 429, "x", True),
        ({"error": "model crashed"}, 502, "upstream_error", True),
        (
            {"error": {"message": "quota", "type": "insufficient_quota"}},
            429,
            "insufficient_quota",
            False,
        ),
        (
            {"error": {"message": "bad", "type": "invalid_request_error"}},
            400,
            "invalid_request_error",
            False,
        ),
        ({"error": {"message": "odd", "code": 1300}}, 502, "upstream_error", True),
    ],
)
def test_stream_error_chunks(payload: dict, status: int, err_type: str, retryable: bool) -> None:
    events = decode(sse(chunk({"content": "a"}), payload, chunk({"content": "b"})))
    assert events[0] == TextDelta("a") and len(events) == 2
    error = events[1]
    assert type(error) is UpstreamError
    assert (error.status, error.type, error.retryable) == (status, err_type, retryable)


def test_malformed_chunks_stop_decoding() -> None:
    events = decode(sse(chunk({"content": "a"}), "{not json", chunk({"content": "b"})))
    assert events[0] == TextDelta("a") and len(events) == 2
    assert events[1] == UpstreamError(502, "upstream_protocol_error", "invalid chunk", True)
    events = decode(sse("[1, 2]"))
    assert type(events[0]) is UpstreamError and events[0].type == "upstream_protocol_error"


def test_protocol_problems_after_the_finish_are_not_errors() -> None:
    finish = sse(chunk({"content": "a"}, finish="stop"))
    assert decode(finish + sse("{broken")) == [TextDelta("a"), Finish("stop")]
    assert decode(finish + b'data: {"choices":[],"usa') == [TextDelta("a"), Finish("stop")]
    explicit = decode(finish + sse({"error": {"message": "late", "type": "server_error"}}))
    assert type(explicit[-1]) is UpstreamError  # an upstream's own error is always reported


def test_line_too_long_is_not_retryable() -> None:
    decoder = provider().decoder()
    decoder._sse = type(decoder._sse)(max_line_bytes=64)
    events = decoder.feed(b"data: " + b"x" * 100)
    assert len(events) == 1 and type(events[0]) is UpstreamError
    assert (events[0].status, events[0].retryable) == (502, False)
    assert decoder.feed(b"\n\n") == [] and decoder.close() == []


def test_framing_variants() -> None:
    data = sse(chunk({"content": "a"})).replace(b"\n", b"\r\n") + b"data:\n\n: ping\n\n"
    assert decode(data + b"data:[DONE]\n\n") == [TextDelta("a")]


def test_key_is_redacted_from_stream_errors() -> None:
    events = decode(sse({"error": {"message": f"bad key {KEY}", "type": "x"}}))
    assert events[0].message == "bad key ***"  # type: ignore[union-attr]


# -------------------------------------------------------------------------- errors


def error_for(status: int, body: Any = b"", **headers: str) -> UpstreamError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return provider().parse_error(status, headers, raw)


@pytest.mark.parametrize(
    ("status", "retryable", "opens"),
    [
        (400, False, False),
        (401, False, True),
        (402, False, True),
        (403, False, True),
        (404, False, True),
        (408, True, True),
        (409, True, False),
        (413, False, False),
        (422, False, False),
        (429, True, True),
        (500, True, True),
        (529, True, True),
    ],
)
def test_status_policy(status: int, retryable: bool, opens: bool) -> None:
    error = error_for(status)
    assert (error.status, error.retryable, error.opens_circuit) == (status, retryable, opens)
    assert error.message == f"upstream returned HTTP {status}"


def test_x_should_retry_overrides() -> None:
    assert error_for(400, **{"x-should-retry": "true"}).retryable is True
    assert error_for(503, **{"X-Should-Retry": "false"}).retryable is False
    quota = {"error": {"message": "q", "type": "insufficient_quota", "code": "insufficient_quota"}}
    assert error_for(429, quota).retryable is False
    assert error_for(429, quota, **{"x-should-retry": "true"}).retryable is True


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}, None),  # no Date: no clock to compare
        (
            {
                "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT",
                "date": "Wed, 21 Oct 2026 07:28:30 GMT",
            },
            0.0,
        ),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert error_for(429, **headers).retry_after_s == expected


def test_multidict_headers() -> None:
    headers = CIMultiDict({"Retry-After": "4", "X-Should-Retry": "false"})
    error = provider().parse_error(429, headers, b"")
    assert (error.retry_after_s, error.retryable) == (4.0, False)


@pytest.mark.parametrize(
    ("payload", "message", "fields"),
    [
        ({"detail": [{"loc": ["body", "n"], "msg": "too big", "type": "x"}, {"msg": "m2"}]},
         "body.n: too big; m2", {}),
        ({"detail": "Not Found"}, "Not Found", {}),
        ({"message": "Requests rate limit exceeded"}, "Requests rate limit exceeded", {}),
        ({"error": {"message": "m", "type": "t", "param": "p", "code": 1300}}, "m",
         {"type": "t", "param": "p", "code": "1300"}),
        ({"error": {"message": "", "code": True}}, "upstream returned HTTP 400",
         {"type": "invalid_request_error", "code": None}),
        ([1, 2], "upstream returned HTTP 400", {}),
    ],
)  # fmt: skip
def test_error_body_shapes(payload: Any, message: str, fields: dict[str, Any]) -> None:
    error = error_for(400, payload)
    assert error.message == message
    for name, value in fields.items():
        assert getattr(error, name) == value


def test_redirects_are_a_misconfigured_deployment() -> None:
    error = error_for(302, b"", location="https://elsewhere")
    assert (error.status, error.retryable, error.opens_circuit) == (502, False, True)
    assert "302" in error.message


def test_error_messages_never_carry_the_key_and_are_capped() -> None:
    error = error_for(401, {"error": {"message": f"Incorrect API key provided: {KEY}."}})
    assert KEY not in error.message and "***" in error.message
    assert len(error_for(500, {"error": {"message": "x" * 10_000}}).message) == 2000


# ------------------------------------------------------------------ parse_response


def test_parse_response_problems() -> None:
    p = provider()
    bad = p.parse_response(b"<html>")
    assert type(bad[0]) is UpstreamError and bad[0].type == "upstream_protocol_error"
    assert p.parse_response(b"{}")[0].type == "upstream_protocol_error"  # type: ignore[union-attr]
    error = p.parse_response(orjson.dumps({"error": {"message": "overloaded", "type": "x"}}))
    assert len(error) == 1 and type(error[0]) is UpstreamError and error[0].retryable


def test_parse_response_refusal_and_empty_content() -> None:
    response = {
        "model": "m",
        "choices": [{"message": {"content": None, "refusal": "No."}, "finish_reason": "stop"}],
    }
    events = provider().parse_response(orjson.dumps(response))
    assert events == [ResponseMeta("m"), TextDelta("No."), Finish("stop")]
