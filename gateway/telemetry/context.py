"""W3C trace context for one request: what the client sent, the ids the gateway gives the
request's span and each attempt's span, and the `traceparent` each upstream gets.

Ids are chosen when the request is planned, so that an attempt's upstream request can name
the attempt's span as its parent before the span exists; the spans themselves are built
from the record when the request closes (`telemetry.spans`). Nothing here imports
OpenTelemetry, and nothing runs per chunk.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from gateway.config.model import TracesConfig
from gateway.request import AnyRequest, ChatRequest
from gateway.streaming.adapter import OneShotCall, UpstreamRequest
from gateway.streaming.events import Event, TextDelta
from gateway.value_class import value_class

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_TRACESTATE_CHARS = 512  # the W3C limit a vendor must propagate
MAX_TRACESTATE_MEMBERS = 32
_HEX = frozenset("0123456789abcdef")
_TRACE_ID_LIMIT = 1 << 64  # ratio sampling reads the trace id's low 64 bits, as OTel does
# gen_ai.request.* attributes taken from the request's parameters
REQUEST_PARAMS = (
    "temperature",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "n",
)


@value_class
class Parent:
    """A valid `traceparent` from the client."""

    trace_id: str  # 32 lowercase hex digits
    span_id: str  # 16 lowercase hex digits
    sampled: bool


def _hex_id(value: str, length: int) -> bool:
    return len(value) == length and set(value) <= _HEX and value.strip("0") != ""


def parse_traceparent(value: str | None) -> Parent | None:
    """The W3C `traceparent` header, or None when absent or invalid (then the gateway starts
    a new trace and ignores `tracestate`, as the recommendation says)."""
    if not value:
        return None
    value = value.strip()
    parts = value.split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[:4]
    if len(version) != 2 or not set(version) <= _HEX or version == "ff":
        return None
    if version == "00" and len(parts) != 4:
        return None  # version 00 has exactly four fields; later versions may add more
    if not _hex_id(trace_id, 32) or not _hex_id(span_id, 16):
        return None
    if len(flags) != 2 or not set(flags) <= _HEX:
        return None
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1))


def clean_tracestate(value: str | None) -> str | None:
    """The client's `tracestate`, passed on as it came when it is within the W3C bounds."""
    if not value:
        return None
    value = value.strip()
    if (
        not value
        or len(value) > MAX_TRACESTATE_CHARS
        or value.count(",") >= MAX_TRACESTATE_MEMBERS
        or not value.isprintable()
        or not value.isascii()
    ):
        return None
    return value


@dataclass(slots=True)
class TraceContext:
    trace_id: str
    span_id: str  # the gateway's span for this request
    parent_span_id: str | None  # the client's span; None when the gateway started the trace
    sampled: bool
    tracestate: str | None = None
    started_unix: float = 0.0  # wall clock of the request's arrival
    attempt_span_ids: dict[str, str] = field(default_factory=dict)  # deployment -> span id
    params: dict[str, Any] = field(default_factory=dict)  # for gen_ai.request.* attributes
    input_messages: str | None = None  # JSON, only with `include_content`
    output: list[str] | None = None  # the answer's text, only with `include_content`
    output_room: int = 0  # characters of answer text still kept

    @property
    def flags(self) -> str:
        return "01" if self.sampled else "00"

    def upstream_headers(self, span_id: str) -> dict[str, str]:
        headers = {TRACEPARENT: f"00-{self.trace_id}-{span_id}-{self.flags}"}
        if self.tracestate is not None:
            headers[TRACESTATE] = self.tracestate
        return headers

    def collect(self, events: list[Event]) -> None:
        """Keep the answer's text as the client gets it (only with `include_content`)."""
        output = self.output
        if output is None or self.output_room <= 0:
            return
        for event in events:
            if type(event) is TextDelta:
                text = event.text[: self.output_room]
                output.append(text)
                self.output_room -= len(text)
                if self.output_room <= 0:
                    return


class Tracing:
    """Starts each request's trace context (only when `telemetry.traces.enabled`)."""

    def __init__(self, config: TracesConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        self._bound = round(config.sample_ratio * _TRACE_ID_LIMIT)

    def new_id(self, bits: int = 64) -> str:
        value = 0
        while value == 0:  # an all-zero id is invalid
            value = self._rng.getrandbits(bits)
        return f"{value:0{bits // 4}x}"

    def start(self, headers: Mapping[str, str], started: float) -> TraceContext:
        """The request's context: a child of the client's `traceparent` when it sent a valid
        one, else a new trace. `started` is the request's `time.perf_counter()`."""
        parent = parse_traceparent(headers.get(TRACEPARENT))
        if parent is not None:
            trace_id = parent.trace_id
            sampled = parent.sampled if self.config.parent_based else self._ratio(trace_id)
        else:
            trace_id = self.new_id(128)
            sampled = self._ratio(trace_id)
        return TraceContext(
            trace_id=trace_id,
            span_id=self.new_id(),
            parent_span_id=parent.span_id if parent is not None else None,
            sampled=sampled,
            tracestate=clean_tracestate(headers.get(TRACESTATE)) if parent else None,
            started_unix=time.time() - (time.perf_counter() - started),
        )

    def _ratio(self, trace_id: str) -> bool:
        return int(trace_id[16:], 16) < self._bound

    def note_request(self, ctx: TraceContext, request: AnyRequest) -> None:
        """The request's parameters, and its messages when the config opts in."""
        if not isinstance(request, ChatRequest):
            return
        params = request.params
        ctx.params = {name: params[name] for name in REQUEST_PARAMS if name in params}
        if request.max_tokens is not None:
            ctx.params["max_tokens"] = request.max_tokens
        stop = request.stop
        if stop:
            ctx.params["stop"] = stop
        if self.config.include_content and ctx.sampled:
            ctx.input_messages = input_messages(request.messages, self.config.max_content_chars)
            ctx.output = []
            ctx.output_room = self.config.max_content_chars

    def add_headers(
        self, ctx: TraceContext, requests: dict[str, UpstreamRequest | OneShotCall]
    ) -> None:
        """Give each candidate its attempt's span id and its upstream request(s) the
        `traceparent` naming that span (a candidate starts at most once per request)."""
        for name, request in requests.items():
            span_id = ctx.attempt_span_ids[name] = self.new_id()
            headers = ctx.upstream_headers(span_id)
            if type(request) is OneShotCall:
                parts = tuple(_with_headers(r, headers) for r in request.requests)
                requests[name] = replace(request, requests=parts)
            else:
                assert type(request) is UpstreamRequest
                requests[name] = _with_headers(request, headers)


def _with_headers(request: UpstreamRequest, headers: dict[str, str]) -> UpstreamRequest:
    return replace(request, headers={**request.headers, **headers})


def input_messages(messages: list[dict[str, Any]], max_chars: int) -> str:
    """The chat messages in the GenAI conventions' shape (role + parts), as JSON, with at
    most `max_chars` characters of content in all."""
    budget = max_chars
    out: list[dict[str, Any]] = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        content = message.get("content")
        texts = [content] if isinstance(content, str) else []
        if isinstance(content, list):
            texts = [
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
        for text in texts:
            if budget <= 0:
                break
            parts.append({"type": "text", "content": text[:budget]})
            budget -= len(text)
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                raw = function.get("arguments")
                arguments = raw[: max(budget, 0)] if isinstance(raw, str) else None
                budget -= len(arguments or "")
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": arguments,
                    }
                )
        role = message.get("role")
        if role == "tool":
            response = parts[0]["content"] if parts else None
            parts = [{"type": "tool_call_response", "id": message.get("tool_call_id")}]
            parts[0]["response"] = response
        out.append({"role": role, "parts": parts})
    return orjson.dumps(out).decode()
