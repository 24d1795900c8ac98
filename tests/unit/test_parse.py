"""parse_chat_request: limits (depth, message length, counts) and the shapes adapters rely on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.model import LimitsConfig
from gateway.doors.bounds import (
    MAX_MESSAGE_CHARS,
    MAX_MODEL_CHARS,
    SAFE_JSON_DEPTH,
    json_depth_exceeds,
)
from gateway.doors.chat_parse import parse_chat_request
from gateway.server.errors import ApiError

LIMITS = LimitsConfig()
USER = {"role": "user", "content": "hi"}
CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def body(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "messages": [USER], **fields})


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def rejected(raw: bytes, limits: LimitsConfig = LIMITS) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_chat_request(raw, limits)
    error = info.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    assert error.message and error.param
    return error


def test_valid_request_with_tool_round_trip() -> None:
    messages = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 12}'},
    ]
    chat = parse_chat_request(
        orjson.dumps(
            {
                "model": "m",
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
                "reasoning_effort": "low",
                "response_format": {"type": "json_object"},
            }
        ),
        LIMITS,
    )
    assert chat.stream and chat.include_usage
    assert chat.messages == messages
    assert chat.params == {"reasoning_effort": "low", "response_format": {"type": "json_object"}}


# -- JSON depth ---------------------------------------------------------------------------


def test_depth_helper_counts_levels() -> None:
    assert not json_depth_exceeds("x", 0)
    assert json_depth_exceeds([], 0)
    assert not json_depth_exceeds([], 1)
    assert json_depth_exceeds({"a": [{}]}, 2)
    assert not json_depth_exceeds({"a": [{}]}, 3)
    assert json_depth_exceeds(nested(5000), 64)  # iterative: no RecursionError


@given(depth=st.integers(min_value=0, max_value=90), limit=st.integers(min_value=1, max_value=90))
@settings(max_examples=60, deadline=None)
def test_depth_helper_agrees_with_a_recursive_count(depth: int, limit: int) -> None:
    value = {"a": [1, {"b": nested(depth)}], "c": []}
    assert json_depth_exceeds(value, limit) == (depth + 3 > limit)


def test_body_at_the_depth_limit_passes_and_one_deeper_fails() -> None:
    limits = LimitsConfig(max_json_depth=10)
    # the body object is level 1; nested(9) is 9 more levels: 10 in all
    parse_chat_request(body(metadata=nested(9, leaf="x")), limits)
    error = rejected(body(metadata=nested(10, leaf="x")), limits)
    assert error.param == "metadata" and error.code == "json_too_deep"
    assert "10 JSON levels" in error.message


def test_deep_messages_name_the_field() -> None:
    deep = {"role": "user", "content": [{"type": "text", "text": "x", "extra": nested(80)}]}
    error = rejected(orjson.dumps({"model": "m", "messages": [deep]}))
    assert error.param == "messages" and error.code == "json_too_deep"


def test_depth_beyond_what_orjson_parses_is_a_depth_error() -> None:
    raw = b'{"model": "m", "x": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    error = rejected(raw)
    assert error.param == "body" and error.code == "json_too_deep"


def test_configured_depth_is_clamped_to_what_can_be_forwarded() -> None:
    limits = LimitsConfig(max_json_depth=10_000)
    error = rejected(body(metadata=nested(SAFE_JSON_DEPTH + 5)), limits)
    assert error.code == "json_too_deep"
    orjson.dumps(nested(SAFE_JSON_DEPTH + 2))  # what passes can be serialized again


@pytest.mark.parametrize("arguments", ["[" * 100 + "]" * 100, '{"a":' * 300 + "1" + "}" * 300])
def test_deep_json_inside_tool_arguments_is_rejected(arguments: str) -> None:
    call = {**CALL, "function": {"name": "f", "arguments": arguments}}
    messages = [USER, {"role": "assistant", "tool_calls": [call]}]
    error = rejected(orjson.dumps({"model": "m", "messages": messages}))
    assert error.param == "messages[1].tool_calls[0].function.arguments"
    assert error.code == "json_too_deep"


def test_deep_json_inside_a_tool_result_is_rejected() -> None:
    messages = [
        USER,
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "[" * 100 + "]" * 100},
    ]
    error = rejected(orjson.dumps({"model": "m", "messages": messages}))
    assert error.param == "messages[2].content"


def test_brackets_in_plain_text_arguments_are_fine() -> None:
    text = "not json " + "[" * 500
    call = {**CALL, "function": {"name": "f", "arguments": text}}
    messages = [USER, {"role": "assistant", "tool_calls": [call]}]
    parse_chat_request(orjson.dumps({"model": "m", "messages": messages}), LIMITS)


# -- sizes ----------------------------------------------------------------------------------


def test_message_content_length_limit() -> None:
    parse_chat_request(
        body(messages=[{"role": "user", "content": "x" * MAX_MESSAGE_CHARS}]), LIMITS
    )
    error = rejected(
        body(messages=[USER, {"role": "user", "content": "x" * (MAX_MESSAGE_CHARS + 1)}])
    )
    assert error.param == "messages[1].content"
    assert error.code == "string_above_max_length"


def test_message_length_counts_text_parts_and_tool_arguments() -> None:
    half = "x" * (MAX_MESSAGE_CHARS // 2 + 1)
    parts = [{"type": "text", "text": half}, {"type": "text", "text": half}]
    error = rejected(body(messages=[{"role": "user", "content": parts}]))
    assert error.param == "messages[0].content"
    call = {**CALL, "function": {"name": "f", "arguments": half}}
    error = rejected(body(messages=[{"role": "assistant", "content": half, "tool_calls": [call]}]))
    assert error.param == "messages[0].tool_calls"


def test_too_many_messages_and_long_model_name() -> None:
    limits = LimitsConfig(max_messages=3)
    error = rejected(body(messages=[USER] * 4), limits)
    assert error.param == "messages" and error.code == "array_above_max_length"
    error = rejected(body(model="m" * (MAX_MODEL_CHARS + 1)))
    assert error.param == "model"


# -- shapes ---------------------------------------------------------------------------------


def assistant(**fields: Any) -> bytes:
    return body(messages=[USER, {"role": "assistant", **fields}])


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (assistant(tool_calls=5), "messages[1].tool_calls"),
        (assistant(tool_calls={"id": "x"}), "messages[1].tool_calls"),
        (assistant(tool_calls=["x"]), "messages[1].tool_calls[0]"),
        (assistant(tool_calls=[{**CALL, "id": None}]), "messages[1].tool_calls[0].id"),
        (assistant(tool_calls=[{**CALL, "id": ""}]), "messages[1].tool_calls[0].id"),
        (assistant(tool_calls=[{**CALL, "type": "custom"}]), "messages[1].tool_calls[0].type"),
        (assistant(tool_calls=[{**CALL, "function": "f"}]), "messages[1].tool_calls[0].function"),
        (
            assistant(tool_calls=[{**CALL, "function": {"arguments": "{}"}}]),
            "messages[1].tool_calls[0].function.name",
        ),
        (
            assistant(tool_calls=[{**CALL, "function": {"name": "f", "arguments": 5}}]),
            "messages[1].tool_calls[0].function.arguments",
        ),
        (assistant(content=None, function_call=[1]), "messages[1].function_call"),
        (body(messages=[USER, {"role": "tool", "content": "r"}]), "messages[1].tool_call_id"),
        (
            body(messages=[USER, {"role": "tool", "tool_call_id": 7, "content": "r"}]),
            "messages[1].tool_call_id",
        ),
        (body(messages=[{"role": "user", "name": 5, "content": "x"}]), "messages[0].name"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages[0].content[0].text",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
            "messages[0].content[0].image_url.url",
        ),
        (body(stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        (body(stream_options=[]), "stream_options"),
        (body(reasoning_effort=["high"]), "reasoning_effort"),
        (body(reasoning_effort={}), "reasoning_effort"),
        (body(user=1), "user"),
        (body(seed="1"), "seed"),
        (body(parallel_tool_calls="no"), "parallel_tool_calls"),
        (body(logprobs=1), "logprobs"),
        (body(top_logprobs=-1), "top_logprobs"),
        (body(response_format="json"), "response_format"),
        (body(response_format={"type": 1}), "response_format"),
    ],
)
def test_bad_shapes_name_the_param(raw: bytes, param: str) -> None:
    error = rejected(raw)
    assert error.param == param
    assert f"'{param}'" in error.message


def test_lenient_shapes_still_pass() -> None:
    ok = [
        assistant(content=None, tool_calls=[{"id": "c", "function": {"name": "f"}}]),
        assistant(content=None, tool_calls=[{**CALL, "function": {"name": "f", "arguments": {}}}]),
        assistant(content="", tool_calls=[]),
        assistant(content=None),
        body(stream_options={"include_usage": None}),
        body(stream_options={"include_usage": False, "continuous_usage_stats": True}),
        body(reasoning_effort=None, user=None, seed=None),
        body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]),
    ]
    for raw in ok:
        parse_chat_request(raw, LIMITS)


def test_nan_and_duplicate_keys() -> None:
    error = rejected(b'{"model": "m", "messages": [], "temperature": NaN}')
    assert error.param == "body" and error.code == "invalid_json"
    chat = parse_chat_request(
        b'{"model": "a", "model": "m", "messages": [{"role":"user","content":"x"}]}', LIMITS
    )
    assert chat.model == "m"  # the last duplicate wins, as in every JSON parser clients use


def test_error_messages_never_echo_the_body() -> None:
    secret = "sk-live-" + "A" * 40
    for raw in (
        b'{"model": "' + secret.encode() + b'", "messages": 1}',
        b"{" + secret.encode(),
        body(messages=[{"role": "user", "content": [{"type": "text", "text": 1, "k": secret}]}]),
    ):
        assert secret not in rejected(raw).message
