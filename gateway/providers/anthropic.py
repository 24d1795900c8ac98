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

from gateway.providers.anthropic_body import (
    ANTHROPIC_VERSION,
    PROVIDER_OPTIONS,
    TYPE_BY_STATUS,
    build_body,
)
from gateway.providers.anthropic_stream import (
    FINISH_REASONS,
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
    ReasoningSignature,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
)


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
        return UpstreamRequest("POST", self._url, self._headers_for(request), orjson.dumps(body))

    def _headers_for(self, request: ChatRequest) -> dict[str, str]:
        headers = dict(self._headers)
        beta = (request.anthropic or {}).get("beta")
        if beta:  # the client's betas (Messages door) join the deployment's own
            own = headers.get("anthropic-beta")
            headers["anthropic-beta"] = f"{own},{beta}" if own else beta
        return headers

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
        return UpstreamRequest("POST", self._url, self._headers_for(request), orjson.dumps(body))

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
                text, signature = block.get("thinking"), block.get("signature")
                if isinstance(text, str) and text:
                    events.append(ReasoningDelta(text))
                if isinstance(signature, str) and signature:
                    events.append(ReasoningSignature(signature))
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
