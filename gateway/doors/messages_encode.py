"""Events -> Anthropic Messages API output: the SSE event stream, one Message body, errors.

The stream is Anthropic's (wire-formats.md §2): `message_start`, then content blocks in
index order, each `content_block_start` / deltas / `content_block_stop` (a text run is a
text block, reasoning a thinking block, each tool call a tool_use block; a block closes
when the next one opens), then `message_delta` (stop_reason, usage) and `message_stop`.
Every event has its `event:` line, which is what the anthropic SDK dispatches on. `ping`
is the keep-alive; a failure after the stream started is one `event: error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Our status -> Anthropic's error type. Anthropic's SDK knows these types only, so a 413,
# 415 or 422 is an invalid_request_error (the SDK's exception class follows the status).
ERROR_TYPES = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
PING = b'event: ping\ndata: {"type":"ping"}\n\n'
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT = b',"delta":{"type":"text_delta","text":'
_THINKING = b',"delta":{"type":"thinking_delta","thinking":'
_JSON = b',"delta":{"type":"input_json_delta","partial_json":'
_SIGNATURE = b',"delta":{"type":"signature_delta","signature":'
_END = b"}}\n\n"
_QUOTE_END = b'"}}\n\n'


def error_type(status: int, type_: str | None = None) -> str:
    """Anthropic's error type for one of our statuses (and our type, for overload)."""
    if status == 529 or type_ == "overloaded_error":
        return "overloaded_error"
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 or status < 400 else "invalid_request_error"


def error_status(status: int, type_: str | None = None) -> int:
    """The HTTP status of a failure before the stream. Anthropic says 529 for overload (the
    race reports an overloaded upstream as 503, OpenAI's way: its type tells)."""
    if type_ == "overloaded_error":
        return 529
    return status if 400 <= status <= 599 else 502


def error_body(
    status: int,
    message: str,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}}`; code and param have no place in it
    (the message names the field, as Anthropic's own messages do)."""
    return {"type": "error", "error": {"type": error_type(status, type_), "message": message}}


def upstream_error_body(error: UpstreamError) -> dict[str, Any]:
    return error_body(error_status(error.status, error.type), error.message, error.type)


def sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def usage_fields(usage: Usage | None) -> dict[str, int]:
    """Ours counts cached tokens in the prompt (OpenAI's way); Anthropic's input_tokens
    excludes the tokens read from cache."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    fields = {"input_tokens": max(0, usage.prompt - usage.cached)}
    fields["output_tokens"] = usage.completion
    if usage.cached:
        fields["cache_read_input_tokens"] = usage.cached
    return fields


def stop_reason(finish: str | None, saw_tools: bool) -> str:
    if finish is None:
        return "tool_use" if saw_tools else "end_turn"
    return STOP_REASONS.get(finish, "end_turn")


def tool_id(response_id: str, index: int) -> str:
    return f"toolu_{response_id.removeprefix('msg_')[-12:]}_{index}"


class TextFrame:
    """The open text block's `text_delta` event around already escaped text (for the fast
    relay, `streaming/relay.py`): what `_text` writes for a run of raw text deltas."""

    __slots__ = ("_head",)

    def __init__(self, head: bytes) -> None:
        self._head = head

    def frame(self, bodies: list[bytes]) -> bytes:
        body = bodies[0] if len(bodies) == 1 else b"".join(bodies)
        return self._head + body + _QUOTE_END


class MessagesStreamEncoder:
    """Event batches -> Anthropic SSE bytes for one response (one write per batch)."""

    __slots__ = (
        "_block",
        "_closed",
        "_finish",
        "_index",
        "_model",
        "_open",
        "_opening",
        "_prompt_estimate",
        "_response_id",
        "_started",
        "_text_head",
        "_tools",
        "_usage",
    )

    def __init__(
        self, response_id: str, created: int, model: str, prompt_estimate: int = 0
    ) -> None:
        """`prompt_estimate` stands in message_start for the input tokens until the winner
        reports them (most report usage at the end; message_delta then has the real count)."""
        self._response_id = response_id
        self._prompt_estimate = prompt_estimate
        self._model = model
        self._opening = b""  # message_start with the estimate, once readied
        self._started = False
        self._closed = False
        self._open: Any = None  # "text" | "thinking" | ("tool", upstream index) | None
        self._block = -1  # index of the open (or last) block
        self._index = 0  # index the next block gets
        self._tools: dict[int, int] = {}  # upstream tool index -> block index
        self._text_head = b""  # the open text block's delta, up to the opening quote
        self._finish: str | None = None
        self._usage: Usage | None = None

    def heartbeat(self) -> bytes:
        return PING

    def ready(self) -> None:
        """Render message_start (with the estimate) now, while the upstream is silent."""
        if not self._opening:
            self._opening = self._message_start(Usage(prompt=self._prompt_estimate))

    def _start(self, events: list[Event]) -> bytes:
        self._started = True
        usage = next((e for e in reversed(events) if isinstance(e, Usage)), None)
        if usage is None:  # the winner has not reported its usage yet: the estimate
            self.ready()
            return self._opening
        return self._message_start(usage)

    def _message_start(self, usage: Usage) -> bytes:
        message: dict[str, Any] = {
            "id": self._response_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_fields(usage),
        }
        return sse("message_start", {"type": "message_start", "message": message})

    def _open_block(self, kind: Any, block: dict[str, Any], out: list[bytes]) -> None:
        self._close_block(out)
        self._open = kind
        self._block = self._index
        self._index += 1
        data = {"type": "content_block_start", "index": self._block, "content_block": block}
        out.append(sse("content_block_start", data))

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(
                b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
                + str(self._block).encode()
                + b"}\n\n"
            )
            self._open = None

    def encode(self, events: list[Event]) -> bytes:
        """One batch (as it arrived) -> bytes; the first batch opens the message."""
        if self._closed:
            return b""
        out: list[bytes] = [] if self._started else [self._start(events)]
        text: list[TextDelta] = []  # consecutive text deltas become one text_delta
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                if event.text:  # type: ignore[union-attr]
                    text.append(event)  # type: ignore[arg-type]
                continue
            if text:
                self._text(text, out)
                text = []
            if kind is ReasoningDelta:
                if event.text:  # type: ignore[union-attr]
                    if self._open != "thinking":
                        block = {"type": "thinking", "thinking": "", "signature": ""}
                        self._open_block("thinking", block, out)
                    out.append(self._delta(_THINKING, orjson.dumps(event.text)))  # type: ignore[union-attr]
            elif kind is ReasoningSignature:
                if self._open == "thinking":  # it closes the thinking block it signs
                    out.append(self._delta(_SIGNATURE, orjson.dumps(event.signature)))  # type: ignore[union-attr]
                    self._close_block(out)
            elif kind is ToolCallDelta:
                self._tool(event, out)  # type: ignore[arg-type]
            elif kind is Finish:
                self._finish = event.reason  # type: ignore[union-attr]
            elif kind is Usage:
                self._usage = event  # type: ignore[assignment]
            elif kind is UpstreamError:
                out.append(self.error(event))  # type: ignore[arg-type]
                return b"".join(out)
        if text:
            self._text(text, out)
        return b"".join(out)

    def _delta(self, head: bytes, value: bytes) -> bytes:
        return _DELTA_HEAD + str(self._block).encode() + head + value + _END

    def text_frame(self) -> TextFrame | None:
        """How more text is written while a text block is open (None otherwise)."""
        if self._open != "text" or self._closed:
            return None
        return TextFrame(self._text_head)

    def _text(self, run: list[TextDelta], out: list[bytes]) -> None:
        """One text_delta per run; bodies cut from OpenAI-shaped upstream chunks are already
        JSON-escaped, so they are framed as they are (the hot path: one token per batch)."""
        if self._open != "text":
            self._open_block("text", {"type": "text", "text": ""}, out)
            self._text_head = _DELTA_HEAD + str(self._block).encode() + _TEXT + b'"'
        if len(run) == 1:
            raw = run[0].raw
            body = raw.encode() if raw is not None else orjson.dumps(run[0].text)[1:-1]
        elif None in (raws := [event.raw for event in run]):
            body = orjson.dumps("".join(event.text for event in run))[1:-1]
        else:
            body = "".join(raws).encode()  # type: ignore[arg-type]
        out.append(self._text_head + body + _QUOTE_END)

    def _tool(self, event: ToolCallDelta, out: list[bytes]) -> None:
        block = self._tools.get(event.index)
        if block is None:
            call_id = event.id or tool_id(self._response_id, event.index)
            start = {"type": "tool_use", "id": call_id, "name": event.name or "", "input": {}}
            self._open_block(("tool", event.index), start, out)
            block = self._tools[event.index] = self._block
        if not event.arguments:
            return
        if block == self._block:
            out.append(self._delta(_JSON, orjson.dumps(event.arguments)))
        else:  # a late fragment of an earlier call (interleaved upstream): its own index
            out.append(
                _DELTA_HEAD + str(block).encode() + _JSON + orjson.dumps(event.arguments) + _END
            )

    def end(self) -> bytes:
        """Normal end: close the open block, then message_delta and message_stop."""
        if self._closed:
            return b""
        self._closed = True
        out: list[bytes] = [] if self._started else [self._start([])]
        self._close_block(out)
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(self._finish, bool(self._tools)),
                "stop_sequence": None,
            },
            "usage": usage_fields(self._usage),
        }
        out.append(sse("message_delta", delta))
        out.append(MESSAGE_STOP)
        return b"".join(out)

    def error(self, error: UpstreamError) -> bytes:
        """A terminal failure once streaming: one `event: error`, and nothing after it."""
        if self._closed:
            return b""
        self._closed = True
        return sse("error", upstream_error_body(error))


class MessagesAssembler:
    """A winner's events -> one Anthropic `Message` body (the blocks the stream would show)."""

    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []
        self.args: dict[int, list[str]] = {}  # block index -> argument fragments
        self.tools: dict[int, int] = {}  # upstream tool index -> block index
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.error: UpstreamError | None = None
        self.sealed = False  # the last block is a signed thinking block

    def add(self, events: list[Event]) -> None:
        for event in events:
            if self.error is not None:
                return
            if isinstance(event, TextDelta | ReasoningDelta):
                if event.text:
                    kind, key = (
                        ("text", "text") if type(event) is TextDelta else ("thinking", "thinking")
                    )
                    self._run(kind, key).append(event.text)
            elif isinstance(event, ReasoningSignature):
                if self.blocks and self.blocks[-1]["type"] == "thinking" and not self.sealed:
                    self.blocks[-1]["signature"] = event.signature
                    self.sealed = True  # the next reasoning starts a new block
            elif isinstance(event, ToolCallDelta):
                block = self.tools.get(event.index)
                if block is None:
                    block = self.tools[event.index] = len(self.blocks)
                    call = {"type": "tool_use", "id": event.id, "name": event.name or ""}
                    self.blocks.append(call)
                    self.args[block] = []
                self.args[block].append(event.arguments)
            elif isinstance(event, Finish):
                self.finish = event.reason
            elif isinstance(event, Usage):
                self.usage = event
            elif isinstance(event, UpstreamError):
                self.error = event

    def _run(self, kind: str, key: str) -> list[str]:
        """The pieces of the last block if it is of `kind`, else of a new one."""
        if not self.blocks or self.blocks[-1]["type"] != kind or self.sealed:
            self.sealed = False
            block: dict[str, Any] = {"type": kind, key: []}
            if kind == "thinking":
                block["signature"] = ""
            self.blocks.append(block)
        pieces: list[str] = self.blocks[-1][key]
        return pieces

    def build(self, response_id: str, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for i, block in enumerate(self.blocks):
            kind = block["type"]
            if kind == "tool_use":
                index = next(k for k, v in self.tools.items() if v == i)
                content.append(
                    {
                        "type": "tool_use",
                        "id": block["id"] or tool_id(response_id, index),
                        "name": block["name"],
                        "input": tool_input("".join(self.args[i])),
                    }
                )
            else:
                key = "text" if kind == "text" else "thinking"
                content.append({**block, key: "".join(block[key])})
        return {
            "id": response_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason(self.finish, bool(self.tools)),
            "stop_sequence": None,
            "usage": usage_fields(self.usage),
        }


def tool_input(arguments: str) -> dict[str, Any]:
    """Tool arguments as the object Anthropic's `input` must be; text that is not a JSON
    object is kept (never dropped) under `_arguments`."""
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_arguments": arguments}
    return value if isinstance(value, dict) else {"_arguments": arguments}
