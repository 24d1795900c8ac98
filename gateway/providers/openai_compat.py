"""The OpenAI Chat Completions adapter, for every OpenAI-compatible server.

OpenAI, DeepSeek, Mistral, vLLM, Ollama `/v1`, Groq, Together and generic
servers all run through `OpenAICompatProvider`; how they differ is data
(`quirks.Quirks`), never a branch on the provider's name. The decoder accepts
the union of the dialects (reasoning under any configured field, Mistral array
content and whole tool calls without `index`, usage on any chunk, flat error
objects), so one code path serves all of them. Pure: no I/O, no clock.
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
from gateway.providers.common import clean_message, json_object, with_prefix
from gateway.providers.common import retry_after as retry_after
from gateway.providers.openai_embed import build_embed_call
from gateway.providers.openai_stream import (
    MAX_MESSAGE_CHARS,
    ChunkMapper,
    ErrorInfo,
    OpenAIStreamDecoder,
    default_type,
    error_info,
    is_quota,
    is_retryable,
    opens_circuit,
    protocol_error,
)
from gateway.providers.quirks import BUILTIN_QUIRKS, Quirks, with_options
from gateway.request import ChatRequest, EmbedRequest
from gateway.streaming.events import Event, UpstreamError

# The body fields the gateway owns; the client's values never reach the upstream as-is.
GATEWAY_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})


class OpenAICompatProvider:
    """One OpenAI-compatible server: `POST {base_url}{quirks.path}`, SSE."""

    def __init__(self, settings: ProviderSettings, quirks: Quirks | None = None) -> None:
        self.settings = settings
        where = f"provider {settings.name!r} (kind {settings.kind!r})"
        base = quirks if quirks is not None else BUILTIN_QUIRKS.get(settings.kind, Quirks())
        self.quirks = q = with_options(base, settings.options, where)
        self._url = settings.base_url.rstrip("/") + q.path
        self._embed_url = settings.base_url.rstrip("/") + q.embeddings_path
        self._continue_url = self._url
        if q.continuation_path is not None:
            root = settings.base_url.rstrip("/").removesuffix("/v1")
            self._continue_url = root + q.continuation_path
        self.continues = q.continuation != "none"
        self._renames = dict(q.renamed_params)
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        key = settings.api_key
        if key and q.auth_scheme == "bearer":
            headers["authorization"] = f"Bearer {key}"
        elif key and q.auth_scheme.startswith("header:"):
            headers[q.auth_scheme[7:].lower()] = key
        extra = settings.options.get("headers") or {}
        if not isinstance(extra, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise ValueError(f"{where}: option 'headers' must map header names to strings")
        headers.update({name.lower(): value for name, value in extra.items()})
        self._headers = headers

    def __repr__(self) -> str:  # never show the key
        return f"OpenAICompatProvider(name={self.settings.name!r}, url={self._url!r})"

    def warmup_request(self) -> UpstreamRequest:
        """A cheap GET (the models list) that opens a keep-alive connection ahead of traffic."""
        headers = {k: v for k, v in self._headers.items() if k not in ("content-type", "accept")}
        return UpstreamRequest("GET", self.settings.base_url.rstrip("/") + "/models", headers, b"")

    def build_request(self, request: ChatRequest, target: TargetModel) -> UpstreamRequest:
        body = self._body(request, target)
        return UpstreamRequest("POST", self._url, dict(self._headers), orjson.dumps(body))

    def build_continuation(
        self, request: ChatRequest, target: TargetModel, prefix: str
    ) -> UpstreamRequest:
        """The answer to `request` from `prefix` on, by the server's `continuation` quirk."""
        mode = self.quirks.continuation
        if mode == "none":
            raise UnsupportedParams(["continuation (no prefix continuation)"], self.settings.name)
        flags = {"prefix": True} if mode == "prefix" else {}
        body = self._body(with_prefix(request, prefix, **flags), target)
        if mode == "continue_final_message":
            body["continue_final_message"] = True
            body["add_generation_prompt"] = False
        return UpstreamRequest("POST", self._continue_url, dict(self._headers), orjson.dumps(body))

    def _body(self, request: ChatRequest, target: TargetModel) -> dict[str, Any]:
        q = self.quirks
        body: dict[str, Any] = {"model": target.model, "messages": request.messages}
        unsupported: list[str] = []
        for source in (request.params, request.extra):
            for name, value in source.items():
                if name in GATEWAY_FIELDS:
                    continue
                if name in q.rejected_params:
                    unsupported.append(name)
                    continue
                body[self._renames.get(name, name)] = value
        if unsupported and not target.drop_params:
            raise UnsupportedParams(unsupported, self.settings.name)
        if q.max_tokens_field != "passthrough":
            newer, legacy = body.pop("max_completion_tokens", None), body.pop("max_tokens", None)
            limit = newer if newer is not None else legacy
            if limit is not None:
                body[q.max_tokens_field] = limit
        body["stream"] = True
        if q.send_stream_options:
            client = request.params.get("stream_options")
            body["stream_options"] = {
                **(client if isinstance(client, dict) else {}),
                "include_usage": True,
            }
        return body

    def build_embed_call(self, request: EmbedRequest, target: TargetModel) -> OneShotCall:
        """`POST {base_url}/embeddings` per batch of `quirks.embed_batch_size` inputs."""
        return build_embed_call(
            request,
            target,
            self._embed_url,
            self._headers,
            self.quirks.embed_batch_size,
            self.settings.api_key,
        )

    def decoder(self) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(
            self.quirks, self.settings.api_key, max_line_bytes=self.settings.max_line_bytes
        )

    def parse_response(self, body: bytes) -> list[Event]:
        data = json_object(body)
        if isinstance(data, UpstreamError):
            return [data]
        if not isinstance(data.get("choices"), list) and error_info(data) is None:
            return [protocol_error("upstream response has no choices")]
        out: list[Event] = []
        ChunkMapper(self.quirks, self.settings.api_key).map(data, out, key="message")
        return out

    def parse_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            info = error_info(orjson.loads(body)) or ErrorInfo()
        except orjson.JSONDecodeError:
            info = ErrorInfo()  # HTML from a proxy, or empty: never echoed
        if status < 400:  # e.g. a redirect: the base_url is wrong
            err_type, reported = "upstream_bad_status", 502
        else:
            reported = status
            err_type = info.type or default_type(status)
        message = info.message or f"upstream returned HTTP {status}"
        retryable = is_retryable(status) and not is_quota(info)
        should_retry = lowered.get("x-should-retry", "").strip().lower()
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        return UpstreamError(
            status=reported,
            type=err_type,
            message=clean_message(message, self.settings.api_key, MAX_MESSAGE_CHARS),
            retryable=retryable,
            code=info.code,
            param=info.param,
            retry_after_s=retry_after(lowered),
            opens_circuit=opens_circuit(status),
        )


def openai_compatible(quirks: Quirks) -> Callable[[ProviderSettings], OpenAICompatProvider]:
    """A provider factory for an OpenAI-compatible kind with these quirks (for plugins)."""

    def factory(settings: ProviderSettings) -> OpenAICompatProvider:
        return OpenAICompatProvider(settings, quirks)

    return factory


def register_kinds(register: Callable[[str, Callable[[ProviderSettings], Any]], None]) -> None:
    for kind, quirks in BUILTIN_QUIRKS.items():
        register(kind, openai_compatible(quirks))
