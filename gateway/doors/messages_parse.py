"""Anthropic Messages API request (`POST /v1/messages`) -> ChatRequest.

The messages are mapped onto OpenAI Chat shape so every adapter works unchanged:
`system` becomes a leading system message; text and image blocks become parts; an
assistant's `tool_use` blocks become its `tool_calls`; a user's `tool_result` blocks
become `tool` messages (ahead of the rest of that turn, as Anthropic orders them).
What only Anthropic can take (cache_control, is_error, signed thinking blocks, top_k, the
exact thinking config, anthropic-beta) goes to `ChatRequest.anthropic`, which the
Anthropic adapter reads and every other adapter ignores. `thinking` also becomes a
`reasoning_effort` hint (low / medium / high by budget) for routing and other providers.

Strict like the real API: `anthropic-version` and `max_tokens` are required, unknown
top-level fields, block types and server tools are refused with a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.model import LimitsConfig
from gateway.doors.bounds import MAX_MODEL_CHARS, bad, depth_limit, load_body
from gateway.doors.messages_content import MessagesBuilder
from gateway.request import AnthropicNative, ChatRequest

FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "context_management",
    }
)
# Hints about Anthropic's own fleet and account: accepted and dropped.
DROPPED = frozenset(
    {"service_tier", "speed", "inference_geo", "diagnostics", "user_profile_id", "workspace_id"}
)
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict with other casing
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def effort_for_budget(budget: int) -> str:
    """Anthropic's thinking budget -> a reasoning_effort hint (the adapters' budgets inverted)."""
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def parse_messages_request(
    raw: bytes, headers: Mapping[str, str], limits: LimitsConfig, *, count_only: bool = False
) -> ChatRequest:
    """`count_only` parses a count_tokens body (no max_tokens, no stream)."""
    if not _header(headers, "anthropic-version"):
        raise bad("anthropic-version: header is required", "anthropic-version")
    body = load_body(raw, limits)
    for key in body:
        if key not in FIELDS and key not in DROPPED:
            raise bad(f"{key!r}: this field is not supported by the gateway", key or "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model: Field required (a non-empty string)", "model")
    if len(model) > MAX_MODEL_CHARS:
        raise bad(f"model: longer than {MAX_MODEL_CHARS} characters", "model")

    params: dict[str, Any] = {}
    native: AnthropicNative = {}
    max_tokens = body.get("max_tokens")
    if max_tokens is None and not count_only:
        raise bad("max_tokens: Field required", "max_tokens")
    if max_tokens is not None:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise bad("max_tokens: must be an integer of at least 1", "max_tokens")
        params["max_tokens"] = max_tokens
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad("stream: must be a boolean", "stream")

    builder = MessagesBuilder(limits.max_messages, depth_limit(limits))
    builder.system(body.get("system"))
    builder.conversation(body.get("messages"))
    _sampling(body, params, native)
    _metadata(body.get("metadata"), params)
    builder.tools(body.get("tools"), params)
    _tool_choice(body.get("tool_choice"), params)
    _thinking(body.get("thinking"), params, native, max_tokens)
    _output_config(body.get("output_config"), params, native)
    context = body.get("context_management")
    if context is not None:  # Anthropic's own context editing (a beta): for Anthropic only
        if not isinstance(context, dict):
            raise bad("context_management: must be an object", "context_management")
        native.setdefault("body", {})["context_management"] = context
    cache = body.get("cache_control")
    if cache is not None:  # automatic caching: Anthropic marks the last cacheable block
        if not isinstance(cache, dict) or not isinstance(cache.get("type"), str):
            raise bad('cache_control: must be like {"type": "ephemeral"}', "cache_control")
        native.setdefault("body", {})["cache_control"] = cache
    if len(builder.messages) > limits.max_messages:
        raise bad(
            f"messages: more than {limits.max_messages} messages once tool results are split",
            "messages",
            "array_above_max_length",
        )
    if builder.decor:
        native["blocks"] = builder.decor
    if builder.thinking:
        native["thinking"] = builder.thinking
    beta = _header(headers, "anthropic-beta")
    if beta:
        native["beta"] = beta
    chat = ChatRequest(model, builder.messages, stream, include_usage=stream, params=params)
    chat.anthropic = native
    return chat


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sampling(body: dict[str, Any], params: dict[str, Any], native: AnthropicNative) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_number(value) or not 0 <= value <= 1:
            raise bad(f"{name}: must be a number between 0 and 1", name)
        params[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise bad("top_k: must be a non-negative integer", "top_k")
        native.setdefault("body", {})["top_k"] = top_k  # only Anthropic takes it
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise bad("stop_sequences: must be an array of strings", "stop_sequences")
        if stops:
            params["stop"] = stops


def _metadata(metadata: Any, params: dict[str, Any]) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise bad("metadata: must be an object", "metadata")
    for key, value in metadata.items():
        if key != "user_id":
            raise bad(f"metadata.{key}: unknown field (only user_id)", f"metadata.{key}")
        if value is not None and not isinstance(value, str):
            raise bad("metadata.user_id: must be a string", "metadata.user_id")
        if value:
            params["user"] = value


def _tool_choice(choice: Any, params: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad("tool_choice.name: required for type 'tool'", "tool_choice.name")
        params["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif isinstance(kind, str) and kind in TOOL_CHOICES:
        params["tool_choice"] = TOOL_CHOICES[kind]
    else:
        raise bad(
            "tool_choice: must be an object with type 'auto', 'any', 'tool' or 'none'",
            "tool_choice",
        )
    parallel = choice.get("disable_parallel_tool_use")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad(
            "tool_choice.disable_parallel_tool_use: must be a boolean",
            "tool_choice.disable_parallel_tool_use",
        )
    if parallel and kind != "none":
        params["parallel_tool_calls"] = False


def _thinking(
    thinking: Any, params: dict[str, Any], native: AnthropicNative, max_tokens: Any
) -> None:
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not _is_int(budget) or budget < 1024:
            raise bad(
                "thinking.budget_tokens: must be an integer of at least 1024",
                "thinking.budget_tokens",
            )
        if _is_int(max_tokens) and max_tokens <= budget:
            raise bad(
                "max_tokens: must be greater than thinking.budget_tokens", "thinking.budget_tokens"
            )
        params["reasoning_effort"] = effort_for_budget(budget)
    elif kind == "adaptive":
        params["reasoning_effort"] = "medium"
    elif kind != "disabled":
        raise bad(
            "thinking: must be an object with type 'enabled', 'adaptive' or 'disabled'",
            "thinking",
        )
    native.setdefault("body", {})["thinking"] = thinking


def _output_config(config: Any, params: dict[str, Any], native: AnthropicNative) -> None:
    """`effort` -> a reasoning_effort hint; `format` (json_schema) -> response_format for
    the others; Anthropic gets the client's own object."""
    if config is None:
        return
    if not isinstance(config, dict):
        raise bad("output_config: must be an object", "output_config")
    for key in config:
        if key not in ("effort", "format"):
            raise bad(f"output_config.{key}: unknown field", f"output_config.{key}")
    effort = config.get("effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in EFFORTS:
            raise bad(
                f"output_config.effort: must be one of {', '.join(EFFORTS)}", "output_config.effort"
            )
        params.setdefault("reasoning_effort", EFFORTS[effort])
    spec = config.get("format")
    if spec is not None:
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if (
            not isinstance(spec, dict)
            or spec.get("type") != "json_schema"
            or not isinstance(schema, dict)
        ):
            raise bad(
                'output_config.format: must be {"type": "json_schema", "schema": {...}}',
                "output_config.format",
            )
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema},
        }
    native.setdefault("body", {})["output_config"] = config
