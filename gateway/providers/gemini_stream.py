"""Gemini generateContent: the `alt=sse` stream decoder and the error mapping it shares.

Each SSE `data:` payload is one GenerateContentResponse (or an `{"error":…}`
object). The same chunk logic decodes a non-streaming generateContent body.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.providers.common import (
    MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS,
)
from gateway.providers.common import clamp_delay, clean_message, json_text, reported_count
from gateway.providers.common import (
    is_retryable as is_retryable,
)
from gateway.providers.common import (
    opens_circuit as opens_circuit,
)
from gateway.providers.common import (  # shared error semantics, re-exported
    protocol_error as protocol_error,
)
from gateway.providers.common import (
    retry_after as retry_after,
)
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)
from gateway.streaming.sse import SSEDecoder, SSEEvent

CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
# The model produced a call the gateway cannot hand to the client: another attempt may do better.
ERROR_REASONS = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL"})
# google.rpc status -> HTTP status, for errors that carry no numeric code.
STATUS_BY_RPC: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ABORTED": 409,
    "ALREADY_EXISTS": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def parse_duration(value: Any) -> float | None:
    """A protobuf Duration in JSON form ("34.4s") as seconds, capped at a day
    (common.MAX_RETRY_AFTER_S); None unless finite and >= 0 ("1e999s" is not a delay)."""
    if isinstance(value, str) and value.endswith("s") and len(value) <= 64:
        try:
            seconds = float(value[:-1])
        except ValueError:
            return None
        return clamp_delay(seconds)
    return None


def error_from_body(
    payload: Any,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    secret: str | None = None,
) -> UpstreamError:
    """`{"error":{"code","message","status","details"}}` as an error event (`headers`:
    lower-case names; `secret`, the API key, is redacted from the message).

    An invalid API key arrives as 400 INVALID_ARGUMENT with reason
    API_KEY_INVALID; it is reported as a 401 (the deployment is misconfigured).
    """
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    rpc = error.get("status") if isinstance(error.get("status"), str) else None
    code = error.get("code")
    if status is None:
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
            status = code
        else:
            status = STATUS_BY_RPC.get(rpc or "", 502)
    delay: float | None = None
    reasons: set[str] = set()
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict):
            if isinstance(detail.get("reason"), str):
                reasons.add(detail["reason"])
            if "retryDelay" in detail:
                delay = parse_duration(detail["retryDelay"])
    if "API_KEY_INVALID" in reasons:
        status, rpc = 401, "API_KEY_INVALID"
    if delay is None and headers:
        delay = retry_after(headers)
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"upstream error: {(rpc or str(status))[:100]}"
    return UpstreamError(
        status=status,
        type=TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error"),
        message=clean_message(message, secret, MAX_MESSAGE_CHARS),  # never echo the key back
        retryable=is_retryable(status),
        code=rpc,
        retry_after_s=delay,
        opens_circuit=opens_circuit(status),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class GeminiChunks:
    """Turns GenerateContentResponse objects (stream chunks or a whole body) into events."""

    __slots__ = ("_meta_sent", "_secret", "_tools", "_usage", "failed", "finished")

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret  # the API key: redacted from error messages
        self._meta_sent = False
        self._tools = 0  # function calls seen so far (the next tool call index)
        self._usage: Usage | None = None
        self.finished = False  # a Finish was emitted
        self.failed = False  # an UpstreamError was emitted

    def handle(self, chunk: Any, out: list[Event]) -> None:
        if self.failed or not isinstance(chunk, dict):
            return
        if "error" in chunk:
            self.failed = True
            out.append(error_from_body(chunk, secret=self._secret))
            return
        if not self._meta_sent:
            self._meta_sent = True
            version = chunk.get("modelVersion")
            out.append(ResponseMeta(model=version if isinstance(version, str) else None))
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        reason = None
        if isinstance(candidate, dict):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else ():
                if isinstance(part, dict):
                    self._part(part, chunk.get("responseId"), out)
                    if self.failed:  # the error must stay the last event
                        return
            reason = candidate.get("finishReason")
        self._usage_event(chunk.get("usageMetadata"), out)
        if isinstance(reason, str) and reason and reason != "FINISH_REASON_UNSPECIFIED":
            self._finish(reason, candidate, out)
        elif candidate is None and not self.finished:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self.finished = True  # blocked prompt: no candidates at all
                out.append(Finish("content_filter"))

    def _part(self, part: dict[str, Any], response_id: Any, out: list[Event]) -> None:
        text = part.get("text")
        if isinstance(text, str):
            if text:  # an empty text part only carries a thoughtSignature
                out.append(ReasoningDelta(text) if part.get("thought") else TextDelta(text))
            return
        call = part.get("functionCall")
        if isinstance(call, dict):
            index = self._tools
            self._tools += 1
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                prefix = f"call_{response_id}" if isinstance(response_id, str) else "call"
                call_id = f"{prefix}_{index}"
            args = call.get("args")
            arguments = json_text(args) if isinstance(args, dict) else "{}"
            if arguments is None:
                self.failed = True
                out.append(protocol_error("upstream function call args cannot be re-encoded"))
                return
            name = call.get("name")
            out.append(
                ToolCallDelta(index, call_id, name if isinstance(name, str) else None, arguments)
            )

    def _usage_event(self, meta: Any, out: list[Event]) -> None:
        if not isinstance(meta, dict):
            return
        thoughts = _int(meta.get("thoughtsTokenCount"))
        usage = Usage(
            prompt=_int(meta.get("promptTokenCount")),
            # candidatesTokenCount excludes thoughts: fold them in, as OpenAI counts them
            completion=_int(meta.get("candidatesTokenCount")) + thoughts,
            cached=_int(meta.get("cachedContentTokenCount")),
            reasoning=thoughts,
            total=reported_count(meta.get("totalTokenCount")),
        )
        if usage != self._usage:  # cumulative and repeated on every chunk: send changes only
            self._usage = usage
            out.append(usage)

    def _finish(self, reason: str, candidate: Any, out: list[Event]) -> None:
        if reason in ERROR_REASONS:
            self.failed = True
            detail = candidate.get("finishMessage") if isinstance(candidate, dict) else None
            message = f"upstream finished with {reason}"
            if isinstance(detail, str) and detail:
                message += f": {detail}"
            code = reason.lower()
            message = clean_message(message, self._secret, MAX_MESSAGE_CHARS)
            out.append(UpstreamError(502, "upstream_error", message, retryable=True, code=code))
        elif not self.finished:
            self.finished = True
            if reason == "MAX_TOKENS":
                out.append(Finish("length"))
            elif reason in CONTENT_FILTER_REASONS:
                out.append(Finish("content_filter"))
            else:  # STOP, and OTHER / LANGUAGE / TOO_MANY_TOOL_CALLS ... end the turn as well
                out.append(Finish("tool_calls" if self._tools else "stop"))


class GeminiStreamDecoder:
    """Feed `streamGenerateContent?alt=sse` bytes, get events; a stream must end with a finish."""

    __slots__ = ("_chunks", "_closed", "_sse")

    def __init__(
        self,
        max_line_bytes: int = 1 << 20,
        max_event_bytes: int = 4 << 20,
        secret: str | None = None,
    ) -> None:
        self._sse = SSEDecoder(max_line_bytes, max_event_bytes)
        self._chunks = GeminiChunks(secret)  # `secret`, the API key, is redacted from errors
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        if self._chunks.failed:
            return []
        try:
            return self._handle(self._sse.feed(data))
        except ValueError as exc:  # LineTooLong / EventTooLarge
            self._chunks.failed = True
            return [protocol_error(str(exc))]

    def shadow(self) -> GeminiStreamDecoder:
        """A copy in this decoder's state, for the race's token watch (`relay.ShadowWatch`):
        fed the same bytes from here, it produces the same events."""
        return copy.deepcopy(self)

    def close(self) -> list[Event]:
        if self._closed:
            return []
        self._closed = True
        if self._chunks.failed:
            return []
        try:
            # Some Gemini streams end right after the last `data:` line, with no blank line.
            out = self._handle(self._sse.close(flush_incomplete=True), at_eof=True)
        except ValueError as exc:
            self._chunks.failed = True
            return [protocol_error(str(exc))]
        if not self._chunks.finished and not self._chunks.failed:
            self._chunks.failed = True
            out.append(
                UpstreamError(
                    502,
                    "upstream_stream_truncated",
                    "upstream stream ended without a finishReason",
                    retryable=True,
                )
            )
        return out

    def _handle(self, sse_events: list[SSEEvent], at_eof: bool = False) -> list[Event]:
        out: list[Event] = []
        for sse in sse_events:
            if self._chunks.failed:
                break
            try:
                chunk = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                if at_eof:  # a half-sent last chunk: the stream was cut, see close()
                    break
                self._chunks.failed = True
                out.append(protocol_error("invalid JSON in upstream stream chunk"))
                break
            self._chunks.handle(chunk, out)
        return out
