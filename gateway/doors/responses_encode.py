"""Events -> the Responses API's typed SSE stream (`event: <type>\\ndata: {...}\\n\\n`, each
event with a `sequence_number`), and the non-stream Response body.

Output items follow the events: reasoning becomes a `reasoning` item with one
`reasoning_text` part (the raw chain of thought upstreams give; `responses.stream()` passes
`response.reasoning_text.*` through), text a `message` item with one `output_text` part,
each tool call a `function_call` item. A switch between reasoning and text closes the
open item and opens the next; function calls stay open until the end (upstreams may
interleave them by index). The stream closes with `response.completed`, or
`response.incomplete` for a length / content-filter finish, or `error` then
`response.failed` when the winner fails after its first token. No `[DONE]` (the real API
sends none).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.doors.responses_object import (
    INCOMPLETE_REASONS,
    failure_code,
    function_call_item,
    message_item,
    output_text_part,
    reasoning_item,
    response_object,
    usage_object,
)
from gateway.doors.responses_parse import ResponsesContext
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)

HEARTBEAT = b": keep-alive\n\n"
_SEQ = b',"sequence_number":'
_END = b"}\n\n"


class _Item:
    """An output item still receiving deltas."""

    __slots__ = ("call_id", "delta_head", "id", "index", "kind", "name", "pieces")

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind = kind  # message | reasoning | function_call
        self.id = item_id
        self.index = index
        self.pieces: list[str] = []
        self.call_id = ""
        self.name = ""
        self.delta_head = b""

    def text(self) -> str:
        return "".join(self.pieces)

    def as_dict(self, status: str, opening: bool = False) -> dict[str, Any]:
        """The item as the Response shows it; `opening`: as output_item.added shows it,
        before its content part is added."""
        if self.kind == "message":
            return message_item(self.id, status, None if opening else self.text())
        if self.kind == "reasoning":
            return reasoning_item(self.id, status, None if opening else self.text())
        return function_call_item(self.id, status, self.call_id, self.name, self.text())


class TextFrame:
    """The open message item's `response.output_text.delta` event around already escaped
    text (for the fast relay, `streaming/relay.py`): what `_text` writes for a run of raw
    text deltas, numbered in the stream's sequence, the text kept for the item."""

    __slots__ = ("_encoder", "_item")

    def __init__(self, encoder: ResponsesStreamEncoder, item: _Item) -> None:
        self._encoder = encoder
        self._item = item

    def frame(self, bodies: list[bytes]) -> bytes:
        body = bodies[0] if len(bodies) == 1 else b"".join(bodies)
        # the relay passes valid JSON string bodies only (UTF-8, JSON escapes)
        text = orjson.loads(b'"' + body + b'"') if body.find(b"\\") >= 0 else body.decode()
        self._item.pieces.append(text)
        seq = self._encoder.next_sequence()
        return self._item.delta_head + b'"' + body + b'"' + _SEQ + seq + _END


class ResponsesStreamEncoder:
    """One response's SSE bytes: `encode(batch)` per batch of events (the first holds the
    first token), then `end()`, or `error(e)`; `response` is the final Response object."""

    def __init__(self, response_id: str, created: int, model: str, ctx: ResponsesContext) -> None:
        self.response_id = response_id
        self.created = created
        self.model = model
        self.ctx = ctx
        self.response: dict[str, Any] | None = None  # set once the stream has ended
        self._suffix = response_id.removeprefix("resp_")
        self._seq = 0
        self._opening = b""  # response.created and .in_progress, once readied
        self._started = False
        self._closed = False
        self._output: list[_Item | dict[str, Any]] = []  # by output_index
        self._content: _Item | None = None  # the open message or reasoning item
        self._tools: dict[int, _Item] = {}  # open function calls by upstream index
        self._finish: str | None = None
        self._usage: Usage | None = None

    # -- framing ------------------------------------------------------------------

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload["type"] = kind
        payload["sequence_number"] = self._seq
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _snapshot(self, status: str, **extra: Any) -> dict[str, Any]:
        return response_object(
            self.response_id, self.created, self.model, self.ctx, status, [], **extra
        )

    def ready(self) -> None:
        """Render the stream's two opening events now, while the upstream is silent (they
        take sequence numbers 0 and 1, which nothing else takes before them)."""
        if not self._opening and not self._started:
            created = self._event("response.created", {"response": self._snapshot("in_progress")})
            self._opening = created + self._event(
                "response.in_progress", {"response": self._snapshot("in_progress")}
            )

    def _open_response(self) -> bytes:
        self.ready()
        self._started = True
        return self._opening

    # -- the contract ---------------------------------------------------------------

    def heartbeat(self) -> bytes:
        return HEARTBEAT

    def encode(self, events: list[Event]) -> bytes:
        if self._closed:
            return b""
        out: list[bytes] = [] if self._started else [self._open_response()]
        text: list[TextDelta] = []  # consecutive deltas of one kind become one event
        thought: list[str] = []
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                if thought:
                    out.append(self._reasoning(thought))
                    thought = []
                if event.text:  # type: ignore[union-attr]
                    text.append(event)  # type: ignore[arg-type]
                continue
            if text:
                out.append(self._text(text))
                text = []
            if kind is ReasoningDelta:
                if event.text:  # type: ignore[union-attr]
                    thought.append(event.text)  # type: ignore[union-attr]
                continue
            if thought:
                out.append(self._reasoning(thought))
                thought = []
            if kind is ToolCallDelta:
                out.append(self._tool(event))  # type: ignore[arg-type]
            elif kind is Finish:
                self._finish = event.reason  # type: ignore[union-attr]
            elif kind is Usage:
                self._usage = event  # type: ignore[assignment]
            elif kind is UpstreamError:
                out.append(self.error(event))  # type: ignore[arg-type]
                return b"".join(out)
        if thought:
            out.append(self._reasoning(thought))
        if text:
            out.append(self._text(text))
        return b"".join(out)

    def end(self) -> bytes:
        """Normal end: close the open items, then response.completed (or .incomplete)."""
        if self._closed:
            return b""
        out: list[bytes] = [] if self._started else [self._open_response()]
        reason = INCOMPLETE_REASONS.get(self._finish or "")
        status = "completed" if reason is None else "incomplete"
        if self._content is not None:
            out.append(self._close(self._content, status))
        for index in sorted(self._tools):
            out.append(self._close(self._tools[index], status))
        self._tools.clear()
        self._closed = True
        self.response = response_object(
            self.response_id,
            self.created,
            self.model,
            self.ctx,
            status,
            self._output_items(status),
            usage_object(self._usage),
            incomplete_reason=reason,
        )
        kind = "response.completed" if reason is None else "response.incomplete"
        out.append(self._event(kind, {"response": self.response}))
        return b"".join(out)

    def error(self, error: UpstreamError) -> bytes:
        """A failure once the stream is open: `error`, then `response.failed` with the output
        so far (its open items marked incomplete)."""
        if self._closed:
            return b""
        out: list[bytes] = [] if self._started else [self._open_response()]
        self._closed = True
        code = error.code or error.type or "server_error"
        out.append(
            self._event("error", {"code": code, "message": error.message, "param": error.param})
        )
        failure = {"code": failure_code(error), "message": error.message}
        self.response = response_object(
            self.response_id,
            self.created,
            self.model,
            self.ctx,
            "failed",
            self._output_items("incomplete"),
            usage_object(self._usage) if self._usage is not None else None,
            error=failure,
        )
        out.append(self._event("response.failed", {"response": self.response}))
        return b"".join(out)

    # -- items ----------------------------------------------------------------------

    def _output_items(self, open_status: str) -> list[dict[str, Any]]:
        return [
            item.as_dict(open_status) if isinstance(item, _Item) else item for item in self._output
        ]

    def _add(
        self, kind: str, prefix: str, call_id: str = "", name: str = ""
    ) -> tuple[_Item, bytes]:
        index = len(self._output)
        item = _Item(kind, f"{prefix}_{self._suffix}_{index}", index)
        item.call_id, item.name = call_id, name
        self._output.append(item)
        added = {"output_index": index, "item": item.as_dict("in_progress", opening=True)}
        return item, self._event("response.output_item.added", added)

    def _switch_to(self, kind: str) -> tuple[_Item, bytes]:
        """The open content item of `kind`, opening it (and closing another) if needed."""
        current = self._content
        if current is not None and current.kind == kind:
            return current, b""
        out = self._close(current, "completed") if current is not None else b""
        prefix = "msg" if kind == "message" else "rs"
        item, added = self._add(kind, prefix)
        if kind == "message":
            part: dict[str, Any] = output_text_part("")
        else:
            part = {"type": "reasoning_text", "text": ""}
        part_added = self._event(
            "response.content_part.added",
            {"item_id": item.id, "output_index": item.index, "content_index": 0, "part": part},
        )
        if kind == "message":  # the text delta frame, pre-rendered once per item
            item.delta_head = (
                b"event: response.output_text.delta\ndata: "
                b'{"type":"response.output_text.delta","item_id":'
                + orjson.dumps(item.id)
                + b',"output_index":'
                + str(item.index).encode()
                + b',"content_index":0,"logprobs":[],"delta":'
            )
        self._content = item
        return item, out + added + part_added

    def text_frame(self) -> TextFrame | None:
        """How more text is written while a message item is open (None otherwise)."""
        item = self._content
        if item is None or item.kind != "message" or self._closed:
            return None
        return TextFrame(self, item)

    def next_sequence(self) -> bytes:
        seq = self._seq
        self._seq += 1
        return str(seq).encode()

    def _text(self, run: list[TextDelta]) -> bytes:
        item = self._content
        head = b""
        if item is None or item.kind != "message":
            item, head = self._switch_to("message")
        if len(run) == 1:  # the common case: one delta per batch
            event = run[0]
            text, raw = event.text, event.raw
        else:
            text = "".join(event.text for event in run)
            raws = [event.raw for event in run]
            raw = None if None in raws else "".join(raws)  # type: ignore[arg-type]
        item.pieces.append(text)
        # text cut from an OpenAI-shaped upstream is already a JSON string body
        body = orjson.dumps(text) if raw is None else b'"' + raw.encode() + b'"'
        return head + item.delta_head + body + _SEQ + self.next_sequence() + _END

    def _reasoning(self, pieces: list[str]) -> bytes:
        item, head = self._switch_to("reasoning")
        text = "".join(pieces)
        item.pieces.append(text)
        return head + self._event(
            "response.reasoning_text.delta",
            {"item_id": item.id, "output_index": item.index, "content_index": 0, "delta": text},
        )

    def _tool(self, event: ToolCallDelta) -> bytes:
        item = self._tools.get(event.index)
        out = b""
        if item is None:
            if self._content is not None:
                out = self._close(self._content, "completed")
            call_id = event.id or f"call_{self._suffix}_{event.index}"
            item, added = self._add("function_call", "fc", call_id, event.name or "")
            self._tools[event.index] = item
            out += added
        if not event.arguments:
            return out
        item.pieces.append(event.arguments)
        return out + self._event(
            "response.function_call_arguments.delta",
            {"item_id": item.id, "output_index": item.index, "delta": event.arguments},
        )

    def _close(self, item: _Item, status: str) -> bytes:
        """The done events of one item; the finished item takes its place in the output."""
        if item is self._content:
            self._content = None
        text = item.text()
        where = {"item_id": item.id, "output_index": item.index}
        out: list[bytes] = []
        if item.kind == "message":
            out.append(
                self._event(
                    "response.output_text.done",
                    {**where, "content_index": 0, "text": text, "logprobs": []},
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    {**where, "content_index": 0, "part": output_text_part(text)},
                )
            )
        elif item.kind == "reasoning":
            out.append(
                self._event(
                    "response.reasoning_text.done", {**where, "content_index": 0, "text": text}
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    {**where, "content_index": 0, "part": {"type": "reasoning_text", "text": text}},
                )
            )
        else:
            out.append(
                self._event("response.function_call_arguments.done", {**where, "arguments": text})
            )
        done = item.as_dict(status)
        self._output[item.index] = done
        out.append(
            self._event("response.output_item.done", {"output_index": item.index, "item": done})
        )
        return b"".join(out)


class ResponsesAssembler:
    """The non-stream body: the same items and rules as the stream, built from the events."""

    def __init__(self, response_id: str, created: int, model: str, ctx: ResponsesContext) -> None:
        self._encoder = ResponsesStreamEncoder(response_id, created, model, ctx)
        self.error: UpstreamError | None = None

    def add(self, events: list[Event]) -> None:
        if self.error is not None:
            return
        for i, event in enumerate(events):
            if type(event) is UpstreamError:
                self._encoder.encode(events[:i])
                self.error = event
                return
        self._encoder.encode(events)

    def build(self) -> dict[str, Any]:
        self._encoder.end()
        assert self._encoder.response is not None
        return self._encoder.response
