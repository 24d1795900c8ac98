"""The contract between the simulator's engine and its per-protocol wire modules.

A wire module (`wire_openai`, `wire_anthropic`, `wire_gemini`, `wire_ollama`)
is pure: it parses a request body into a `WireRequest`, renders errors, and
renders a planned `Reply` as the exact bytes the real service sends. It never
sleeps, opens sockets or reads the clock (a wall clock is passed in where a
protocol stamps times on its chunks). The engine decides *when* each piece goes
out; the wire module decides *what* the bytes are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol

import orjson

from gateway.value_class import value_class

FinishKind = Literal["stop", "length", "tool_calls"]
ToolChoiceMode = Literal["auto", "none", "required", "named"]
WallClock = Callable[[], float]


@value_class
class ToolSpec:
    name: str
    schema: Mapping[str, Any]  # JSON schema of the arguments (may be empty)


@value_class
class ToolChoice:
    mode: ToolChoiceMode = "auto"
    name: str | None = None  # for mode "named"


@value_class
class WireRequest:
    """What the simulator needs to know about one parsed chat request."""

    model: str
    stream: bool
    max_tokens: int | None = None
    prompt_chars: int = 0
    last_user_text: str = ""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = ToolChoice()
    include_usage: bool = False  # OpenAI stream_options.include_usage
    obfuscation: bool = True  # OpenAI stream_options.include_obfuscation
    sse: bool = True  # Gemini streamGenerateContent: alt=sse, else a streamed JSON array
    # The start of the assistant's answer to continue (a trailing assistant message the
    # protocol continues: Anthropic prefill, `prefix: true`, `continue_final_message`).
    continue_from: str | None = None


@value_class
class ErrorReply:
    status: int
    body: bytes
    headers: Mapping[str, str]  # content-type included


@value_class
class ToolCall:
    id_seed: str  # random alphanumerics; each protocol formats its own id from it
    name: str
    arguments: Mapping[str, Any]
    arguments_json: str
    fragments: tuple[str, ...]  # arguments_json split for streaming


@value_class
class Reply:
    """The planned answer, independent of wire format."""

    id_seed: str  # random alphanumerics for response ids
    model: str  # the reported model string
    created: float  # unix time when the response started
    reasoning: tuple[str, ...]
    text: tuple[str, ...]
    tool_call: ToolCall | None
    finish: FinishKind
    named_tool: bool  # tool_choice named a function (OpenAI then finishes with "stop")
    prompt_tokens: int
    completion_tokens: int  # reasoning + text + tool call tokens

    @property
    def reasoning_tokens(self) -> int:
        return len(self.reasoning)


class StreamRenderer(Protocol):
    """Bytes of one response. Frames are rendered in call order: prelude, token(0..n-1),
    then exactly one of finish() or midstream_error()."""

    content_type: str  # of the streamed response
    body_content_type: str  # of the non-streaming response

    def prelude(self) -> bytes:
        """Non-token bytes sent before the first token (may be empty)."""
        ...

    def token_count(self) -> int: ...

    def token(self, i: int) -> bytes:
        """The frame(s) that carry token i, including any block transition before it."""
        ...

    def finish(self) -> bytes:
        """Finish reason, usage and the protocol's terminator."""
        ...

    def keepalive(self) -> bytes:
        """A keep-alive while waiting for the first token; empty if the protocol has none."""
        ...

    def midstream_error(self) -> bytes:
        """The protocol's in-stream error, and whatever must follow it."""
        ...

    def body(self) -> bytes:
        """The whole non-streaming JSON response."""
        ...

    def body_keepalive(self) -> bytes:
        """Filler sent ahead of a non-streaming body while waiting (empty: none)."""
        ...


class WireProtocol(Protocol):
    kind: str

    def check_auth(
        self, headers: Mapping[str, str], query: Mapping[str, str], request_id: str
    ) -> ErrorReply | None:
        """None when the provider's auth header is present (any key is accepted)."""
        ...

    def parse_request(
        self, body: bytes, target: str | None, query: Mapping[str, str], request_id: str
    ) -> WireRequest | ErrorReply:
        """Validate like the real provider; `target` is the URL path tail (Gemini)."""
        ...

    def error(
        self,
        status: int,
        *,
        model: str = "",
        message: str = "",
        retry_after_s: float = 0.0,
        request_id: str = "",
    ) -> ErrorReply:
        """The provider's exact error for `status` (400 uses `message`)."""
        ...

    def response_headers(self, request_id: str) -> dict[str, str]:
        """Headers the provider puts on every response (request ids ...), errors included."""
        ...

    def renderer(self, req: WireRequest, reply: Reply, clock: WallClock) -> StreamRenderer: ...

    def models_body(self, names: Iterable[str], created: float) -> bytes:
        """The provider's model-list response."""
        ...


# --- helpers shared by the wire modules -------------------------------------------

JSON_CT = "application/json"
SSE_CT = "text/event-stream; charset=utf-8"
_SKIP_KEYS = frozenset({"data", "url", "image_url", "images", "signature", "thoughtSignature"})


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def sse_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def load_object(body: bytes) -> dict[str, Any] | None:
    """The JSON object in `body`, or None if it is not valid JSON or not an object."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def text_chars(*objs: Any) -> int:
    """Characters of prompt text in messages/system/tools, skipping binary payloads."""
    total = 0
    stack = list(objs)
    while stack:
        obj = stack.pop()
        if isinstance(obj, str):
            total += len(obj)
        elif isinstance(obj, Mapping):
            stack.extend(v for k, v in obj.items() if k not in _SKIP_KEYS)
        elif isinstance(obj, list):
            stack.extend(obj)
    return total


def content_text(content: Any) -> str:
    """Text of a message content: a string or a list of parts with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def last_text_of_role(messages: Any, role: str, key: str = "content") -> str:
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, Mapping) and msg.get("role") == role:
            return content_text(msg.get(key))
    return ""


def trailing_assistant(messages: Any) -> Mapping[str, Any] | None:
    """The last message when it is the assistant's (a prefix to continue), else None."""
    if isinstance(messages, list) and messages:
        last = messages[-1]
        if isinstance(last, Mapping) and last.get("role") == "assistant":
            return last
    return None


def is_positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def retry_after_value(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


_WORD = re.compile(r"\s*\S+")


def split_text(text: str) -> tuple[str, ...]:
    """Split on spaces keeping them: 'Hi there ' -> ('Hi', ' there ')."""
    pieces = _WORD.findall(text)
    tail = text[sum(map(len, pieces)) :]
    if pieces and tail:
        pieces[-1] += tail
    return tuple(pieces)
