"""Request body -> validated ChatRequest. Every problem is a `Rejected` (400) naming the field.

Besides the types of the OpenAI Chat Completions fields the gateway reads, the
body is held to the bounds in `LimitsConfig` and below: number of messages,
JSON nesting depth (checked iteratively, never by recursion), characters per
message, and the length of `model`. Shapes that an adapter would otherwise
trip over (tool calls, tool results, hashable enum-like fields) are checked
here, so that a malformed request is a 400 and never a 500.
"""

from __future__ import annotations

from typing import Any

from gateway.config.model import LimitsConfig
from gateway.doors.bounds import (
    MAX_MESSAGE_CHARS,
    bad,
    depth_limit,
    embedded_too_deep,
    load_body,
    model_name,
)
from gateway.request import KNOWN_FIELDS, ChatRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_STRING_PARAMS = ("reasoning_effort", "user")  # adapters look these up in dicts
_BOOL_PARAMS = ("parallel_tool_calls", "logprobs")


def parse_chat_request(raw: bytes, limits: LimitsConfig) -> ChatRequest:
    body = load_body(raw, limits)
    depth = depth_limit(limits)
    model = model_name(body)
    messages = body.get("messages")
    if messages is None:
        raise bad("'messages' is required", "messages")
    if not isinstance(messages, list):
        raise bad("'messages' must be an array of message objects", "messages")
    if not messages:
        raise bad("'messages' must contain at least one message", "messages")
    if len(messages) > limits.max_messages:
        raise bad(
            f"'messages' has more than {limits.max_messages} entries",
            "messages",
            "array_above_max_length",
        )
    max_chars: int = getattr(limits, "max_message_chars", MAX_MESSAGE_CHARS)
    for i, message in enumerate(messages):
        _check_message(message, i, max_chars, depth)

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad("'stream' must be a boolean", "stream")
    include_usage = False
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise bad("'stream_options' must be an object", "stream_options")
        usage = stream_options.get("include_usage")
        if usage is not None and not isinstance(usage, bool):
            raise bad(
                "'stream_options.include_usage' must be a boolean", "stream_options.include_usage"
            )
        include_usage = usage is True

    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("model", "messages", "stream", "stream_options"):
            continue
        if key in KNOWN_FIELDS:
            if value is not None:
                params[key] = value
        else:
            extra[key] = value
    _check_params(params)
    return ChatRequest(model, messages, stream, include_usage, params, extra)


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    total = 0
    for part in content if isinstance(content, list) else ():
        for key in ("text", "refusal"):
            text = part.get(key) if isinstance(part, dict) else None
            if isinstance(text, str):
                total += len(text)
    return total


def _check_message(message: Any, i: int, max_chars: int, depth: int) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise bad(f"'{where}' must be an object", where)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise bad(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
    name = message.get("name")
    if name is not None and not isinstance(name, str):
        raise bad(f"'{where}.name' must be a string", f"{where}.name")
    content = message.get("content")
    if content is not None:
        _check_content(content, where)
    chars = _text_length(content)
    if chars > max_chars:
        raise bad(
            f"'{where}.content' is too long: {chars} characters, the limit is {max_chars}",
            f"{where}.content",
            "string_above_max_length",
        )
    calls = message.get("tool_calls") if role == "assistant" else None
    if calls is not None:
        chars += _check_tool_calls(calls, where, depth)
        if chars > max_chars:
            raise bad(
                f"'{where}' is too long: {chars} characters of content and tool call "
                f"arguments, the limit is {max_chars}",
                f"{where}.tool_calls",
                "string_above_max_length",
            )
    if role == "assistant" and message.get("function_call") is not None:
        _check_function(message["function_call"], f"{where}.function_call", depth)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(
                f"'{where}.tool_call_id' is required on tool messages and must be a "
                "non-empty string (the id of the assistant's tool call it answers)",
                f"{where}.tool_call_id",
            )
        text = content if isinstance(content, str) else ""
        if isinstance(content, list):
            text = "".join(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
        if embedded_too_deep(text, depth):
            raise bad(
                f"'{where}.content' holds JSON nested deeper than the limit of {depth} levels",
                f"{where}.content",
                "json_too_deep",
            )
    if content is None:
        if role == "assistant" and (calls or message.get("function_call")):
            return
        if role == "assistant" and "content" in message:
            return
        raise bad(f"'{where}.content' is required", f"{where}.content")


def _check_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise bad(f"'{where}.content' must be a string or an array of parts", f"{where}.content")
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad(f"'{at}' must be an object with a 'type'", at)
        kind = part["type"]
        if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
            raise bad(f"'{at}.{kind}' must be a string", f"{at}.{kind}")
        if kind == "image_url":
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str):
                raise bad(f"'{at}.image_url.url' must be a string", f"{at}.image_url.url")


def _check_tool_calls(calls: Any, where: str, depth: int) -> int:
    """Validate an assistant message's `tool_calls`; return the characters of arguments."""
    if not isinstance(calls, list):
        raise bad(f"'{where}.tool_calls' must be an array of tool calls", f"{where}.tool_calls")
    chars = 0
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        if not isinstance(call, dict):
            raise bad(f"'{at}' must be an object", at)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise bad(f"'{at}.id' is required and must be a non-empty string", f"{at}.id")
        kind = call.get("type")
        if kind is not None and kind != "function":
            raise bad(f"'{at}.type' must be 'function'", f"{at}.type")
        chars += _check_function(call.get("function"), f"{at}.function", depth)
    return chars


def _check_function(function: Any, at: str, depth: int) -> int:
    """`{"name": str, "arguments": JSON text}` (an object is taken too); returns its length."""
    if not isinstance(function, dict):
        raise bad(f"'{at}' must be an object with 'name' and 'arguments'", at)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad(f"'{at}.name' is required and must be a non-empty string", f"{at}.name")
    arguments = function.get("arguments")
    if arguments is None or isinstance(arguments, dict):
        return 0
    if not isinstance(arguments, str):
        raise bad(f"'{at}.arguments' must be a string of JSON text", f"{at}.arguments")
    if embedded_too_deep(arguments, depth):
        raise bad(
            f"'{at}.arguments' holds JSON nested deeper than the limit of {depth} levels",
            f"{at}.arguments",
            "json_too_deep",
        )
    return len(arguments)


def _check_params(params: dict[str, Any]) -> None:
    for name, (low, high) in _NUMBER_RANGES.items():
        value = params.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise bad(f"'{name}' must be a number between {low:g} and {high:g}", name)
    for name in ("max_tokens", "max_completion_tokens"):
        value = params.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise bad(f"'{name}' must be a positive integer", name)
    n = params.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise bad("'n' must be a positive integer", "n")
    if n is not None and n > 1:
        raise bad("'n' greater than 1 is not supported by the gateway", "n", "unsupported_value")
    seed = params.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad("'seed' must be an integer", "seed")
    top_logprobs = params.get("top_logprobs")
    if top_logprobs is not None and (
        isinstance(top_logprobs, bool) or not isinstance(top_logprobs, int) or top_logprobs < 0
    ):
        raise bad("'top_logprobs' must be a non-negative integer", "top_logprobs")
    for name in _STRING_PARAMS:
        if name in params and not isinstance(params[name], str):
            raise bad(f"'{name}' must be a string", name)
    for name in _BOOL_PARAMS:
        if name in params and not isinstance(params[name], bool):
            raise bad(f"'{name}' must be a boolean", name)
    response_format = params.get("response_format")
    if response_format is not None and not (
        isinstance(response_format, dict) and isinstance(response_format.get("type"), str)
    ):
        raise bad("'response_format' must be an object with a string 'type'", "response_format")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise bad("'stop' must be a string or an array of strings", "stop")
    tools = params.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad("'tools' must be an array", "tools")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise bad(f"'tools[{i}].function.name' is required", f"tools[{i}].function.name")
    choice = params.get("tool_choice")
    if choice is not None and not (
        choice in ("none", "auto", "required") or isinstance(choice, dict)
    ):
        raise bad("'tool_choice' must be 'none', 'auto', 'required' or an object", "tool_choice")
