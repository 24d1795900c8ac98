"""Google Gemini Developer API adapter (kind `gemini`): request building, errors, non-stream bodies.

`POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse`; the
decoder is in `gemini_stream.py`. Parameters Gemini cannot take (logprobs,
n>1 — the gateway streams one choice —, parallel_tool_calls=false, unknown
extra fields) are dropped with `drop_params`, else rejected (UnsupportedParams).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson

from gateway.providers.base import (
    OneShotCall,
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    UpstreamRequest,
)
from gateway.providers.common import checked_headers, json_object
from gateway.providers.gemini_embed import build_embed_call
from gateway.providers.gemini_stream import (
    GeminiChunks,
    GeminiStreamDecoder,
    error_from_body,
)
from gateway.request import ChatRequest, EmbedRequest
from gateway.streaming.events import Event, UpstreamError

# reasoning_effort -> thinkingBudget, as Gemini's own OpenAI-compatible endpoint maps it.
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
# Known OpenAI fields Gemini has no equivalent for, with the values that mean "not used".
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {"n": (1,), "logprobs": (False,), "top_logprobs": (0,)}
# Sampling fields mapped one to one into generationConfig.
GENERATION_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# Extra (unknown to OpenAI) fields that Gemini understands.
PASSTHROUGH_EXTRA = {"top_k": "topK"}
MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "wav": "audio/wav",
    "mp3": "audio/mp3",
    "mp4": "video/mp4",
}


def guess_mime_type(url: str) -> str:
    """The media type of an http(s) URL from its extension (image/jpeg when unknown)."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return MIME_BY_EXTENSION.get(extension, "image/jpeg")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = [p.get("text") for p in content or () if isinstance(p, dict)]
    return "".join(t for t in texts if isinstance(t, str))


class _Converter:
    """OpenAI chat messages -> (systemInstruction parts, alternating user/model contents)."""

    def __init__(self, unsupported: list[str], provider: str) -> None:
        self.unsupported = unsupported
        self.provider = provider
        self.system: list[dict[str, Any]] = []
        self.contents: list[dict[str, Any]] = []
        self.call_names: dict[str, str] = {}  # tool call id -> function name

    def run(self, messages: list[dict[str, Any]]) -> None:
        for i, message in enumerate(messages):
            role, content = message.get("role"), message.get("content")
            where = f"messages[{i}]"
            if role in ("system", "developer"):
                self.system.extend(self.parts(content, where, media=False))
            elif role == "user":
                self.append("user", self.parts(content, where, media=True))
            elif role == "assistant":
                parts = self.parts(content, where, media=False)
                for j, call in enumerate(message.get("tool_calls") or ()):
                    parts.append(self.function_call(call, f"{where}.tool_calls[{j}]"))
                self.append("model", parts)
            elif role == "tool":
                self.append("user", [self.function_response(message)])
            else:
                self.unsupported.append(f"{where}.role={role}")

    def append(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def parts(self, content: Any, where: str, media: bool) -> list[dict[str, Any]]:
        if isinstance(content, str):
            return [{"text": content}] if content else []
        parts: list[dict[str, Any]] = []
        for j, part in enumerate(content if isinstance(content, list) else ()):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("text", "refusal"):
                text = part.get(kind)
                if isinstance(text, str) and text:
                    parts.append({"text": text})
            elif kind == "image_url" and media:
                spec = part.get("image_url")
                url = spec.get("url") if isinstance(spec, dict) else spec
                converted = self.media(url) if isinstance(url, str) else None
                if converted is None:
                    self.unsupported.append(f"{where}.content[{j}].image_url")
                else:
                    parts.append(converted)
            elif kind == "input_audio" and media and isinstance(part.get("input_audio"), dict):
                audio = part["input_audio"]
                mime = f"audio/{audio.get('format') or 'wav'}"
                parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data", "")}})
            else:
                self.unsupported.append(f"{where}.content[{j}].type={kind}")
        return parts

    def media(self, url: str) -> dict[str, Any] | None:
        if url.startswith(("http://", "https://")):
            return {"fileData": {"mimeType": guess_mime_type(url), "fileUri": url}}
        head, sep, data = url.partition(",")
        if not sep or not head.startswith("data:") or not head.endswith(";base64"):
            return None
        mime = head[5:-7].split(";", 1)[0] or "application/octet-stream"
        return {"inlineData": {"mimeType": mime, "data": data}}

    def function_call(self, call: Any, where: str) -> dict[str, Any]:
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
            raise UnsupportedParams(
                [f"{where}.function.arguments (not a JSON object)"], self.provider
            )
        name = str(function.get("name") or "")
        if isinstance(call, dict) and call.get("id"):
            self.call_names[str(call["id"])] = name
        return {"functionCall": {"name": name, "args": args}}

    def function_response(self, message: dict[str, Any]) -> dict[str, Any]:
        call_id = str(message.get("tool_call_id") or "")
        name = self.call_names.get(call_id) or str(message.get("name") or call_id)
        text = _text_of(message.get("content"))
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        response = parsed if isinstance(parsed, dict) else {"result": text}
        return {"functionResponse": {"name": name, "response": response}}


def _tools(params: dict[str, Any], unsupported: list[str]) -> dict[str, Any]:
    declarations: list[dict[str, Any]] = []
    for i, tool in enumerate(params.get("tools") or ()):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            unsupported.append(f"tools[{i}]")
            continue
        declaration: dict[str, Any] = {"name": function.get("name")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            # Full JSON Schema (OpenAI's), not the OpenAPI subset that `parameters` takes.
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    if not declarations:
        return {}
    out: dict[str, Any] = {"tools": [{"functionDeclarations": declarations}]}
    choice = params.get("tool_choice")
    config: dict[str, Any] | None = None
    if isinstance(choice, str) and choice in TOOL_MODES:
        config = {"mode": TOOL_MODES[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
    elif choice is not None:
        unsupported.append(f"tool_choice={choice}")
    if config is not None:
        out["toolConfig"] = {"functionCallingConfig": config}
    return out


def build_body(request: ChatRequest, target: TargetModel, provider: str) -> dict[str, Any]:
    """The generateContent request body. Raises UnsupportedParams."""
    params = request.params
    unsupported: list[str] = []
    converter = _Converter(unsupported, provider)
    converter.run(request.messages)
    body: dict[str, Any] = {"contents": converter.contents}
    if converter.system:
        body["systemInstruction"] = {"parts": converter.system}
    config: dict[str, Any] = {}
    for name, field in GENERATION_FIELDS.items():
        if params.get(name) is not None:
            config[field] = params[name]
    if request.max_tokens:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = request.stop
    response_format = params.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        config["responseMimeType"] = "application/json"
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    elif kind not in (None, "text"):
        unsupported.append(f"response_format={kind}")
    effort = params.get("reasoning_effort")
    if effort in THINKING_BUDGETS:
        budget = THINKING_BUDGETS[effort]
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": budget > 0}
    elif effort is not None:
        unsupported.append(f"reasoning_effort={effort}")
    body.update(_tools(params, unsupported))
    if params.get("parallel_tool_calls") is False and "tools" in body:
        unsupported.append("parallel_tool_calls=false")
    for name, neutral in NEUTRAL_VALUES.items():
        if name in params and params[name] not in neutral:
            unsupported.append(name)
    for name, value in request.extra.items():
        if name in PASSTHROUGH_EXTRA:
            config[PASSTHROUGH_EXTRA[name]] = value
        else:
            unsupported.append(name)
    if unsupported and not target.drop_params:
        raise UnsupportedParams(unsupported, provider)
    if config:
        body["generationConfig"] = config
    return body


class GeminiProvider:
    """The Gemini Developer API (`streamGenerateContent?alt=sse`)."""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        base = settings.base_url.rstrip("/")
        self._prefix = base if base.endswith(("/v1beta", "/v1")) else base + "/v1beta"
        extra = checked_headers(settings, frozenset({"headers"}))
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if settings.api_key:
            headers["x-goog-api-key"] = settings.api_key
        headers.update(extra)
        self._headers = headers

    def __repr__(self) -> str:  # never show the key
        return f"GeminiProvider(name={self.settings.name!r}, url={self._prefix!r})"

    def warmup_request(self) -> UpstreamRequest:
        """A cheap GET (the models list) that opens a keep-alive connection ahead of traffic."""
        headers = {k: v for k, v in self._headers.items() if k not in ("content-type", "accept")}
        return UpstreamRequest("GET", self._prefix + "/models", headers, b"")

    def build_request(self, request: ChatRequest, target: TargetModel) -> UpstreamRequest:
        body = build_body(request, target, self.settings.name)
        model = quote(target.model.removeprefix("models/"), safe="-._~")
        url = f"{self._prefix}/models/{model}:streamGenerateContent?alt=sse"
        return UpstreamRequest("POST", url, dict(self._headers), orjson.dumps(body))

    def build_embed_call(self, request: EmbedRequest, target: TargetModel) -> OneShotCall:
        """`models/{model}:batchEmbedContents`, 100 texts per call (see gemini_embed)."""
        model = quote(target.model.removeprefix("models/"), safe="-._~")
        return build_embed_call(
            request, target, self._prefix, model, self._headers, self.settings.name
        )

    def decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(self.settings.max_line_bytes, secret=self.settings.api_key)

    def parse_response(self, body: bytes) -> list[Event]:
        data = json_object(body)
        if isinstance(data, UpstreamError):
            return [data]
        out: list[Event] = []
        GeminiChunks(self.settings.api_key).handle(data, out)
        return out

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = None  # HTML from a proxy, or empty: never echoed
        if status < 400:  # e.g. a redirect: the base_url is wrong
            message = f"upstream returned HTTP {status}"
            return UpstreamError(502, "upstream_bad_status", message, retryable=False)
        if not isinstance(data, dict) or not isinstance(data.get("error"), dict):
            data = {"error": {"message": f"upstream returned HTTP {status}"}}
        return error_from_body(data, status, lowered, secret=self.settings.api_key)


def register_kinds(register: Callable[[str, Callable[[ProviderSettings], Any]], None]) -> None:
    register("gemini", GeminiProvider)
