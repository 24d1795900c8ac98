"""The conformance matrix: one `AdapterCase` per provider kind, with *native* wire fixtures.

HOW TO ADD AN ADAPTER (anthropic, gemini, ollama native, ...)
-------------------------------------------------------------
1. Write a module next to this one (see `openai_wire.py`), e.g. `anthropic_wire.py`,
   that builds an `AdapterCase` for the kind:
   - `settings`/`target`: what `registry.create()` and `build_request()` get;
   - `request`: the expected request shape (URL, auth header, body subset);
   - `streams`: for EVERY name in `STREAM_SCENARIOS`, a `Stream` with the bytes
     the real provider sends (hand-written from ../shared/wire-formats.md or a
     recorded capture, never produced by our own encoders or simulators) and the
     normalized events expected from them. If the wire protocol cannot express
     a scenario, map it to None: the suite reports a skip, not a pass;
   - `response`: a non-streaming 2xx body and its events;
   - `errors`: an `HttpError` for at least every status in `ERROR_STATUSES`.
2. Add the module's name to `CASE_MODULES` at the bottom of this file.
3. Run `.venv/bin/pytest tests/conformance`.

Expected events are compared after `merge()` (consecutive text / reasoning
deltas joined, consecutive fragments of one tool call joined), so they do not
depend on how the provider chunks its output. An expected `UpstreamError` whose
message is "" matches any (non-empty) message. The suite also checks invariants
on the raw events of every stream (see test_conformance.py).
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.providers.base import ProviderSettings, TargetModel
from gateway.request import ChatRequest
from gateway.streaming.events import Event, ToolCallDelta, UpstreamError

STREAM_SCENARIOS: dict[str, str] = {
    "text": "plain text in several chunks, finish stop, the stream's terminator",
    "reasoning": "reasoning deltas, then text",
    "tool_call": "one tool call (arguments in fragments where the provider streams them)",
    "parallel_tool_calls": "two tool calls, index 0 and 1; finish tool_calls",
    "usage": "usage reported (prompt, completion, cached, reasoning where available)",
    "length": "finish reason length",
    "content_filter": "finish reason content_filter",
    "midstream_error": "text, then an in-stream error; nothing follows the error event",
    "truncated": "text, then the body ends without a finish or terminator",
    "prelude": "keep-alives / role / metadata before the first text; `first_token` required",
}

# Statuses every case must cover with `errors`, and the policy every adapter shares:
# status -> (retryable, opens_circuit). A fixture may override it in `expected`.
ERROR_POLICY: dict[int, tuple[bool, bool]] = {
    400: (False, False),
    401: (False, True),
    429: (True, True),
    500: (True, True),
    503: (True, True),
}
ERROR_STATUSES = tuple(ERROR_POLICY)

STANDARD_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Weather in Oslo?"},
]


def standard_request(**params: Any) -> ChatRequest:
    """The request `build_request` is checked with; `params` are added to (None: removed
    from) the defaults."""
    merged = {"temperature": 0.2, "max_tokens": 64, **params}
    return ChatRequest(
        model="chat",
        messages=[dict(m) for m in STANDARD_MESSAGES],
        stream=True,
        params={name: value for name, value in merged.items() if value is not None},
    )


def wire(text: str, newline: str = "\n", **subst: str) -> bytes:
    """Bytes from a dedented block of wire text; `$NAME` is replaced by `subst[NAME]`.

    Only for readability (a chunk header repeated on every line): the JSON is
    written by hand, like a capture.
    """
    body = textwrap.dedent(text).lstrip("\n")
    for name, value in subst.items():
        body = body.replace(f"${name}", value)
    return body.replace("\n", newline).encode()


def error(status: int, type: str, retryable: bool, message: str = "", **more: Any) -> UpstreamError:
    """An expected error event; message "" means any message."""
    return UpstreamError(status, type, message, retryable, **more)


def call(index: int, id: str | None, name: str | None, arguments: str) -> ToolCallDelta:
    """An expected tool call, after its fragments were merged."""
    return ToolCallDelta(index, id, name, arguments)


@dataclass(frozen=True)
class Stream:
    wire: bytes
    expected: list[Event]
    # Text of the first token event (required for "prelude"): it may only appear
    # once those bytes have been fed, and every event before it is not a token.
    first_token: str | None = None


@dataclass(frozen=True)
class HttpError:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    # UpstreamError fields to check, beyond the status policy (type, code, param,
    # message, retry_after_s, and retryable/opens_circuit to override the policy).
    expected: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestShape:
    url: str
    auth: tuple[str, str] | None  # (lower-case header name, exact value), None: no auth
    body: Mapping[str, Any]  # JSON body keys that must have these values
    absent: tuple[str, ...] = ()  # JSON body keys that must not be present
    passes_extra: bool = False  # unknown top-level request fields reach the body as-is
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case name -> value
    request: ChatRequest = field(default_factory=standard_request)


@dataclass(frozen=True)
class AdapterCase:
    id: str
    settings: ProviderSettings
    target: TargetModel
    request: RequestShape
    streams: Mapping[str, Stream | None]
    response: Stream
    errors: list[HttpError]

    @property
    def kind(self) -> str:
        return self.settings.kind


# One module per kind, each defining `CASE`. Add new kinds here.
CASE_MODULES = (
    "openai_wire",
    "deepseek_wire",
    "mistral_wire",
    "vllm_wire",
    "ollama_openai_wire",
    "anthropic_wire",
    "gemini_wire",
    "ollama_wire",
)


def load_cases() -> list[AdapterCase]:
    """The `CASE` of every module in CASE_MODULES."""
    return [importlib.import_module(f"{__package__}.{name}").CASE for name in CASE_MODULES]
