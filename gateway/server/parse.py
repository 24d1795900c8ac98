"""Request body -> validated ChatRequest. Every problem is an ApiError naming the field."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config.model import LimitsConfig
from gateway.request import KNOWN_FIELDS, ChatRequest
from gateway.server.errors import ApiError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


def _bad(message: str, param: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param)


def parse_chat_request(raw: bytes, limits: LimitsConfig) -> ChatRequest:
    if not raw.strip():
        raise _bad("request body is empty; expected a JSON object", "body", "invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON: {exc}", "body", "invalid_json") from None
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object", "body", "invalid_json")

    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("'model' is required and must be a non-empty string", "model")
    messages = body.get("messages")
    if messages is None:
        raise _bad("'messages' is required", "messages")
    if not isinstance(messages, list):
        raise _bad("'messages' must be an array of message objects", "messages")
    if not messages:
        raise _bad("'messages' must contain at least one message", "messages")
    if len(messages) > limits.max_messages:
        raise _bad(f"'messages' has more than {limits.max_messages} entries", "messages")
    for i, message in enumerate(messages):
        _check_message(message, i)

    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _bad("'stream' must be a boolean", "stream")
    include_usage = False
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise _bad("'stream_options' must be an object", "stream_options")
        include_usage = stream_options.get("include_usage", False) is True

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


def _check_message(message: Any, i: int) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _bad(f"'{where}' must be an object", where)
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise _bad(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            return
        if role == "assistant" and "content" in message:
            return
        raise _bad(f"'{where}.content' is required", f"{where}.content")
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _bad(f"'{where}.content' must be a string or an array of parts", f"{where}.content")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _bad(
                f"'{where}.content[{j}]' must be an object with a 'type'", f"{where}.content[{j}]"
            )


def _check_params(params: dict[str, Any]) -> None:
    for name, (low, high) in _NUMBER_RANGES.items():
        value = params.get(name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise _bad(f"'{name}' must be a number between {low:g} and {high:g}", name)
    for name in ("max_tokens", "max_completion_tokens"):
        value = params.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise _bad(f"'{name}' must be a positive integer", name)
    n = params.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise _bad("'n' must be a positive integer", "n")
    if n is not None and n > 1:
        raise _bad("'n' greater than 1 is not supported by the gateway", "n", "unsupported_value")
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        raise _bad("'stop' must be a string or an array of strings", "stop")
    tools = params.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _bad("'tools' must be an array", "tools")
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise _bad(f"'tools[{i}].function.name' is required", f"tools[{i}].function.name")
    choice = params.get("tool_choice")
    if choice is not None and not (
        choice in ("none", "auto", "required") or isinstance(choice, dict)
    ):
        raise _bad("'tool_choice' must be 'none', 'auto', 'required' or an object", "tool_choice")
