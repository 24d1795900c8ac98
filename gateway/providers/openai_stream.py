"""OpenAI Chat Completions: the SSE stream decoder and the error mapping it shares.

Sans-I/O: `OpenAIStreamDecoder.feed(bytes)` returns normalized events. The
decoder accepts the union of the OpenAI-compatible dialects (reasoning under any
configured field, Mistral array content and whole tool calls without `index`,
usage on any chunk, flat error objects), so one code path serves every
OpenAI-compatible server; what differs is data (`quirks.Quirks`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from gateway.providers.common import (
    MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS,
)
from gateway.providers.common import clean_message, json_text, reported_count
from gateway.providers.common import (
    is_retryable as is_retryable,
)
from gateway.providers.common import (
    opens_circuit as opens_circuit,
)
from gateway.providers.common import (  # shared error semantics, re-exported
    protocol_error as protocol_error,
)
from gateway.providers.openai_reframe import TextChunkShortcut, relay_spec
from gateway.providers.quirks import Quirks
from gateway.streaming.adapter import RelaySpec
from gateway.streaming.events import (
    Event,
    Finish,
    FinishReason,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)
from gateway.streaming.sse import SSEDecoder

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",  # legacy OpenAI
    "insufficient_system_resource": "stop",  # DeepSeek: cut short by the server
    "model_length": "length",  # older Mistral
}
# Error types that stand for a definite HTTP status (used when a stream error has no int code).
STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "rate_limited": 429,
    "insufficient_quota": 429,
}
TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "payment_required",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def default_type(status: int) -> str:
    """The error type for a status when the body names none."""
    return TYPE_BY_STATUS.get(status, "api_error")


def truncated_error() -> UpstreamError:
    message = "upstream stream ended before a finish reason or [DONE]"
    return UpstreamError(502, "upstream_stream_truncated", message, retryable=True)


class ErrorInfo(NamedTuple):
    """The fields an error body carries, whatever its shape."""

    message: str | None = None
    type: str | None = None
    code: str | None = None
    param: str | None = None
    status: int | None = None  # an integer `code` that is an HTTP error status


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def error_info(data: Any) -> ErrorInfo | None:
    """OpenAI `{"error":{...}}`, flat `{"object":"error",...}` (Mistral, old vLLM), Ollama
    `{"error":"..."}`, FastAPI `{"detail":...}` or `{"message":...}`; None for anything else."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, str):
        return ErrorInfo(message=error or None)
    if isinstance(error, dict):
        source = error
    elif data.get("object") == "error" or isinstance(data.get("message"), str):
        source = data
    elif "detail" in data:
        detail = data["detail"]
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = item.get("loc")
                    # Only scalars: str() of deeply nested upstream JSON can exhaust the stack.
                    where = (
                        ".".join(str(p) for p in loc if isinstance(p, str | int | float))
                        if isinstance(loc, list)
                        else ""
                    )
                    msg = _str(item.get("msg")) or "invalid value"
                    parts.append(f"{where}: {msg}" if where else msg)
                if sum(len(part) for part in parts) > MAX_MESSAGE_CHARS:
                    break
            return ErrorInfo(message="; ".join(parts) or None)
        return ErrorInfo(message=_str(detail))
    else:
        return None
    code = source.get("code")
    status = None
    if isinstance(code, int) and not isinstance(code, bool):
        status = code if 400 <= code <= 599 else None
        code = str(code)
    message, err_type, param = source.get("message"), source.get("type"), source.get("param")
    return ErrorInfo(_str(message), _str(err_type), _str(code), _str(param), status)


def is_quota(info: ErrorInfo) -> bool:
    return "insufficient_quota" in (info.type, info.code)


def stream_error(info: ErrorInfo, secret: str | None = None) -> UpstreamError:
    """An error chunk inside a 200 stream (or a 200 body); `secret` (the API key) is redacted."""
    status = info.status or STATUS_BY_TYPE.get(info.type or "") or 502
    err_type = info.type or TYPE_BY_STATUS.get(status, "upstream_error")
    message = info.message or f"upstream reported an error ({err_type})"
    return UpstreamError(
        status=status,
        type=err_type,
        message=clean_message(message, secret, MAX_MESSAGE_CHARS),
        retryable=is_retryable(status) and not is_quota(info),
        code=info.code,
        param=info.param,
        opens_circuit=opens_circuit(status),
    )


def _usage(usage: dict[str, Any]) -> Usage:
    prompt_details = usage.get("prompt_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    completion_details = usage.get("completion_tokens_details")
    reasoning = 0
    if isinstance(completion_details, dict):
        reasoning = _int(completion_details.get("reasoning_tokens"))
    reasoning = reasoning or _int(usage.get("reasoning_tokens"))  # flat, beside completion
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = reported_count(usage.get("total_tokens"))
    # OpenAI counts reasoning inside completion_tokens; some providers report it beside
    # them, which their total (or a reasoning count above completion) gives away.
    beside = reasoning > 0 and (
        total - prompt - completion >= reasoning if total is not None else reasoning > completion
    )
    return Usage(
        prompt=prompt,
        completion=completion,
        cached=cached or _int(usage.get("prompt_cache_hit_tokens")),  # DeepSeek
        reasoning=reasoning,
        total=total,
        reasoning_in_completion=not beside,
    )


class ChunkMapper:
    """Chunk (or whole-response) JSON objects -> events, with the state that spans chunks."""

    __slots__ = (
        "_named",
        "_quirks",
        "_secret",
        "_started",
        "_tool_ids",
        "_usage_paths",
        "failed",
        "finished",
        "meta_sent",
    )

    def __init__(self, quirks: Quirks, secret: str | None = None) -> None:
        self._quirks = quirks
        self._usage_paths = tuple(tuple(path.split(".")) for path in quirks.usage_fields)
        self._secret = secret  # the API key: redacted from error messages
        self._started: set[int] = set()  # tool call indexes whose first fragment was seen
        self._named: set[int] = set()  # tool call indexes whose name was emitted
        self._tool_ids: dict[str, int] = {}
        self.meta_sent = False
        self.finished = False
        self.failed = False

    def map(self, chunk: dict[str, Any], out: list[Event], key: str = "delta") -> None:
        """Append the events of one chunk; `key` is "delta" (stream) or "message" (body)."""
        if chunk.get("error") is not None or chunk.get("object") == "error":
            self.failed = True
            out.append(stream_error(error_info(chunk) or ErrorInfo(), self._secret))
            return
        if not self.meta_sent:
            model = _str(chunk.get("model"))
            if model is not None:  # skips Azure's prompt_filter_results chunk (model "")
                self.meta_sent = True
                out.append(ResponseMeta(model, _str(chunk.get("system_fingerprint"))))
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(choice, dict):
            delta = choice.get(key)
            if isinstance(delta, dict):
                self._delta(delta, out)
                if self.failed:  # the error must stay the last event
                    return
            reason = _str(choice.get("finish_reason"))
            if reason == "error":  # Mistral
                self.failed = True
                message = "upstream finished the response with an error"
                out.append(UpstreamError(502, "upstream_error", message, retryable=True))
                return
            if reason is not None and not self.finished:
                self.finished = True
                out.append(Finish(FINISH_REASONS.get(reason, "stop")))
        for path in self._usage_paths:
            usage: Any = chunk
            for part in path:
                usage = usage.get(part) if isinstance(usage, dict) else None
            if isinstance(usage, dict):
                out.append(_usage(usage))

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        for name in self._quirks.reasoning_fields:
            reasoning = _str(delta.get(name))
            if reasoning is not None:
                out.append(ReasoningDelta(reasoning))
                break
        content = delta.get("content")
        if isinstance(content, str):
            if content:
                out.append(TextDelta(content))
        elif isinstance(content, list):
            self._parts(content, out)
        refusal = _str(delta.get("refusal"))
        if refusal is not None:
            out.append(TextDelta(refusal))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            self._tool_calls(calls, out)
        elif isinstance(delta.get("function_call"), dict):  # legacy single function call
            self._tool_calls([{"index": 0, "function": delta["function_call"]}], out)

    def _parts(self, parts: list[Any], out: list[Event]) -> None:
        """Mistral array content: text parts and `thinking` parts (a string or text parts)."""
        for part in parts:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                text = _str(part.get("text"))
                if text is not None:
                    out.append(TextDelta(text))
            elif kind == "thinking":
                thinking = part.get("thinking")
                items = thinking if isinstance(thinking, list) else [{"text": thinking}]
                for item in items:
                    text = _str(item.get("text")) if isinstance(item, dict) else None
                    if text is not None:
                        out.append(ReasoningDelta(text))

    def _tool_calls(self, calls: list[Any], out: list[Event]) -> None:
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            call_id = _str(call.get("id"))
            index = call.get("index")
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                if call_id is not None:  # Mistral: whole calls without index
                    known = self._tool_ids.get(call_id)
                    index = known if known is not None else max(self._started, default=-1) + 1
                else:
                    index = position
            function = call.get("function")
            if not isinstance(function, dict):
                function = {}
            name = _str(function.get("name"))
            arguments = function.get("arguments")
            if isinstance(arguments, dict | list):
                arguments = json_text(arguments)
                if arguments is None:
                    self.failed = True
                    out.append(protocol_error("upstream tool call arguments cannot be re-encoded"))
                    return
            elif not isinstance(arguments, str):
                arguments = ""
            # The contract: id and name once per call, on its first fragment.
            if index in self._started:
                call_id = None
            else:
                self._started.add(index)
                if call_id is not None:
                    self._tool_ids[call_id] = index
            if name is not None and index in self._named:
                name = None
            elif name is not None:
                self._named.add(index)
            if call_id is not None or name is not None or arguments:
                out.append(ToolCallDelta(index, call_id, name, arguments))


class OpenAIStreamDecoder:
    """Feed Chat Completions SSE bytes, get events. Ends at `data: [DONE]`; a stream that
    ends before `[DONE]` is complete only if a finish reason was seen."""

    __slots__ = ("_closed", "_done", "_limit", "_mapper", "_secret", "_shortcut", "_spec", "_sse")

    def __init__(
        self,
        quirks: Quirks,
        secret: str | None = None,
        max_line_bytes: int = 1 << 20,
        max_event_bytes: int = 4 << 20,
    ) -> None:
        self._sse = SSEDecoder(max_line_bytes, max_event_bytes)
        self._limit = min(max_line_bytes, max_event_bytes)
        self._spec: RelaySpec | None = None
        self._secret = secret  # redacted from error messages
        self._mapper = ChunkMapper(quirks, secret)
        self._shortcut = TextChunkShortcut()
        self._done = False  # [DONE], an error, or a fatal decoding problem
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        if self._done:
            return []
        try:
            payloads = self._sse.feed_data(data)
        except ValueError as exc:  # LineTooLong / EventTooLarge
            return self._fail(protocol_error(str(exc), retryable=False))
        return self._handle(payloads, at_eof=False) if payloads else []

    def relay_spec(self) -> RelaySpec | None:
        """The fast relay may take the stream over from here (between two events, once a
        plain text chunk's head is known); None when not."""
        if self._done or self._closed or not self._sse.between_events:
            return None
        if self._spec is None:  # the head, once learned, never changes
            self._spec = relay_spec(self._shortcut.head, self._limit)
        return self._spec

    def token_spec(self) -> RelaySpec | None:
        """What a token looks like from here, for the race's token watch: what the relay
        would take (a plain text chunk's non-empty text is a token)."""
        return self.relay_spec()

    def close(self) -> list[Event]:
        if self._closed:
            return []
        self._closed = True
        out: list[Event] = []
        if not self._done:
            try:  # an upstream may omit the blank line after its last event
                tail = self._sse.close(flush_incomplete=True)
                out = self._handle([event.data for event in tail], at_eof=True)
            except ValueError as exc:
                return self._fail(protocol_error(str(exc), retryable=False))
        if not self._done:
            out += self._fail(truncated_error())
        return out

    def _fail(self, error: UpstreamError) -> list[Event]:
        """Stop decoding. A protocol problem after the finish reason loses at most a usage
        chunk: the response itself is complete, so it is not reported."""
        self._done = True
        return [] if self._mapper.finished else [error]

    def _handle(self, payloads: list[str], at_eof: bool) -> list[Event]:
        out: list[Event] = []
        for data in payloads:
            if data == "[DONE]" or (len(data) < 16 and data.strip() == "[DONE]"):
                self._done = True
                break
            plain = self._shortcut.match(data)
            if plain is not False:
                if plain is not True:
                    out.append(plain)
                continue
            if not data or data.isspace():
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = None
            if not isinstance(chunk, dict):
                # At EOF an unparsable last event is a cut-off line, not a bad upstream.
                out += self._fail(truncated_error() if at_eof else protocol_error("invalid chunk"))
                break
            before = len(out)
            self._mapper.map(chunk, out)
            if self._mapper.failed:  # its error (redacted by the mapper) is the last event
                self._done = True
                break
            self._shortcut.learn(data, chunk, out[before:])
        return out
