"""parse_responses_request: Responses bodies -> chat messages and params, and every refusal."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config.model import LimitsConfig
from gateway.doors.responses_parse import parse_responses_request, with_history
from gateway.rejection import Rejected

LIMITS = LimitsConfig()


def parse(**fields: Any) -> Any:
    body = {"model": "m", "input": "hi", **fields}
    return parse_responses_request(orjson.dumps(body), {}, LIMITS)


def refused(raw: bytes | dict[str, Any], limits: LimitsConfig = LIMITS) -> Rejected:
    data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
    with pytest.raises(Rejected) as info:
        parse_responses_request(data, {}, limits)
    assert info.value.status == 400
    assert info.value.type == "invalid_request_error"
    assert info.value.message and info.value.param
    return info.value


def test_string_input_and_instructions() -> None:
    chat, ctx = parse(instructions="be brief", stream=True)
    assert chat.model == "m" and chat.stream
    assert chat.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert ctx.input_messages == [{"role": "user", "content": "hi"}]  # no instructions
    assert ctx.store is None and chat.params == {}  # not sent: the door's default applies


def test_message_items_with_parts_and_roles() -> None:
    chat, _ = parse(
        input=[
            {"role": "developer", "content": "rules"},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "id": "msg_1",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "a ", "annotations": []},
                    {"type": "output_text", "text": "cat", "annotations": []},
                ],
            },
            {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        ]
    )
    assert chat.messages == [
        {"role": "developer", "content": "rules"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AA", "detail": "low"},
                },
            ],
        },
        {"role": "assistant", "content": "a cat"},
        {"role": "user", "content": "thanks"},
    ]


def test_function_calls_join_the_assistant_turn_and_outputs_become_tool_messages() -> None:
    chat, _ = parse(
        input=[
            {"role": "user", "content": "weather in Oslo and Rome?"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"c":"Oslo"}'},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"c":"Rome"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "12C"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "20C"}],
            },
        ]
    )
    assert chat.messages[1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "w", "arguments": '{"c":"Oslo"}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {"name": "w", "arguments": '{"c":"Rome"}'},
            },
        ],
    }
    assert chat.messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "12C"},
        {"role": "tool", "tool_call_id": "c2", "content": "20C"},
    ]


def test_assistant_text_then_call_is_one_turn() -> None:
    chat, _ = parse(
        input=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "let me look"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ]
    )
    assert chat.messages[1]["content"] == "let me look"
    assert [c["id"] for c in chat.messages[1]["tool_calls"]] == ["c1"]


def test_params_map_to_chat() -> None:
    chat, ctx = parse(
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {}},
                "strict": True,
            }
        ],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        max_output_tokens=64,
        temperature=0.5,
        top_p=0.9,
        reasoning={"effort": "high", "summary": "auto"},
        user="u1",
        metadata={"a": "b"},
        store=True,
        previous_response_id="resp_1",
        text={"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
        include=["reasoning.encrypted_content"],
        truncation="auto",
    )
    assert chat.params == {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {}},
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "max_completion_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "reasoning_effort": "high",
        "user": "u1",
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}},
        },
    }
    assert chat.extra == {}  # nothing Responses-only reaches a chat upstream
    assert ctx.store is True and ctx.previous_response_id == "resp_1"
    assert ctx.metadata == {"a": "b"}
    assert ctx.tools[0]["name"] == "get_weather" and ctx.tool_choice["type"] == "function"


def test_json_object_and_plain_text_formats() -> None:
    chat, _ = parse(text={"format": {"type": "json_object"}})
    assert chat.params["response_format"] == {"type": "json_object"}
    chat, ctx = parse(text={"format": {"type": "text"}, "verbosity": "low"})
    assert "response_format" not in chat.params and ctx.text_format == {"type": "text"}


def test_parallel_tool_calls_without_tools_is_not_forwarded() -> None:
    chat, ctx = parse(parallel_tool_calls=False)
    assert "parallel_tool_calls" not in chat.params and ctx.parallel_tool_calls is False


def test_item_references_are_collected_then_resolved() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "user", "content": "hi"},
            {"type": "item_reference", "id": "rs_abc_0"},
            {"type": "item_reference", "id": "msg_abc_1"},
            {"role": "user", "content": "and?"},
        ],
    }
    raw = orjson.dumps(body)
    chat, ctx = parse_responses_request(raw, {}, LIMITS)
    assert ctx.references == ["msg_abc_1"]  # reasoning references are dropped, not looked up
    assert [m["content"] for m in chat.messages] == ["hi", "and?"]
    said = {
        "id": "msg_abc_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "hello", "annotations": []}],
    }
    chat, ctx = parse_responses_request(raw, {}, LIMITS, {"msg_abc_1": said})
    assert [m["content"] for m in chat.messages] == ["hi", "hello", "and?"]
    with pytest.raises(Rejected) as info:
        parse_responses_request(raw, {}, LIMITS, {})
    assert info.value.status == 404 and info.value.param == "input[2].id"
    assert info.value.code == "item_not_found" and "store" in info.value.message


def test_history_goes_between_instructions_and_input() -> None:
    chat, ctx = parse(instructions="sys", input="again")
    history = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"}]
    chat = with_history(chat, ctx, history, LIMITS)
    assert [m["content"] for m in chat.messages] == ["sys", "first", "ok", "again"]
    with pytest.raises(Rejected) as info:
        with_history(chat, ctx, history * 3, LimitsConfig(max_messages=4))
    assert info.value.param == "input"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "web_search_preview"}]}, "tools[0].type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools[0].type"),
        ({"tools": [{"type": "code_interpreter", "container": "auto"}]}, "tools[0].type"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
        ({"tools": [{"type": "image_generation"}]}, "tools[0].type"),
        ({"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{"type": "function", "name": "f", "parameters": "x"}]}, "tools[0].parameters"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "p"}}, "prompt"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": None}, "input"),
        ({"input": 5}, "input"),
        ({"input": []}, "input"),
        ({"input": [{"type": "web_search_call", "id": "ws"}]}, "input[0].type"),
        ({"input": [{"type": "item_reference"}]}, "input[0].id"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input"),
        ({"input": [{"foo": 1}]}, "input[0]"),
        ({"input": ["hi"]}, "input[0]"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 3}]}, "input[0].content"),
        ({"input": [{"role": "user", "content": []}]}, "input[0].content"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
            "input[0].arguments",
        ),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 1}]},
            "input[0].output",
        ),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
        ({"instructions": ["x"]}, "instructions"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": "1"}, "top_p"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 1.5}, "max_output_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"store": 1}, "store"),
        ({"parallel_tool_calls": "no"}, "parallel_tool_calls"),
        ({"user": 7}, "user"),
        ({"metadata": {"a": 1}}, "metadata"),
        ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        ({"previous_response_id": 5}, "previous_response_id"),
        ({"previous_response_id": ""}, "previous_response_id"),
        ({"text": "json"}, "text"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"reasoning": {"effort": "max"}}, "reasoning.effort"),
        ({"reasoning": "high"}, "reasoning"),
        ({"model": ""}, "model"),
        ({"model": "m" * 300}, "model"),
    ],
)
def test_refusals_name_the_field(fields: dict[str, Any], param: str) -> None:
    error = refused({"model": "m", "input": "hi", **fields})
    assert error.param == param


def test_built_in_tool_refusal_says_why() -> None:
    error = refused({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]})
    assert "web_search" in error.message and "function tools" in error.message
    assert error.code == "unsupported_tool"


def test_missing_input_and_model() -> None:
    assert refused({"model": "m"}).param == "input"
    assert refused({"input": "hi"}).param == "model"


def test_body_shape_and_depth() -> None:
    assert refused(b"").param == "body"
    assert refused(b"[1]").param == "body"
    assert refused(b"{nope").param == "body"
    deep: Any = "x"
    for _ in range(80):
        deep = {"a": deep}
    error = refused({"model": "m", "input": "hi", "metadata": deep})
    assert error.code == "json_too_deep" and error.param == "metadata"
    args = orjson.dumps(deep).decode()
    call = {"type": "function_call", "call_id": "c", "name": "f", "arguments": args}
    assert refused({"model": "m", "input": [call]}).code == "json_too_deep"


def test_item_count_and_message_size_limits() -> None:
    error = refused({"model": "m", "input": ["x"] * 5}, LimitsConfig(max_messages=4))
    assert error.code == "array_above_max_length"
    huge = "x" * 1_000_001
    assert refused({"model": "m", "input": [{"role": "user", "content": huge}]}).code == (
        "string_above_max_length"
    )
