"""Messages door parser: Anthropic request -> ChatRequest, and what reaches each adapter."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.config import parse_config
from gateway.config.model import LimitsConfig
from gateway.doors.messages_parse import parse_messages_request
from gateway.governance.gate import Governance
from gateway.providers import registry
from gateway.providers.base import ProviderSettings, TargetModel
from gateway.rejection import Rejected
from gateway.request import ChatRequest

HEADERS = {"anthropic-version": "2023-06-01"}
LIMITS = LimitsConfig()
TARGET = TargetModel(model="m", max_tokens_default=1000, drop_params=True)
EPHEMERAL = {"type": "ephemeral"}


def parse(body: dict[str, Any], headers: dict[str, str] | None = None, **kw: Any) -> ChatRequest:
    return parse_messages_request(orjson.dumps(body), headers or HEADERS, LIMITS, **kw)


def request(**fields: Any) -> dict[str, Any]:
    base = {"model": "chat", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
    return {**base, **fields}


def refused(body: dict[str, Any] | bytes, headers: dict[str, str] | None = None) -> Rejected:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(Rejected) as info:
        parse_messages_request(raw, headers or HEADERS, LIMITS)
    assert info.value.status == 400 and info.value.type == "invalid_request_error"
    return info.value


def test_minimal_request() -> None:
    chat = parse(request(stream=True))
    assert chat.model == "chat" and chat.stream
    assert chat.messages == [{"role": "user", "content": "hi"}]
    assert chat.params == {"max_tokens": 100}
    assert chat.anthropic == {}  # set: the request came through this door


def test_system_string_and_blocks() -> None:
    assert parse(request(system="be brief")).messages[0] == {
        "role": "system",
        "content": "be brief",
    }
    chat = parse(
        request(
            system=[
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": EPHEMERAL},
            ]
        )
    )
    assert chat.messages[0] == {
        "role": "system",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
    }
    assert chat.anthropic == {"blocks": {"messages[0].content[1]": {"cache_control": EPHEMERAL}}}


def test_images_become_image_url_parts() -> None:
    image_b64 = {"type": "base64", "media_type": "image/png", "data": "iVBO"}
    image_url = {"type": "url", "url": "https://x.test/cat.jpg"}
    chat = parse(
        request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": image_b64},
                        {"type": "image", "source": image_url},
                        {"type": "text", "text": "what is it?"},
                    ],
                }
            ]
        )
    )
    assert chat.messages[0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
        {"type": "text", "text": "what is it?"},
    ]


def test_tool_use_and_tool_result_turns() -> None:
    chat = parse(
        request(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": "sig"},
                        {"type": "thinking", "thinking": "unsigned", "signature": ""},
                        {"type": "redacted_thinking", "data": "xx"},
                        {"type": "text", "text": "let me check"},
                        {"type": "tool_use", "id": "tu1", "name": "w", "input": {"c": "Oslo"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and?"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "tu1",
                            "content": [{"type": "text", "text": "sunny"}],
                            "is_error": True,
                            "cache_control": EPHEMERAL,
                        },
                    ],
                },
            ]
        )
    )
    assert chat.messages[1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "let me check"}],
        "tool_calls": [
            {
                "id": "tu1",
                "type": "function",
                "function": {"name": "w", "arguments": '{"c":"Oslo"}'},
            }
        ],
    }
    # the tool result leads the rest of its turn, as chat requires after tool calls
    assert chat.messages[2] == {
        "role": "tool",
        "tool_call_id": "tu1",
        "content": [{"type": "text", "text": "sunny"}],
    }
    assert chat.messages[3] == {"role": "user", "content": [{"type": "text", "text": "and?"}]}
    assert chat.anthropic is not None
    assert chat.anthropic["blocks"] == {
        "messages[2]": {"is_error": True, "cache_control": EPHEMERAL}
    }
    assert chat.anthropic["thinking"] == {
        "messages[1]": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "redacted_thinking", "data": "xx"},
        ]
    }


def test_tools_choice_and_sampling() -> None:
    chat = parse(
        request(
            tools=[{"name": "w", "description": "d", "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "w", "disable_parallel_tool_use": True},
            stop_sequences=["END"],
            temperature=0.2,
            top_p=0.9,
            top_k=7,
            metadata={"user_id": "u-1"},
            service_tier="auto",
        )
    )
    assert chat.params == {
        "max_tokens": 100,
        "tools": [
            {
                "type": "function",
                "function": {"name": "w", "parameters": {"type": "object"}, "description": "d"},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "w"}},
        "parallel_tool_calls": False,
        "stop": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
    }
    assert chat.anthropic == {"body": {"top_k": 7}}


@pytest.mark.parametrize(
    ("choice", "mapped"), [("auto", "auto"), ("any", "required"), ("none", "none")]
)
def test_tool_choice_types(choice: str, mapped: str) -> None:
    assert parse(request(tool_choice={"type": choice})).params["tool_choice"] == mapped


@pytest.mark.parametrize(("budget", "effort"), [(1024, "low"), (8000, "medium"), (20000, "high")])
def test_thinking_is_a_reasoning_hint_and_anthropic_gets_the_exact_config(
    budget: int, effort: str
) -> None:
    thinking = {"type": "enabled", "budget_tokens": budget}
    chat = parse(request(max_tokens=budget + 1, thinking=thinking))
    assert chat.params["reasoning_effort"] == effort
    assert chat.anthropic == {"body": {"thinking": thinking}}


def test_output_config_and_top_level_cache_control() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    config = {"effort": "max", "format": {"type": "json_schema", "schema": schema}}
    chat = parse(request(output_config=config, cache_control=EPHEMERAL))
    assert chat.params["reasoning_effort"] == "high"
    assert chat.params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }
    assert chat.anthropic == {"body": {"output_config": config, "cache_control": EPHEMERAL}}


def test_count_only_needs_no_max_tokens() -> None:
    body = request()
    del body["max_tokens"]
    assert parse(body, count_only=True).max_tokens is None
    assert refused(body).param == "max_tokens"


# --- what reaches each provider kind ---------------------------------------------------

CACHED = request(
    system=[{"type": "text", "text": "sys", "cache_control": EPHEMERAL}],
    messages=[
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]}
    ],
    tools=[{"name": "w", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
    top_k=3,
)


def body_for(kind: str, chat: ChatRequest) -> tuple[dict[str, Any], dict[str, str]]:
    settings = ProviderSettings(name="p", kind=kind, base_url="http://127.0.0.1:9", api_key="k")
    upstream = registry.create(settings).build_request(chat, TARGET)
    return orjson.loads(upstream.body), upstream.headers


def test_anthropic_keeps_cache_control_top_k_and_beta() -> None:
    chat = parse(CACHED, {**HEADERS, "anthropic-beta": "prompt-caching-2024-07-31"})
    body, headers = body_for("anthropic", chat)
    assert body["system"] == [{"type": "text", "text": "sys", "cache_control": EPHEMERAL}]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": EPHEMERAL}]}
    ]
    assert body["tools"][0]["cache_control"] == EPHEMERAL
    assert body["top_k"] == 3
    assert headers["anthropic-beta"] == "prompt-caching-2024-07-31"


@pytest.mark.parametrize("kind", ["openai", "gemini", "ollama", "deepseek", "vllm"])
def test_other_kinds_never_see_anthropic_only_fields(kind: str) -> None:
    chat = parse(CACHED, {**HEADERS, "anthropic-beta": "prompt-caching-2024-07-31"})
    body, headers = body_for(kind, chat)
    text = orjson.dumps(body).decode()
    assert "cache_control" not in text and "top_k" not in text and "topK" not in text
    assert "anthropic-beta" not in headers


def test_anthropic_gets_signed_thinking_and_is_error_back() -> None:
    chat = parse(
        request(
            max_tokens=3000,
            thinking={"type": "enabled", "budget_tokens": 2000},
            messages=[
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "s"},
                        {"type": "tool_use", "id": "a", "name": "w", "input": {}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "a",
                            "content": "x",
                            "is_error": True,
                        }
                    ],
                },
            ],
        )
    )
    body, _ = body_for("anthropic", chat)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert body["max_tokens"] == 3000
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "t", "signature": "s"},
        {"type": "tool_use", "id": "a", "name": "w", "input": {}},
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "a", "content": "x", "is_error": True}
    ]
    openai_body, _ = body_for("openai", chat)
    assert "thinking" not in orjson.dumps(openai_body).decode()
    assert openai_body["reasoning_effort"] == "low"


def test_anthropic_tool_fields_go_to_anthropic_only() -> None:
    tool = {"name": "w", "input_schema": {"type": "object"}, "eager_input_streaming": True}
    chat = parse(request(tools=[{**tool, "input_examples": [{"city": "Oslo"}]}]))
    sent = body_for("anthropic", chat)[0]["tools"][0]
    assert sent["eager_input_streaming"] is True and sent["input_examples"] == [{"city": "Oslo"}]
    other = orjson.dumps(body_for("openai", chat)[0]).decode()
    assert "eager_input_streaming" not in other and "input_examples" not in other


def test_context_management_goes_to_anthropic_only() -> None:
    edits = {"edits": [{"type": "clear_tool_uses_20250919"}]}
    chat = parse(request(context_management=edits))
    assert body_for("anthropic", chat)[0]["context_management"] == edits
    assert "context_management" not in body_for("openai", chat)[0]
    assert refused(request(context_management=[])).param == "context_management"


def test_output_effort_alone_does_not_turn_anthropic_thinking_on() -> None:
    body, _ = body_for("anthropic", parse(request(output_config={"effort": "high"})))
    assert "thinking" not in body and body["output_config"] == {"effort": "high"}


# --- refusals --------------------------------------------------------------------------


def test_anthropic_version_header_is_required() -> None:
    err = refused(request(), headers={"x-api-key": "k"})
    assert err.message == "anthropic-version: header is required"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        (request(max_tokens="100"), "max_tokens"),
        (request(max_tokens=0), "max_tokens"),
        (request(max_tokens=True), "max_tokens"),
        (request(model=""), "model"),
        (request(model=7), "model"),
        (request(messages=[]), "messages"),
        (request(messages="hi"), "messages"),
        (request(messages=[{"role": "system", "content": "x"}]), "messages[0].role"),
        (request(messages=[{"role": "user"}]), "messages[0].content"),
        (request(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (
            request(messages=[{"role": "user", "content": [{"type": "document"}]}]),
            "messages[0].content[0].type",
        ),
        (
            request(messages=[{"role": "user", "content": [{"text": "no type"}]}]),
            "messages[0].content[0]",
        ),
        (
            request(messages=[{"role": "user", "content": [{"type": "text", "text": 1}]}]),
            "messages[0].content[0].text",
        ),
        (
            request(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}],
                    }
                ]
            ),
            "messages[0].content[0].type",
        ),
        (
            request(
                messages=[
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "a", "name": "f", "input": "x"}],
                    }
                ]
            ),
            "messages[0].content[0].input",
        ),
        (
            request(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "x",
                                },
                            }
                        ],
                    }
                ]
            ),
            "messages[0].content[0].source.media_type",
        ),
        (
            request(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            ),
            "messages[0].content[0].source",
        ),
        (
            request(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "a", "is_error": "yes"}],
                    }
                ]
            ),
            "messages[0].content[0].is_error",
        ),
        (request(system=[{"type": "image"}]), "system[0].type"),
        (request(system=5), "system"),
        (request(temperature=1.5), "temperature"),
        (request(top_k=-1), "top_k"),
        (request(stop_sequences="END"), "stop_sequences"),
        (request(stream="yes"), "stream"),
        (request(metadata={"user_id": 5}), "metadata.user_id"),
        (request(metadata={"other": "x"}), "metadata.other"),
        (request(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "tools[0].type"),
        (request(tools=[{"type": "bash_20250124", "name": "bash"}]), "tools[0].type"),
        (
            request(
                tools=[{"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}]
            ),
            "tools[0].type",
        ),
        (request(tools=[{"name": "f"}]), "tools[0].input_schema"),
        (request(tools=[{"name": "f", "input_schema": {}, "surprise": 1}]), "tools[0].surprise"),
        (request(tool_choice={"type": "tool"}), "tool_choice.name"),
        (request(tool_choice="auto"), "tool_choice"),
        (request(thinking={"type": "enabled", "budget_tokens": 100}), "thinking.budget_tokens"),
        (request(thinking={"type": "enabled", "budget_tokens": 2048}), "thinking.budget_tokens"),
        (request(thinking={"type": "on"}), "thinking"),
        (request(output_config={"format": {"type": "regex"}}), "output_config.format"),
        (request(output_config={"effort": ["high"]}), "output_config.effort"),
        (
            request(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": [], "data": "x"},
                            }
                        ],
                    }
                ]
            ),
            "messages[0].content[0].source.media_type",
        ),
        (request(container="c"), "container"),
        (request(mcp_servers=[]), "mcp_servers"),
        (request(betas=["x"]), "betas"),
        (request(cache_control="yes"), "cache_control"),
    ],
)
def test_bad_input_names_the_field(body: dict[str, Any], param: str) -> None:
    assert refused(body).param == param


def test_server_tool_refusal_says_why() -> None:
    err = refused(request(tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert "server tool 'web_search_20250305'" in err.message and err.code == "unsupported_tool"


@pytest.mark.parametrize(
    ("raw", "code"),
    [(b"", "invalid_json"), (b"{", "invalid_json"), (b"[]", "invalid_json")],
)
def test_bodies_that_are_not_json_objects(raw: bytes, code: str) -> None:
    assert refused(raw).code == code


def test_depth_and_size_limits() -> None:
    deep: Any = "x"
    for _ in range(LIMITS.max_json_depth + 2):
        deep = [deep]
    tool = {"type": "tool_use", "id": "a", "name": "f", "input": {"v": deep}}
    err = refused(request(messages=[{"role": "assistant", "content": [tool]}]))
    assert err.code == "json_too_deep" and err.param == "messages"
    huge = request(messages=[{"role": "user", "content": "x" * 1_000_001}])
    assert refused(huge).code == "string_above_max_length"
    many = request(messages=[{"role": "user", "content": "x"}] * (LIMITS.max_messages + 1))
    assert refused(many).code == "array_above_max_length"


def test_a_tool_turn_without_signed_thinking_goes_to_anthropic_without_thinking() -> None:
    """The first turn was won by a provider that does not sign its thinking: Anthropic
    would refuse thinking in this tool loop, so the request goes without it."""
    turn = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "from another provider", "signature": ""},
                {"type": "tool_use", "id": "a", "name": "w", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "x"}]},
    ]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    body, _ = body_for(
        "anthropic", parse(request(max_tokens=2000, thinking=thinking, messages=turn))
    )
    assert "thinking" not in body
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "a", "name": "w", "input": {}}
    ]
    # with no tool loop open, thinking stays on
    body, _ = body_for("anthropic", parse(request(max_tokens=2000, thinking=thinking)))
    assert body["thinking"] == thinking


def test_signed_thinking_is_left_out_while_a_data_policy_inspects() -> None:
    """Signed thinking can be neither inspected nor redacted: with a PII policy it is not
    sent, and the tool loop it began goes to Anthropic without thinking."""
    turn = [
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "mail jane.doe@example.com", "signature": "s"},
                {"type": "tool_use", "id": "a", "name": "w", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": "x"}]},
    ]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    chat = parse(request(max_tokens=2000, thinking=thinking, messages=turn))
    config = {
        "providers": {"an": {"kind": "anthropic", "base_url": "http://a.test"}},
        "deployments": {"c": {"provider": "an", "model": "m"}},
        "routes": {"chat": {"deployments": ["c"]}},
    }
    open_gate = Governance(parse_config(config, env={}))
    assert open_gate.decide(chat, "chat").chat.anthropic == chat.anthropic
    gate = Governance(parse_config({**config, "governance": {"pii": {"email": "redact"}}}, env={}))
    governed = gate.decide(chat, "chat").chat
    assert governed.anthropic is not None and "thinking" not in governed.anthropic
    assert chat.anthropic is not None and "thinking" in chat.anthropic, "not mutated"
    body, _ = body_for("anthropic", governed)
    assert "jane.doe" not in orjson.dumps(body).decode() and "thinking" not in body
