"""ChatRequest -> the body of an Anthropic Messages API request (kind `anthropic`).

Messages become alternating user/assistant turns of content blocks (images from data URLs
or URLs, tool calls as `tool_use`, tool results as `tool_result`, signed thinking kept),
the system prompt moves to `system`, tools and tool choice take Anthropic's shape, and
fields only the Anthropic door carries (`ChatRequest.anthropic`: cache_control, top_k,
thinking, context management) are put back where the client had them. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.providers.anthropic_stream import (
    STATUS_BY_TYPE,
)
from gateway.providers.base import (
    TargetModel,
    UnsupportedParams,
)
from gateway.request import AnthropicNative, ChatRequest

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
# Body fields a Messages-door client sent that go to Anthropic as they are (AnthropicNative).
NATIVE_FIELDS = ("top_k", "output_config", "cache_control", "context_management")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:<media type>;base64,<data>` -> (media type, data); None if not base64 data."""
    head, sep, data = url.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        return None
    return head[5:-7].split(";", 1)[0] or "application/octet-stream", data


class _Converter:
    """OpenAI chat messages -> (system blocks, alternating Anthropic turns).

    `native` (from the Messages front door) adds what the chat shape cannot hold: keys set
    on the block built from a path (cache_control, is_error) and signed thinking blocks.
    """

    def __init__(
        self, unsupported: list[str], provider: str, native: AnthropicNative | None = None
    ) -> None:
        self.unsupported = unsupported
        self.provider = provider
        self.system: list[dict[str, Any]] = []
        self.turns: list[dict[str, Any]] = []
        self.decor = (native or {}).get("blocks") or {}
        self.thinking = (native or {}).get("thinking") or {}

    def decorate(self, block: dict[str, Any], path: str) -> dict[str, Any]:
        keys = self.decor.get(path)
        return {**block, **keys} if keys else block

    def run(self, messages: list[dict[str, Any]]) -> None:
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            where = f"messages[{i}]"
            if role in ("system", "developer"):
                self.system.extend(self.blocks(content, where, images=False))
            elif role == "user":
                self.append("user", self.blocks(content, where, images=True))
            elif role == "assistant":
                blocks = [*self.thinking.get(where, ()), *self.blocks(content, where, False)]
                for j, call in enumerate(message.get("tool_calls") or ()):
                    at = f"{where}.tool_calls[{j}]"
                    blocks.append(self.decorate(self.tool_use(call, at), at))
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
                self.append("user", [self.decorate(result, where)])
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
                    blocks.append(self.decorate(block, f"{where}.content[{j}]"))
            elif kind == "image_url" and images:
                image = self.image(part.get("image_url"), f"{where}.content[{j}]")
                if image is not None:
                    blocks.append(self.decorate(image, f"{where}.content[{j}]"))
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


def _tools(
    params: dict[str, Any], unsupported: list[str], decor: dict[str, dict[str, Any]]
) -> dict[str, Any]:
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
        tools.append({**entry, **decor.get(f"tools[{i}]", {})})
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


def _unsigned_tool_turn(turns: list[dict[str, Any]]) -> bool:
    """Whether the last assistant turn used tools without leading (signed) thinking, e.g.
    because another provider won it: Anthropic refuses thinking then, as a tool loop must
    keep one thinking mode, so the request goes without thinking instead."""
    last = next((t for t in reversed(turns) if t["role"] == "assistant"), None)
    if last is None or not any(b.get("type") == "tool_use" for b in last["content"]):
        return False
    return last["content"][0].get("type") not in ("thinking", "redacted_thinking")


def build_body(request: ChatRequest, target: TargetModel, provider: str) -> dict[str, Any]:
    """The Messages API request body. Raises UnsupportedParams."""
    params = request.params
    unsupported: list[str] = []
    native = request.anthropic or {}
    native_body = native.get("body") or {}
    converter = _Converter(unsupported, provider, native)
    converter.run(request.messages)
    max_tokens = request.max_tokens or target.max_tokens_default
    body: dict[str, Any] = {"model": target.model, "messages": converter.turns}
    if converter.system:
        body["system"] = converter.system
    body["max_tokens"] = max_tokens
    body["stream"] = True

    effort = params.get("reasoning_effort")
    thinking = False
    native_thinking = native_body.get("thinking")
    if request.anthropic is not None:  # the Messages door: the client's own thinking config
        if isinstance(native_thinking, dict):  # (reasoning_effort is a hint for the others)
            thinking = native_thinking.get("type") != "disabled"
            if thinking and _unsigned_tool_turn(converter.turns):
                thinking = False  # see _unsigned_tool_turn
            else:
                body["thinking"] = native_thinking
    elif effort in THINKING_BUDGETS:
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
    body.update(_tools(params, unsupported, converter.decor))
    for name in NATIVE_FIELDS:  # the Messages door's own fields
        if name in native_body:
            body[name] = native_body[name]
    if isinstance(params.get("user"), str):
        body["metadata"] = {"user_id": params["user"]}

    for name, neutral in NEUTRAL_VALUES.items():
        if name in params and params[name] not in neutral:
            unsupported.append(name)
    if "seed" in params:
        unsupported.append("seed")
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        if "output_config" not in native_body:  # else the client's own format is sent (below)
            unsupported.append(f"response_format={response_format.get('type')}")
    for name, value in request.extra.items():
        if name in PASSTHROUGH_EXTRA:
            body[name] = value
        else:
            unsupported.append(name)
    if unsupported and not target.drop_params:
        raise UnsupportedParams(unsupported, provider)
    return body
