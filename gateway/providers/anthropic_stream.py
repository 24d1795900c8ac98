"""Anthropic Messages API: the SSE stream decoder and the error/usage mapping it shares.

Sans-I/O: `AnthropicStreamDecoder.feed(bytes)` returns normalized events. The
stream is dispatched on the `event:` name (falling back to the payload `type`
when a server omits the name), exactly like anthropic-sdk-python.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.providers.common import (
    MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS,
)
from gateway.providers.common import clean_message, json_text
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
from gateway.streaming.adapter import RelaySpec
from gateway.streaming.events import (
    Event,
    Finish,
    FinishReason,
    ReasoningDelta,
    ReasoningSignature,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)
from gateway.streaming.sse import SSEDecoder, SSEEvent

# A text delta event, as the bytes after `event: content_block_delta\ndata: ` (the API's
# compact JSON, its key order): the text as an escaped string body (runs of plain
# characters between escapes). What the race's token watch recognises as a token of this
# stream (`token_spec`); the watch stops at anything else.
TEXT_DELTA_PREFIX = b"event: content_block_delta\ndata: "
TEXT_DELTA_EVENT = re.compile(
    rb'\{"type":"content_block_delta","index":\d{1,9},"delta":\{"type":"text_delta",'
    rb'"text":"([^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*)"\}\}\n\n'
)

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic `error.type` -> the HTTP status it stands for (errors page, SDK mapping).
STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def status_error(status: int, err_type: str, message: str) -> UpstreamError:
    return UpstreamError(
        status=status,
        type=err_type,
        message=message[:MAX_MESSAGE_CHARS],
        retryable=is_retryable(status),
        opens_circuit=opens_circuit(status),
    )


def error_from_body(
    payload: Any, status: int | None = None, secret: str | None = None
) -> UpstreamError:
    """`{"type":"error","error":{"type","message"}}` as an error event; `secret` (the API
    key) is redacted from the message.

    With no HTTP status (an in-stream `event: error`, whose HTTP status is 200)
    the status is derived from the error type; unknown types become 502.
    """
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {}
    err_type = error.get("type")
    if not isinstance(err_type, str) or not err_type:
        err_type = "api_error"
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"upstream error: {err_type[:100]}"
    if status is None:
        status = STATUS_BY_TYPE.get(err_type, 502)
    return status_error(status, err_type, clean_message(message, secret, MAX_MESSAGE_CHARS))


def truncated_error() -> UpstreamError:
    return UpstreamError(
        502,
        "upstream_stream_truncated",
        "upstream stream ended before message_stop",
        retryable=True,
    )


_NO_MESSAGE = object()  # no message_start seen yet


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class UsageState:
    """Anthropic usage fields, updated cumulatively (later values replace earlier ones)."""

    __slots__ = ("cache_creation", "cache_read", "input", "output")

    def __init__(self) -> None:
        self.input = self.cache_creation = self.cache_read = self.output = 0

    def update(self, usage: Any, with_output: bool = True) -> Usage:
        if isinstance(usage, dict):
            if "input_tokens" in usage:
                self.input = _int(usage["input_tokens"])
            if "cache_creation_input_tokens" in usage:
                self.cache_creation = _int(usage["cache_creation_input_tokens"])
            if "cache_read_input_tokens" in usage:
                self.cache_read = _int(usage["cache_read_input_tokens"])
            if with_output and "output_tokens" in usage:
                self.output = _int(usage["output_tokens"])
        # OpenAI's prompt_tokens includes cached tokens; Anthropic's input_tokens does not.
        prompt = self.input + self.cache_creation + self.cache_read
        return Usage(prompt=prompt, completion=self.output, cached=self.cache_read)


class AnthropicStreamDecoder:
    """Feed Messages API SSE bytes, get events. A stream that ends before `message_stop` is
    complete only if a `stop_reason` was seen; otherwise close() reports it truncated."""

    __slots__ = (
        "_args_seen",
        "_closed",
        "_done",
        "_finished",
        "_message_id",
        "_secret",
        "_sse",
        "_token_spec",
        "_tools",
        "_usage",
    )

    def __init__(
        self,
        max_line_bytes: int = 1 << 20,
        max_event_bytes: int = 4 << 20,
        secret: str | None = None,
    ) -> None:
        self._sse = SSEDecoder(max_line_bytes, max_event_bytes)
        limit = min(max_line_bytes, max_event_bytes)
        self._token_spec = RelaySpec(TEXT_DELTA_PREFIX, TEXT_DELTA_EVENT, limit)
        self._secret = secret  # the API key: redacted from error messages
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._args_seen: set[int] = set()  # tool call indexes that received arguments
        self._usage = UsageState()
        self._finished = False
        self._message_id: str | object | None = _NO_MESSAGE  # the open message's id
        self._done = False  # message_stop or an error: nothing more is decoded
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        if self._done:
            return []
        try:
            events = self._sse.feed(data)
        except ValueError as exc:  # LineTooLong / EventTooLarge
            self._done = True
            return [protocol_error(str(exc))]
        return self._handle(events) if events else []

    def token_spec(self) -> RelaySpec | None:
        """What a text delta looks like from here (between events, not done), for the race's
        token watch (`streaming/relay.py`): such an event's non-empty text is a TextDelta
        this decoder will produce. None when it cannot say now. Not a relay spec: the relay
        never takes an Anthropic stream over."""
        if self._done or self._closed or not self._sse.between_events:
            return None
        return self._token_spec

    def close(self) -> list[Event]:
        if self._closed:
            return []
        self._closed = True
        out: list[Event] = []
        if not self._done:
            try:
                out = self._handle(self._sse.close(flush_incomplete=True), at_eof=True)
            except ValueError as exc:
                self._done = True
                return [protocol_error(str(exc))]
        # Complete only with message_stop, or at least a stop_reason (nothing is lost but
        # the end marker; the OpenAI adapter treats a missing [DONE] the same way).
        if not self._done and not self._finished:
            out.append(truncated_error())
        self._done = True
        return out

    def _handle(self, sse_events: list[SSEEvent], at_eof: bool = False) -> list[Event]:
        out: list[Event] = []
        for sse in sse_events:
            if self._done:
                break
            name = sse.event
            if name == "ping":
                continue
            try:
                payload = orjson.loads(sse.data)
            except orjson.JSONDecodeError:
                if at_eof:  # a half-sent last event: the stream was cut, see close()
                    break
                self._done = True
                out.append(protocol_error(f"invalid JSON in upstream event {name or 'message'!r}"))
                break
            if not isinstance(payload, dict):
                continue
            if not name or name == "message":
                kind = payload.get("type")
                name = kind if isinstance(kind, str) else ""
            self._dispatch(name, payload, out)
        return out

    def _dispatch(self, name: str, payload: dict[str, Any], out: list[Event]) -> None:
        if name == "content_block_delta":
            self._block_delta(payload, out)
        elif name == "content_block_start":
            self._block_start(payload, out)
        elif name == "content_block_stop":
            tool = self._tools.get(_int(payload.get("index")))
            if tool is not None and tool not in self._args_seen:
                self._args_seen.add(tool)
                out.append(ToolCallDelta(tool, arguments="{}"))
        elif name == "message_start":
            message = payload.get("message")
            if not isinstance(message, dict):
                message = {}
            message_id = message.get("id") if isinstance(message.get("id"), str) else None
            if self._message_id is not _NO_MESSAGE:
                if message_id == self._message_id:
                    return  # a repeated start of the open message: nothing new
                # A second message inside one stream (a known upstream fault): merging it
                # would splice two answers (and half a tool call) into one.
                self._done = True
                out.append(
                    protocol_error(
                        "upstream started a second message inside one stream "
                        f"({str(message_id)[:64]!r} while {str(self._message_id)[:64]!r} is open)"
                    )
                )
                return
            self._message_id = message_id
            model = message.get("model")
            out.append(ResponseMeta(model=model if isinstance(model, str) else None))
            # message_start's output_tokens is a placeholder, not output: report 0.
            out.append(self._usage.update(message.get("usage"), with_output=False))
        elif name == "message_delta":
            out.append(self._usage.update(payload.get("usage")))
            delta = payload.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(reason, str) and not self._finished:
                self._finished = True
                out.append(Finish(FINISH_REASONS.get(reason, "stop")))
        elif name == "message_stop":
            self._done = True
        elif name == "error":
            self._done = True
            out.append(error_from_body(payload, secret=self._secret))
        # ping, citations-only events and unknown events carry nothing.

    def _block_start(self, payload: dict[str, Any], out: list[Event]) -> None:
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return
        kind = block.get("type")
        if kind == "tool_use":
            tool = len(self._tools)
            self._tools[_int(payload.get("index"))] = tool
            name, call_id = block.get("name"), block.get("id")
            out.append(
                ToolCallDelta(
                    tool,
                    id=call_id if isinstance(call_id, str) else None,
                    name=name if isinstance(name, str) else None,
                )
            )
            preset = block.get("input")
            if isinstance(preset, dict) and preset:  # not sent by the API today, but valid
                arguments = json_text(preset)
                if arguments is None:
                    self._done = True
                    out.append(protocol_error("upstream tool input cannot be re-encoded"))
                    return
                self._args_seen.add(tool)
                out.append(ToolCallDelta(tool, arguments=arguments))
        elif kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                out.append(TextDelta(text))
        elif kind == "thinking":
            text = block.get("thinking")
            if isinstance(text, str) and text:
                out.append(ReasoningDelta(text))

    def _block_delta(self, payload: dict[str, Any], out: list[Event]) -> None:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if isinstance(text, str) and text:
                out.append(TextDelta(text))
        elif kind == "input_json_delta":
            partial = delta.get("partial_json")
            tool = self._tools.get(_int(payload.get("index")))
            if tool is not None and isinstance(partial, str) and partial:
                self._args_seen.add(tool)
                out.append(ToolCallDelta(tool, arguments=partial))
        elif kind == "thinking_delta":
            text = delta.get("thinking")
            if isinstance(text, str) and text:
                out.append(ReasoningDelta(text))
        elif kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str) and signature:
                out.append(ReasoningSignature(signature))
