"""Anthropic Messages API adapter (kind `anthropic`): request building, errors, non-stream bodies.

The stream decoder is in `anthropic_stream.py`. Parameter policy: anything the
Messages API cannot take (n>1, penalties, logprobs, seed, response_format
json, unknown extra fields, temperature above 1) is dropped when the
deployment sets `drop_params`, and otherwise rejected with `UnsupportedParams`.
Out-of-range values are never clamped silently.

No embeddings: Anthropic has no embeddings API, so this adapter has no
`build_embed_call` (`base.can_embed` is False) and check-config refuses an
embedding deployment on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from gateway.providers.anthropic_stream import (
    FINISH_REASONS,
    STATUS_BY_TYPE,
    AnthropicStreamDecoder,
    UsageState,
    error_from_body,
    is_retryable,
    opens_circuit,
    protocol_error,
    retry_after,
)
from gateway.providers.base import (
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    UpstreamRequest,
)
from gateway.providers.common import checked_headers, json_object, json_text, with_prefix
from gateway.request import ChatRequest
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
)

ANTHROPIC_VERSION = "2023-06-01"
# reasoning_effort -> extended-thinking budget (the API minimum is 1024).
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
# OpenAI fields Anthropic has no equivalent for, with the values that mean "not used".
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "logprobs": (False,),
    "top_logprobs": (0,),
}
# Unknown (extra) fields that are native Messages API fields and pass through as-is.
PASSTHROUGH_EXTRA = frozenset({"top_k"})
TYPE_BY_STATUS = {status: err_type for err_type, status in STATUS_BY_TYPE.items()}
# Provider options (`headers` is filled in from the provider's config `headers`).
PROVIDER_OPTIONS = frozenset({"headers", "anthropic_version", "anthropic_beta"})
TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:<media type>;base64,<data>` -> (media type, data); None if not base64 data."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    return head[5:-7].split(";", 1)[0] or "application/octet-stream", data


class _Converter:
    """OpenAI chat messages -> (system blocks, alternating Anthropic turns)."""

    def __init__(self, unsupported: list[str], provider: str) -> None:
        self.unsupported = unsupported
        self.provider = provider
        self.system: list[dict[str, Any]] = []
        self.turns: list[dict[str, Any]] = []

    def run(self, messages: list[dict[str, Any]]) -> None:
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            where = f"messages[{i}]"
            if role in ("system", "developer"):
                self.system.extend(self.blocks(content, where, images=False))
            elif role == "user":
                self.append("user", self.blocks(content, where, images=True))
            elif role == "assistant":
                blocks = self.blocks(content, where, images=False)
                for j, call in enumerate(message.get("tool_calls") or ()):
                    blocks.append(self.tool_use(call, f"{where}.tool_calls[{j}]"))
                self.append("assistant", blocks)
            elif role == "tool":
                result: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": str(message.get("tool_call_id") or ""),
                }
                if isinstance(content, str):
                    if content:
                        result["content"] = content
                elif content:
                    result["content"] = self.blocks(content, where, images=True)
                self.append("user", [result])
            else:
                self.unsupported.append(f"{where}.role={role}")
        for turn in self.turns:  # tool_result blocks must lead their user turn
            if turn["role"] == "user":
                turn["content"].sort(key=lambda block: block.get("type") != "tool_result")

    def append(self, role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:  # an empty turn is not sendable (empty text blocks are rejected)
            return
        if self.turns and self.turns[-1]["role"] == role:
            self.turns[-1]["content"].extend(blocks)
        else:
            self.turns.append({"role": role, "content": blocks})

    def blocks(self, content: Any, where: str, images: bool) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"type": "text", "text": content}] if content else []
        blocks: list[dict[str, Any]] = []
        for j, part in enumerate(content if isinstance(content, list) else ()):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("text", "refusal"):
                text = part.get(kind)
                if isinstance(text, str) and text:
                    block: dict[str, Any] = {"type": "text", "text": text}
                    if "cache_control" in part:  # prompt caching, as sent by litellm users
                        block["cache_control"] = part["cache_control"]
                    blocks.append(block)
            elif kind == "image_url" and images:
                image = self.image(part.get("image_url"), f"{where}.content[{j}]")
                if image is not None:
                    blocks.append(image)
            else:
                self.unsupported.append(f"{where}.content[{j}].type={kind}")
        return blocks

    def image(self, spec: Any, where: str) -> dict[str, Any] | None:
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            self.unsupported.append(f"{where}.image_url")
            return None
        if url.startswith(("http://", "https://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        parsed = parse_data_url(url)
        if parsed is None:
            self.unsupported.append(f"{where}.image_url (not an http(s) or base64 data URL)")
            return None
        media_type, data = parsed
        source = {"type": "base64", "media_type": media_type, "data": data}
        return {"type": "image", "source": source}

    def tool_use(self, call: Any, where: str) -> dict[str, Any]:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            function = {}
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            # Not droppable: the conversation would no longer make sense without it.
            raise UnsupportedParams(
                [f"{where}.function.arguments (not a JSON object)"], self.provider
            )
        call_id = call.get("id") if isinstance(call, dict) else None
        return {
            "type": "tool_use",
            "id": str(call_id or ""),
            "name": str(function.get("name") or ""),
            "input": parsed,
        }


def _tools(params: dict[str, Any], unsupported: list[str]) -> dict[str, Any]:
    """OpenAI tools / tool_choice / parallel_tool_calls -> Messages API fields."""
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(params.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            unsupported.append(
                f"tools[{i}].type={tool.get('type') if isinstance(tool, dict) else tool}"
            )
            continue
        entry: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            entry["description"] = function["description"]
        entry["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
        tools.append(entry)
    if not tools:
        return {}
    out: dict[str, Any] = {"tools": tools}
    choice = params.get("tool_choice")
    mapped: dict[str, Any] | None = None
    if isinstance(choice, str) and choice in TOOL_CHOICES:
        mapped = {"type": TOOL_CHOICES[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        mapped = {"type": "tool", "name": choice["function"].get("name")}
    elif choice is not None:
        unsupported.append(f"tool_choice={choice}")
    if params.get("parallel_tool_calls") is False and (mapped or {}).get("type") != "none":
        mapped = {"type": "auto", **(mapped or {}), "disable_parallel_tool_use": True}
    if mapped is not None:
        out["tool_choice"] = mapped
    return out


def build_body(request: ChatRequest, target: TargetModel, provider: str) -> dict[str, Any]:
    """The Messages API request body. Raises UnsupportedParams."""
    params = request.params
    unsupported: list[str] = []
    converter = _Converter(unsupported, provider)
    converter.run(request.messages)
    max_tokens = request.max_tokens or target.max_tokens_default
    body: dict[str, Any] = {"model": target.model, "messages": converter.turns}
    if converter.system:
        body["system"] = converter.system
    body["max_tokens"] = max_tokens
    body["stream"] = True

    effort = params.get("reasoning_effort")
    thinking = False
    if effort in THINKING_BUDGETS:
        budget = THINKING_BUDGETS[effort]
        thinking = True
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        if max_tokens <= budget:  # max_tokens counts thinking too: keep room for the answer
            body["max_tokens"] = budget + max_tokens
    elif effort is not None and effort != "none":
        unsupported.append(f"reasoning_effort={effort}")

    temperature = params.get("temperature")
    if temperature is not None:
        if isinstance(temperature, int | float) and temperature > 1:
            unsupported.append("temperature>1")  # Anthropic's range is 0..1
        elif thinking and temperature != 1:
            unsupported.append("temperature (with reasoning_effort)")
        else:
            body["temperature"] = temperature
    top_p = params.get("top_p")
    if top_p is not None:
        if thinking and top_p < 0.95:
            unsupported.append("top_p<0.95 (with reasoning_effort)")
        else:
            body["top_p"] = top_p
    if request.stop:
        body["stop_sequences"] = request.stop
    body.update(_tools(params, unsupported))
    if isinstance(params.get("user"), str):
        body["metadata"] = {"user_id": params["user"]}

    for name, neutral in NEUTRAL_VALUES.items():
        if name in params and params[name] not in neutral:
            unsupported.append(name)
    if "seed" in params:
        unsupported.append("seed")
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        unsupported.append(f"response_format={response_format.get('type')}")
    for name, value in request.extra.items():
        if name in PASSTHROUGH_EXTRA:
            body[name] = value
        else:
            unsupported.append(name)
    if unsupported and not target.drop_params:
        raise UnsupportedParams(unsupported, provider)
    return body


class AnthropicProvider:
    """The Anthropic Messages API (`POST {base_url}/v1/messages`, SSE)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        base = settings.base_url.rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        extra = checked_headers(settings, PROVIDER_OPTIONS)
        options = settings.options
        version = options.get("anthropic_version", ANTHROPIC_VERSION)
        beta = options.get("anthropic_beta") or ""
        if not isinstance(beta, str):
            beta = ",".join(beta) if isinstance(beta, list | tuple) else beta
        if not isinstance(version, str) or not version or not isinstance(beta, str):
            where = f"provider {settings.name!r} (kind {settings.kind!r})"
            raise ValueError(
                f"{where}: option 'anthropic_version' must be a date string and "
                "'anthropic_beta' a string or a list of strings"
            )
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "anthropic-version": version,
        }
        if settings.api_key:
            headers["x-api-key"] = settings.api_key
        if beta:
            headers["anthropic-beta"] = beta
        headers.update(extra)
        self._headers = headers

    def __repr__(self) -> str:  # never show the key
        return f"AnthropicProvider(name={self.settings.name!r}, url={self._url!r})"

    def warmup_request(self) -> UpstreamRequest:
        """A cheap GET (the models list) that opens a keep-alive connection ahead of traffic."""
        headers = {k: v for k, v in self._headers.items() if k not in ("content-type", "accept")}
        return UpstreamRequest("GET", self._url.removesuffix("/messages") + "/models", headers, b"")

    def build_request(self, request: ChatRequest, target: TargetModel) -> UpstreamRequest:
        body = build_body(request, target, self.settings.name)
        return UpstreamRequest("POST", self._url, dict(self._headers), orjson.dumps(body))

    # Assistant prefill: a trailing assistant turn is continued, and only the rest is
    # streamed. Not with extended thinking (the API refuses it), and not on models that
    # dropped prefill (Claude 4.6+ answer 400: set `continuation: false` on such
    # deployments). The prefix never ends in whitespace, which the API also refuses.
    continues = True

    def build_continuation(
        self, request: ChatRequest, target: TargetModel, prefix: str
    ) -> UpstreamRequest:
        if request.params.get("reasoning_effort") not in (None, "none"):
            raise UnsupportedParams(
                ["reasoning_effort (assistant prefill cannot follow extended thinking)"],
                self.settings.name,
            )
        body = build_body(with_prefix(request, prefix), target, self.settings.name)
        return UpstreamRequest("POST", self._url, dict(self._headers), orjson.dumps(body))

    def decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(self.settings.max_line_bytes, secret=self.settings.api_key)

    def parse_response(self, body: bytes) -> list[Event]:
        data = json_object(body)
        if isinstance(data, UpstreamError):
            return [data]
        if data.get("type") == "error":
            return [error_from_body(data, secret=self.settings.api_key)]
        content = data.get("content")
        if content is None:
            content = []
        elif not isinstance(content, list):
            return [protocol_error("upstream response content is not a list")]
        model = data.get("model")
        events: list[Event] = [ResponseMeta(model=model if isinstance(model, str) else None)]
        tool = 0
        for block in content:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                text = block.get("text")
                if isinstance(text, str) and text:
                    events.append(TextDelta(text))
            elif kind == "thinking":
                text = block.get("thinking")
                if isinstance(text, str) and text:
                    events.append(ReasoningDelta(text))
            elif kind == "tool_use":
                tool_input = block.get("input")
                arguments = json_text(tool_input) if isinstance(tool_input, dict) else "{}"
                if arguments is None:
                    return [protocol_error("upstream tool input cannot be re-encoded")]
                call_id, name = block.get("id"), block.get("name")
                events.append(
                    ToolCallDelta(
                        tool,
                        call_id if isinstance(call_id, str) else None,
                        name if isinstance(name, str) else None,
                        arguments,
                    )
                )
                tool += 1
        events.append(UsageState().update(data.get("usage")))
        reason = data.get("stop_reason")
        if isinstance(reason, str):
            events.append(Finish(FINISH_REASONS.get(reason, "stop")))
        return events

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None  # HTML from a proxy, or empty: never echoed
        if status < 400:  # e.g. a redirect: the base_url is wrong
            reported, err_type = 502, "upstream_bad_status"
            message = f"upstream returned HTTP {status}"
        elif isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = error_from_body(data, status, secret=self.settings.api_key)
            reported, err_type, message = status, error.type, error.message
        else:
            reported, message = status, f"upstream returned HTTP {status}"
            err_type = TYPE_BY_STATUS.get(
                status, "api_error" if status >= 500 else "invalid_request_error"
            )
        retryable = is_retryable(status) and status >= 400
        should_retry = lowered.get("x-should-retry", "").strip().lower()
        if should_retry in ("true", "false"):  # Anthropic says when a retry is pointless
            retryable = should_retry == "true"
        return UpstreamError(
            status=reported,
            type=err_type,
            message=message,  # error_from_body redacted the key and cut the message
            retryable=retryable,
            retry_after_s=retry_after(lowered),
            opens_circuit=opens_circuit(status),
        )


def register_kinds(register: Callable[[str, Callable[[ProviderSettings], Any]], None]) -> None:
    register("anthropic", AnthropicProvider)
