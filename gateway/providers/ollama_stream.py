"""Ollama native `/api/chat`: the NDJSON stream decoder and the error mapping it shares.

Every line is one JSON object; the last one has `done: true` and the counts.
A mid-stream failure is a `{"error": "..."}` line (the HTTP status stays 200).
"""

from __future__ import annotations

import copy
import hashlib
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
from gateway.streaming.ndjson import NDJSONDecoder

TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def status_error(status: int, message: str, retry_after_s: float | None = None) -> UpstreamError:
    """A non-2xx response as an error event."""
    if status < 400:  # e.g. a redirect: the base_url is wrong
        message = f"upstream returned HTTP {status}"
        return UpstreamError(502, "upstream_bad_status", message, retryable=False)
    return UpstreamError(
        status=status,
        type=TYPE_BY_STATUS.get(status, "api_error" if status >= 500 else "invalid_request_error"),
        message=message[:MAX_MESSAGE_CHARS],
        retryable=is_retryable(status),
        retry_after_s=retry_after_s,
        opens_circuit=opens_circuit(status),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OllamaLines:
    """Turns `/api/chat` response objects (stream lines or a whole body) into events."""

    __slots__ = ("_meta_sent", "_secret", "_stamp", "_tools", "done", "failed")

    def __init__(self, secret: str | None = None) -> None:
        self._secret = secret  # the API key: redacted from error messages
        self._meta_sent = False
        self._stamp = "0"  # made-up call ids must differ between turns of one conversation
        self._tools = 0  # tool calls seen so far (the next tool call index)
        self.done = False  # the `done: true` line was seen
        self.failed = False  # an UpstreamError was emitted

    def handle(self, line: Any, out: list[Event]) -> None:
        if self.failed or self.done or not isinstance(line, dict):
            return
        if "error" in line:
            self.failed = True
            error = line["error"]
            if isinstance(error, dict):  # tolerate the OpenAI-style envelope from proxies
                error = error.get("message")
            text = error if isinstance(error, str) and error else "upstream error"
            text = clean_message(text, self._secret, MAX_MESSAGE_CHARS)
            out.append(UpstreamError(502, "upstream_error", text, retryable=True))
            return
        if not self._meta_sent:
            self._meta_sent = True
            model = line.get("model")
            out.append(ResponseMeta(model=model if isinstance(model, str) else None))
            created = line.get("created_at")
            if isinstance(created, str) and created:
                self._stamp = hashlib.blake2s(created.encode(), digest_size=6).hexdigest()
        message = line.get("message")
        if isinstance(message, dict):
            thinking = message.get("thinking")
            if isinstance(thinking, str) and thinking:
                out.append(ReasoningDelta(thinking))
            content = message.get("content")
            if isinstance(content, str) and content:
                out.append(TextDelta(content))
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, dict):
                    self._tool_call(call, out)
                    if self.failed:  # the error must stay the last event
                        return
        if line.get("done") is True:
            self.done = True
            out.append(
                Usage(
                    prompt=_int(line.get("prompt_eval_count")),
                    completion=_int(line.get("eval_count")),
                )
            )
            if line.get("done_reason") == "length":
                out.append(Finish("length"))
            else:  # stop (and load/unload, which carry no output)
                out.append(Finish("tool_calls" if self._tools else "stop"))

    def _tool_call(self, call: dict[str, Any], out: list[Event]) -> None:
        index = self._tools
        self._tools += 1
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            call_id = f"call_{self._stamp}_{index}"
        args = function.get("arguments")
        if isinstance(args, str):
            arguments: str | None = args
        else:
            arguments = json_text(args) if isinstance(args, dict) else "{}"
        if arguments is None:
            self.failed = True
            out.append(protocol_error("upstream tool call arguments cannot be re-encoded"))
            return
        name = function.get("name")
        out.append(
            ToolCallDelta(index, call_id, name if isinstance(name, str) else None, arguments)
        )


class OllamaStreamDecoder:
    """Feed `/api/chat` NDJSON bytes, get events. A stream must end with a `done: true` line."""

    __slots__ = ("_closed", "_lines", "_ndjson")

    def __init__(self, max_line_bytes: int = 1 << 20, secret: str | None = None) -> None:
        self._ndjson = NDJSONDecoder(max_line_bytes)
        self._lines = OllamaLines(secret)  # `secret`, the API key, is redacted from errors
        self._closed = False

    def feed(self, data: bytes) -> list[Event]:
        if self._lines.failed or self._lines.done:
            return []
        try:
            return self._handle(self._ndjson.feed(data))
        except ValueError as exc:  # LineTooLong
            self._lines.failed = True
            return [protocol_error(str(exc))]

    def shadow(self) -> OllamaStreamDecoder:
        """A copy in this decoder's state, for the race's token watch (`relay.ShadowWatch`):
        fed the same bytes from here, it produces the same events."""
        return copy.deepcopy(self)

    def close(self) -> list[Event]:
        if self._closed:
            return []
        self._closed = True
        if self._lines.failed or self._lines.done:
            return []
        out = self._handle(self._ndjson.close(), at_eof=True)
        if not self._lines.done and not self._lines.failed:
            self._lines.failed = True
            message = "upstream stream ended without a done line"
            out.append(UpstreamError(502, "upstream_stream_truncated", message, retryable=True))
        return out

    def _handle(self, lines: list[bytes], at_eof: bool = False) -> list[Event]:
        out: list[Event] = []
        for raw in lines:
            if self._lines.failed or self._lines.done:
                break
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                if at_eof:  # a half-sent last line: the stream was cut, see close()
                    break
                self._lines.failed = True
                out.append(protocol_error("invalid JSON line in upstream stream"))
                break
            self._lines.handle(line, out)
        return out
