"""OpenAI Responses request body -> ChatRequest, plus the door context the engine never sees.

`input` (a string or a list of items) becomes OpenAI Chat messages so that every provider
adapter works unchanged; `instructions` becomes a leading system message that a later turn
does not inherit (as in the real API). What the Response object echoes back, and what the
door needs for `store` / `previous_response_id`, stays in `ResponsesContext`.

Refused with a 400 naming the field: `background: true`, built-in tools, item types the
gateway cannot map, and every wrong type. Known fields with no chat counterpart are
dropped (UNMAPPED); unknown fields are refused, since a chat upstream could not take them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.model import LimitsConfig
from gateway.doors.bounds import bad, load_body, model_name
from gateway.doors.responses_input import InputReader
from gateway.request import ChatRequest

# Accepted and not forwarded: no chat upstream has them, or they only matter for
# OpenAI-hosted state and tools (see docs/responses.md).
UNMAPPED = frozenset(
    {
        "include",
        "truncation",
        "service_tier",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "stream_options",
        "max_tool_calls",
        "top_logprobs",
    }
)
MAPPED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "temperature",
        "top_p",
        "text",
        "reasoning",
        "parallel_tool_calls",
        "user",
        "metadata",
        "stream",
        "store",
        "previous_response_id",
        "background",
    }
)
REFUSED_FIELDS = {
    "conversation": "conversations are not supported; use previous_response_id",
    "prompt": "stored prompt templates are not supported; send input and instructions",
}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_RESPONSE_ID_CHARS = 256


@dataclass(slots=True)
class ResponsesContext:
    """What the Responses door keeps beside the ChatRequest: the echo of the request in
    the Response object, and the conversation pieces for `store`."""

    instructions: str | None = None
    input_messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)  # flat shape, as sent
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    reasoning_effort: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    store: bool | None = None  # None: not sent (the door's configured default applies)
    previous_response_id: str | None = None
    references: list[str] = field(default_factory=list)  # item_reference ids to resolve


def parse_responses_request(
    raw: bytes,
    headers: Mapping[str, str],
    limits: LimitsConfig,
    items: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[ChatRequest, ResponsesContext]:
    """`items`: the output items that `item_reference`s name, by id. Without them the
    ids are collected in `ResponsesContext.references` (for the caller to look up and
    parse again with them) and the references are left out of the messages."""
    body = load_body(raw, limits)
    for key in body:
        if key in REFUSED_FIELDS and body[key] is not None:
            raise bad(f"'{key}': {REFUSED_FIELDS[key]}", key, "unsupported_parameter")
        if key not in MAPPED and key not in UNMAPPED and key not in REFUSED_FIELDS:
            shown = key[:64] or '""'  # a key is client text of any length
            raise bad(
                f"Unrecognized request argument supplied: {shown}", shown, "unknown_parameter"
            )
    model = model_name(body)
    if body.get("background") not in (None, False):
        raise bad(
            "'background' responses are not supported: the gateway answers while the "
            "client waits (use stream: true for long answers)",
            "background",
            "unsupported_parameter",
        )
    ctx = ResponsesContext()
    ctx.instructions = _optional(body, "instructions", str, "a string")
    reader = InputReader(limits, items)
    ctx.input_messages = reader.messages(body.get("input"))
    ctx.references = reader.references
    stream = bool(_optional(body, "stream", bool, "a boolean"))
    ctx.store = _optional(body, "store", bool, "a boolean")
    ctx.previous_response_id = _response_id(body.get("previous_response_id"))
    if not ctx.input_messages and not ctx.references and ctx.previous_response_id is None:
        raise bad(
            "'input' holds nothing to answer (reasoning items are dropped)", "input", "empty_input"
        )
    params: dict[str, Any] = {}
    _sampling(body, ctx, params)
    _tools(body, ctx, params)
    _text_format(body.get("text"), ctx, params)
    _reasoning(body.get("reasoning"), ctx, params)
    ctx.metadata = _metadata(body.get("metadata"))
    ctx.user = _optional(body, "user", str, "a string")
    if ctx.user is not None:
        params["user"] = ctx.user
    chat = ChatRequest(model, [], stream, True, params)
    return with_history(chat, ctx, [], limits), ctx


def with_history(
    chat: ChatRequest,
    ctx: ResponsesContext,
    history: list[dict[str, Any]],
    limits: LimitsConfig,
) -> ChatRequest:
    """The chat messages of this turn: instructions, then the stored conversation of
    `previous_response_id` (if any), then this turn's input."""
    messages: list[dict[str, Any]] = []
    if ctx.instructions:
        messages.append({"role": "system", "content": ctx.instructions})
    messages.extend(history)
    messages.extend(ctx.input_messages)
    if len(messages) > limits.max_messages:
        raise bad(
            f"the conversation has more than {limits.max_messages} messages "
            "(input items plus the stored conversation of previous_response_id)",
            "input",
            "array_above_max_length",
        )
    chat.messages = messages
    return chat


def _optional(body: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise bad(f"'{key}' must be {what}", key, "invalid_type")
    return value


def _response_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_RESPONSE_ID_CHARS:
        raise bad(
            "'previous_response_id' must be the id of a stored response (a string)",
            "previous_response_id",
            "invalid_type",
        )
    return value


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(f"'{key}' must be a number between {low:g} and {high:g}", key)
    return value


def _sampling(body: dict[str, Any], ctx: ResponsesContext, params: dict[str, Any]) -> None:
    ctx.temperature = _number(body, "temperature", 0.0, 2.0)
    ctx.top_p = _number(body, "top_p", 0.0, 1.0)
    if ctx.temperature is not None:
        params["temperature"] = ctx.temperature
    if ctx.top_p is not None:
        params["top_p"] = ctx.top_p
    limit = body.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise bad("'max_output_tokens' must be a positive integer", "max_output_tokens")
        ctx.max_output_tokens = params["max_completion_tokens"] = limit


def _tools(body: dict[str, Any], ctx: ResponsesContext, params: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad("'tools' must be an array of tools", "tools", "invalid_type")
        ctx.tools = [_function_tool(tool, i) for i, tool in enumerate(tools)]
    if ctx.tools:
        params["tools"] = [_nested_tool(tool) for tool in ctx.tools]
    choice = body.get("tool_choice")
    if choice is not None:
        ctx.tool_choice = choice
        params["tool_choice"] = _tool_choice(choice)
    parallel = _optional(body, "parallel_tool_calls", bool, "a boolean")
    if parallel is not None:
        ctx.parallel_tool_calls = parallel
        if ctx.tools:  # OpenAI refuses parallel_tool_calls without tools
            params["parallel_tool_calls"] = parallel


def _function_tool(tool: Any, i: int) -> dict[str, Any]:
    at = f"tools[{i}]"
    if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
        raise bad(f"'{at}' must be an object with a 'type'", at)
    kind = tool["type"]
    if kind != "function":
        raise bad(
            f"'{at}.type' is '{kind}': built-in and hosted tools (web search, file search, "
            "code interpreter, computer use, image generation, MCP, shell, custom tools) are "
            "not supported by the gateway; only function tools are",
            f"{at}.type",
            "unsupported_tool",
        )
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"'{at}.name' is required and must be a non-empty string", f"{at}.name")
    for key, kind_, what in (
        ("description", str, "a string"),
        ("parameters", dict, "a JSON schema object"),
        ("strict", bool, "a boolean"),
    ):
        value = tool.get(key)
        if value is not None and not isinstance(value, kind_):
            raise bad(f"'{at}.{key}' must be {what}", f"{at}.{key}", "invalid_type")
    out: dict[str, Any] = {"type": "function", "name": name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            out[key] = tool[key]
    return out


def _nested_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {k: v for k, v in tool.items() if k != "type"}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad("'tool_choice.name' must name a function", "tool_choice.name")
        return {"type": "function", "function": {"name": name}}
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        raise bad(
            f"'tool_choice.type' is '{choice['type']}': only 'none', 'auto', 'required' or "
            "{type: function, name} are supported",
            "tool_choice.type",
            "unsupported_value",
        )
    raise bad(
        "'tool_choice' must be 'none', 'auto', 'required' or {type: function, name}",
        "tool_choice",
    )


def _text_format(text: Any, ctx: ResponsesContext, params: dict[str, Any]) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise bad("'text' must be an object", "text", "invalid_type")
    fmt = text.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or not isinstance(fmt.get("type"), str):
        raise bad("'text.format' must be an object with a 'type'", "text.format")
    kind = fmt["type"]
    if kind == "json_object":
        params["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not name:
            raise bad("'text.format.name' is required for json_schema", "text.format.name")
        if not isinstance(schema, dict):
            raise bad("'text.format.schema' must be a JSON schema object", "text.format.schema")
        spec: dict[str, Any] = {"name": name, "schema": schema}
        for key, kind_ in (("description", str), ("strict", bool)):
            value = fmt.get(key)
            if value is not None and not isinstance(value, kind_):
                raise bad(f"'text.format.{key}' has the wrong type", f"text.format.{key}")
            if value is not None:
                spec[key] = value
        params["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif kind != "text":
        raise bad(
            "'text.format.type' must be 'text', 'json_object' or 'json_schema'",
            "text.format.type",
        )
    ctx.text_format = fmt


def _reasoning(reasoning: Any, ctx: ResponsesContext, params: dict[str, Any]) -> None:
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise bad("'reasoning' must be an object", "reasoning", "invalid_type")
    effort = reasoning.get("effort")
    if effort is None:
        return
    if effort not in REASONING_EFFORTS:
        raise bad(
            f"'reasoning.effort' must be one of {', '.join(REASONING_EFFORTS)}",
            "reasoning.effort",
        )
    ctx.reasoning_effort = params["reasoning_effort"] = effort


def _metadata(metadata: Any) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA_PAIRS:
        raise bad(
            f"'metadata' must be an object of at most {MAX_METADATA_PAIRS} string pairs",
            "metadata",
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or not isinstance(value, str):
            raise bad(
                f"'metadata.{key[:MAX_METADATA_KEY]}' must be a string (keys up to "
                f"{MAX_METADATA_KEY} characters)",
                "metadata",
            )
        if len(value) > MAX_METADATA_VALUE:
            raise bad(
                f"'metadata.{key}' is longer than {MAX_METADATA_VALUE} characters", "metadata"
            )
    return metadata
