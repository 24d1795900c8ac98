"""Events -> OpenAI Chat Completions output: SSE chunks (streaming) or one JSON body.

The SSE encoder renders the constant part of every chunk once per request (in `ready()`,
while the upstream is silent), so a text chunk costs one orjson.dumps of its delta and a
few bytes joins; text cut from an OpenAI-shaped upstream chunk (`TextDelta.raw`) is not
even re-encoded.
"""

from __future__ import annotations

from typing import Any

import orjson

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

DONE = b"data: [DONE]\n\n"
HEARTBEAT = b": keep-alive\n\n"


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }


def error_body(error: UpstreamError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


class TextFrame:
    """How an encoder frames a run of JSON-escaped text: `head + text + tail` (the fast
    relay, `streaming/relay.py`, writes text this way without the encoder)."""

    __slots__ = ("head", "tail")

    def __init__(self, head: bytes, tail: bytes) -> None:
        self.head = head
        self.tail = tail

    def frame(self, bodies: list[bytes]) -> bytes:
        body = bodies[0] if len(bodies) == 1 else b"".join(bodies)
        return self.head + body + self.tail


class ChunkEncoder:
    """Turns event batches into `data: {chat.completion.chunk}\\n\\n` bytes for one response."""

    __slots__ = (
        "_finished",
        "_head",
        "_ident",
        "_include_usage",
        "_role",
        "_role_sent",
        "_seen_tools",
        "_tail",
        "_tail_open",
        "_text_head",
        "_text_tail",
        "_usage",
        "_usage_head",
        "tool_call_prefix",
    )

    def __init__(self, response_id: str, created: int, model: str, include_usage: bool) -> None:
        self._ident = (response_id, created, model)  # rendered into the heads by ready()
        self._include_usage = include_usage
        self._role = b""  # the role chunk, once readied
        self._role_sent = False
        self._finished = False
        self._seen_tools: set[int] = set()
        self._usage: Usage | None = None
        self.tool_call_prefix = "call_" + response_id[-12:]

    def text_frame(self) -> TextFrame | None:
        """How this encoder frames a run of already escaped text (for the fast relay,
        once the role chunk has gone out)."""
        return TextFrame(self._text_head, self._text_tail) if self._role_sent else None

    def _chunk(self, delta: dict[str, Any]) -> bytes:
        return self._head + orjson.dumps(delta) + self._tail

    def ready(self) -> None:
        """Render the constant parts of every chunk and the role chunk now, while the
        upstream is silent: not on the request's way upstream, nor with the first token.
        Whatever writes a chunk comes after it (`start`)."""
        if self._role:
            return
        response_id, created, model = self._ident
        ident = orjson.dumps(
            {"id": response_id, "object": "chat.completion.chunk", "created": created}
        )[:-1]
        prefix = b"data: " + ident + b',"model":' + orjson.dumps(model)
        prefix += b',"system_fingerprint":null,'
        self._head = prefix + b'"choices":[{"index":0,"delta":'
        usage_tail = b',"usage":null' if self._include_usage else b""
        self._tail = b',"logprobs":null,"finish_reason":null}]' + usage_tail + b"}\n\n"
        self._tail_open = b',"logprobs":null,"finish_reason":'
        self._text_head = self._head + b'{"content":"'  # around an already escaped body
        self._text_tail = b'"}' + self._tail
        self._usage_head = prefix + b'"choices":[],"usage":'
        self._role = self._chunk({"role": "assistant", "content": "", "refusal": None})

    def start(self) -> bytes:
        """The role chunk, sent once when the winner is known."""
        if self._role_sent:
            return b""
        self._role_sent = True
        self.ready()
        return self._role

    def encode(self, events: list[Event]) -> bytes:
        """One batch of events (as they arrived together) -> bytes for one write."""
        if len(events) == 1 and self._role_sent:  # the usual batch: one re-framed text chunk
            event = events[0]
            if type(event) is TextDelta and event.raw is not None:
                return self._text_head + event.raw.encode() + self._text_tail
        out: list[bytes] = []
        if not self._role_sent:
            out.append(self.start())
        text: list[TextDelta] = []  # consecutive text deltas in one batch become one chunk
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                text.append(event)  # type: ignore[arg-type]
                continue
            if text:
                out.append(self._text(text))
                text = []
            if kind is ReasoningDelta:
                out.append(self._chunk({"reasoning_content": event.text}))  # type: ignore[union-attr]
            elif kind is ToolCallDelta:
                out.append(self._chunk({"tool_calls": [self._tool_delta(event)]}))  # type: ignore[arg-type]
            elif kind is Finish:
                out.append(self._finish(event.reason))  # type: ignore[union-attr]
            elif kind is Usage:
                self._usage = event  # type: ignore[assignment]
            elif kind is UpstreamError:
                out.append(self.error(event))  # type: ignore[arg-type]
                return b"".join(out)
        if text:
            out.append(self._text(text))
        return b"".join(out)

    def _text(self, run: list[TextDelta]) -> bytes:
        """One chunk for consecutive text deltas; bodies cut from OpenAI-shaped upstream
        chunks are already JSON-escaped, so they are framed as they are."""
        raws = [event.raw for event in run]
        if None in raws:
            return self._chunk({"content": "".join(event.text for event in run)})
        body = raws[0] if len(raws) == 1 else "".join(raws)  # type: ignore[arg-type]
        return self._text_head + body.encode() + self._text_tail  # type: ignore[union-attr]

    def _tool_delta(self, event: ToolCallDelta) -> dict[str, Any]:
        if event.index in self._seen_tools:
            return {"index": event.index, "function": {"arguments": event.arguments}}
        self._seen_tools.add(event.index)
        call_id = event.id or f"{self.tool_call_prefix}_{event.index}"
        return {
            "index": event.index,
            "id": call_id,
            "type": "function",
            "function": {"name": event.name or "", "arguments": event.arguments},
        }

    def _finish(self, reason: str) -> bytes:
        if self._finished:
            return b""
        self._finished = True
        tail = self._tail_open + orjson.dumps(reason) + b"}]"
        if self._include_usage:
            tail += b',"usage":null'
        return self._head + b"{}" + tail + b"}\n\n"

    def end(self) -> bytes:
        """Normal end of stream: finish chunk if the upstream sent none, usage, [DONE]."""
        out = [self.start()] if not self._role_sent else []
        if not self._finished:
            out.append(self._finish("tool_calls" if self._seen_tools else "stop"))
        if self._include_usage:
            usage = self._usage or Usage()
            out.append(self._usage_head + orjson.dumps(usage_dict(usage)) + b"}\n\n")
        out.append(DONE)
        return b"".join(out)

    def heartbeat(self) -> bytes:
        return HEARTBEAT

    def error(self, error: UpstreamError) -> bytes:
        """In-stream error after the stream started: error chunk then [DONE]."""
        self._finished = True
        return b"data: " + orjson.dumps(error_body(error)) + b"\n\n" + DONE


class ResponseAssembler:
    """Collects a winner's events into one `chat.completion` JSON object."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tools: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: Usage | None = None
        self.meta: ResponseMeta | None = None
        self.error: UpstreamError | None = None

    def add(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, TextDelta):
                self.text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                self.reasoning.append(event.text)
            elif isinstance(event, ToolCallDelta):
                call = self.tools.setdefault(event.index, {"id": None, "name": "", "args": []})
                if event.id and not call["id"]:
                    call["id"] = event.id
                if event.name and not call["name"]:
                    call["name"] = event.name
                call["args"].append(event.arguments)
            elif isinstance(event, Finish):
                self.finish = event.reason
            elif isinstance(event, Usage):
                self.usage = event
            elif isinstance(event, ResponseMeta):
                self.meta = event
            elif isinstance(event, UpstreamError) and self.error is None:
                self.error = event

    def build(self, response_id: str, created: int, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.text) if self.text or not self.tools else None,
            "refusal": None,
        }
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.tools:
            message["tool_calls"] = [
                {
                    "id": call["id"] or f"call_{response_id[-12:]}_{index}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": "".join(call["args"])},
                }
                for index, call in sorted(self.tools.items())
            ]
        finish = self.finish or ("tool_calls" if self.tools else "stop")
        body: dict[str, Any] = {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
        }
        if self.usage is not None:
            body["usage"] = usage_dict(self.usage)
        return body
