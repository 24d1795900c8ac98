"""Ollama native API adapter (kind `ollama`): `POST {base_url}/api/chat`, NDJSON stream.

The decoder is in `ollama_stream.py`. (Ollama's OpenAI-compatible `/v1` endpoint
is served by the OpenAI-family adapter instead.) Parameters Ollama cannot take
(n>1, logprobs, http image URLs, tool_choice required/named,
parallel_tool_calls=false, unknown extra fields) are dropped with
`drop_params`, else rejected with UnsupportedParams.

Deployment options (`target.options`, falling back to the provider's options):
`keep_alive`, `top_k`, `num_ctx`, `min_p`, `repeat_penalty` (sent in
`options`), and `think_levels: true` to send reasoning_effort as a level
("low" | "medium" | "high", gpt-oss) instead of `think: true`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from gateway.providers.base import (
    OneShotCall,
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    UpstreamRequest,
)
from gateway.providers.common import checked_headers, clean_message, json_object, with_prefix
from gateway.providers.ollama_embed import build_embed_call
from gateway.providers.ollama_stream import (
    MAX_MESSAGE_CHARS,
    OllamaLines,
    OllamaStreamDecoder,
    retry_after,
    status_error,
)
from gateway.request import ChatRequest, EmbedRequest
from gateway.streaming.events import Event, UpstreamError

# Known OpenAI fields mapped one to one into `options`.
OPTION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# Model options a deployment may set in its config (target.options / provider options).
CONFIG_OPTIONS = ("top_k", "num_ctx", "min_p", "repeat_penalty")
# Extra (unknown to OpenAI) fields that Ollama understands as options.
PASSTHROUGH_EXTRA = frozenset({"top_k", "num_ctx", "min_p", "repeat_penalty"})
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {"n": (1,), "logprobs": (False,), "top_logprobs": (0,)}
# Provider options: deployment defaults (see the module doc) and extra `headers`.
PROVIDER_OPTIONS = frozenset({"headers", "keep_alive", "think_levels", *CONFIG_OPTIONS})
THINK_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


def _tool_call(call: Any, where: str, provider: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        function = {}
    arguments = function.get("arguments") or "{}"
    try:
        args = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        # Not droppable: the conversation would no longer make sense without it.
        raise UnsupportedParams([f"{where}.function.arguments (not a JSON object)"], provider)
    out: dict[str, Any] = {"function": {"name": str(function.get("name") or ""), "arguments": args}}
    if isinstance(call, dict) and call.get("id"):
        out["id"] = str(call["id"])
    return out


def _content(content: Any, where: str, unsupported: list[str], images: list[str] | None) -> str:
    """Message content as one string; base64 images (data URLs) go to `images`."""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for j, part in enumerate(content if isinstance(content, list) else ()):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            texts.append(part[kind])
        elif kind == "image_url" and images is not None:
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            head, sep, data = url.partition(",") if isinstance(url, str) else ("", "", "")
            if sep and head.startswith("data:") and head.endswith(";base64"):
                images.append(data)
            else:  # Ollama only takes raw base64 image data, it does not fetch URLs
                unsupported.append(f"{where}.content[{j}].image_url (not a base64 data URL)")
        else:
            unsupported.append(f"{where}.content[{j}].type={kind}")
    return "\n".join(texts)


def _messages(
    messages: list[dict[str, Any]], unsupported: list[str], provider: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # tool call id -> function name (latest wins)
    for i, message in enumerate(messages):
        role, where = message.get("role"), f"messages[{i}]"
        entry: dict[str, Any]
        if role in ("system", "developer"):
            content = _content(message.get("content"), where, unsupported, None)
            out.append({"role": "system", "content": content})
        elif role == "user":
            images: list[str] = []
            entry = {
                "role": "user",
                "content": _content(message.get("content"), where, unsupported, images),
            }
            if images:
                entry["images"] = images
            out.append(entry)
        elif role == "assistant":
            content = _content(message.get("content"), where, unsupported, None)
            entry = {"role": "assistant", "content": content}
            calls = [
                _tool_call(call, f"{where}.tool_calls[{j}]", provider)
                for j, call in enumerate(message.get("tool_calls") or ())
            ]
            for call in calls:
                if "id" in call:
                    call_names[call["id"]] = call["function"]["name"]
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif role == "tool":
            call_id = str(message.get("tool_call_id") or "")
            entry = {
                "role": "tool",
                "content": _content(message.get("content"), where, unsupported, None),
            }
            name = call_names.get(call_id) or message.get("name")
            if name:
                entry["tool_name"] = name
            if call_id:
                entry["tool_call_id"] = call_id
            out.append(entry)
        else:
            unsupported.append(f"{where}.role={role}")
    return out


def build_body(
    request: ChatRequest, target: TargetModel, settings: ProviderSettings
) -> dict[str, Any]:
    """The /api/chat request body. Raises UnsupportedParams."""
    params = request.params
    unsupported: list[str] = []

    def setting(name: str) -> Any:
        return target.options.get(name, settings.options.get(name))

    body: dict[str, Any] = {
        "model": target.model,
        "messages": _messages(request.messages, unsupported, settings.name),
        "stream": True,
    }
    options: dict[str, Any] = {}
    for name in CONFIG_OPTIONS:
        if setting(name) is not None:
            options[name] = setting(name)
    for name, option in OPTION_FIELDS.items():
        if params.get(name) is not None:
            options[option] = params[name]
    if request.max_tokens:
        options["num_predict"] = request.max_tokens
    if request.stop:
        options["stop"] = request.stop
    for name, value in request.extra.items():
        if name in PASSTHROUGH_EXTRA:
            options[name] = value
        else:
            unsupported.append(name)

    tools = params.get("tools")
    choice = params.get("tool_choice")
    if tools and choice != "none":  # "none": the model simply gets no tools
        body["tools"] = tools
        if choice not in (None, "auto"):
            unsupported.append(f"tool_choice={choice}")
        if params.get("parallel_tool_calls") is False:
            unsupported.append("parallel_tool_calls=false")

    response_format = params.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        body["format"] = "json"
    elif kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        body["format"] = schema if isinstance(schema, dict) else "json"
    elif kind not in (None, "text"):
        unsupported.append(f"response_format={kind}")

    effort = params.get("reasoning_effort")
    if effort == "none":
        body["think"] = False
    elif effort in THINK_LEVELS:
        body["think"] = THINK_LEVELS[effort] if setting("think_levels") else True
    elif effort is not None:
        unsupported.append(f"reasoning_effort={effort}")

    for name, neutral in NEUTRAL_VALUES.items():
        if name in params and params[name] not in neutral:
            unsupported.append(name)
    if unsupported and not target.drop_params:
        raise UnsupportedParams(unsupported, settings.name)
    if options:
        body["options"] = options
    keep_alive = setting("keep_alive")
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


class OllamaProvider:
    """Ollama's native chat API (`POST {base_url}/api/chat`, NDJSON)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        base = settings.base_url.rstrip("/")
        self._url = base + ("/chat" if base.endswith("/api") else "/api/chat")
        extra = checked_headers(settings, PROVIDER_OPTIONS)
        headers = {"content-type": "application/json", "accept": "application/x-ndjson"}
        if settings.api_key:  # Ollama itself needs none; proxies and ollama.com do
            headers["authorization"] = f"Bearer {settings.api_key}"
        headers.update(extra)
        self._headers = headers

    def __repr__(self) -> str:  # never show the key
        return f"OllamaProvider(name={self.settings.name!r}, url={self._url!r})"

    def warmup_request(self) -> UpstreamRequest:
        """A cheap GET (the models list) that opens a keep-alive connection ahead of traffic."""
        headers = {k: v for k, v in self._headers.items() if k not in ("content-type", "accept")}
        return UpstreamRequest("GET", self._url.removesuffix("/chat") + "/tags", headers, b"")

    def build_request(self, request: ChatRequest, target: TargetModel) -> UpstreamRequest:
        body = build_body(request, target, self.settings)
        return UpstreamRequest("POST", self._url, dict(self._headers), orjson.dumps(body))

    # /api/chat continues a trailing assistant message (the chat template leaves it open).
    continues = True

    def build_continuation(
        self, request: ChatRequest, target: TargetModel, prefix: str
    ) -> UpstreamRequest:
        body = build_body(with_prefix(request, prefix), target, self.settings)
        return UpstreamRequest("POST", self._url, dict(self._headers), orjson.dumps(body))

    def build_embed_call(self, request: EmbedRequest, target: TargetModel) -> OneShotCall:
        """`POST {base_url}/api/embed` per batch of 256 texts (see ollama_embed)."""
        keep_alive = target.options.get("keep_alive", self.settings.options.get("keep_alive"))
        url = self._url.removesuffix("/chat") + "/embed"
        return build_embed_call(request, target, url, self._headers, self.settings.name, keep_alive)

    def decoder(self) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(self.settings.max_line_bytes, secret=self.settings.api_key)

    def parse_response(self, body: bytes) -> list[Event]:
        data = json_object(body)
        if isinstance(data, UpstreamError):
            return [data]
        out: list[Event] = []
        OllamaLines(self.settings.api_key).handle(data, out)
        return out

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None  # HTML from a proxy, or empty: never echoed
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):  # tolerate the OpenAI-style envelope from proxies
            error = error.get("message")
        if not isinstance(error, str) or not error:
            error = f"upstream returned HTTP {status}"
        error = clean_message(error, self.settings.api_key, MAX_MESSAGE_CHARS)  # never echo the key
        return status_error(status, error, retry_after(lowered))


def register_kinds(register: Callable[[str, Callable[[ProviderSettings], Any]], None]) -> None:
    register("ollama", OllamaProvider)
