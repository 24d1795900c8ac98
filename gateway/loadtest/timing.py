"""Sans-I/O timing of one OpenAI chat-completion SSE stream.

The I/O layer reads the response body and calls ``feed(data, t)`` with the
bytes of each socket read and the `time.perf_counter()` taken right when they
arrived; `StreamTimer` decodes them with the gateway's own `SSEDecoder` and
records, per chunk, whether it carried a token. It never reads the clock
itself, so the unit tests drive it with scripted bytes and times.

A token chunk is one whose delta has non-empty ``content``, ``reasoning_content``
(or ``reasoning``) or ``tool_calls`` (the same rule the gateway's race uses).
Role-only, empty, finish-only and usage-only chunks and ``:`` comments are not
tokens. Several chunks in one read share that read's time: the client could not
have seen them apart, so their gaps count as 0 ms.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from gateway.streaming.sse import EventTooLarge, LineTooLong, SSEDecoder

DONE = "[DONE]"
Door = Literal["chat", "responses", "messages"]

# Responses API events that carry output, and the ones that end a stream well or badly.
_RESPONSES_OUTPUT = frozenset(
    {
        "response.output_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
        "response.refusal.delta",
    }
)
_RESPONSES_DONE = frozenset({"response.completed", "response.incomplete"})
_MESSAGES_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking"}


def output_size(chunk: Any) -> int:
    """Characters of user-visible output in a `chat.completion.chunk` (0: not a token).

    Content, reasoning and tool-call name + arguments count; a tool-call delta
    with neither (only an id) still counts as 1.
    """
    if not isinstance(chunk, dict):
        return 0
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return 0
    size = 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for key in ("content", "reasoning_content", "reasoning"):
            text = delta.get(key)
            if isinstance(text, str):
                size += len(text)
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls:
            size += max(sum(_call_size(call) for call in calls), 1)
    return size


def _call_size(call: Any) -> int:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return 0
    name, args = function.get("name"), function.get("arguments")
    return (len(name) if isinstance(name, str) else 0) + (len(args) if isinstance(args, str) else 0)


def responses_output_size(event: dict[str, Any]) -> int:
    """Characters of output in a Responses API stream event (0: not a token)."""
    if event.get("type") not in _RESPONSES_OUTPUT:
        return 0
    delta = event.get("delta")
    return max(len(delta), 1) if isinstance(delta, str) else 0


def messages_output_size(event: dict[str, Any]) -> int:
    """Characters of output in an Anthropic Messages stream event (0: not a token)."""
    if event.get("type") != "content_block_delta":
        return 0
    delta = event.get("delta")
    if not isinstance(delta, dict):
        return 0
    kind = delta.get("type")
    if kind == "input_json_delta":
        part = delta.get("partial_json")
        return max(len(part), 1) if isinstance(part, str) else 0
    text = delta.get(_MESSAGES_DELTA_FIELDS.get(kind, ""))  # type: ignore[arg-type]
    return len(text) if isinstance(text, str) else 0


def is_token_chunk(chunk: Any) -> bool:
    """True if a `chat.completion.chunk` carries user-visible output."""
    return output_size(chunk) > 0


class StreamTimer:
    """Feed body bytes with their arrival times; read TTFT, gaps and errors off it.

    Times are whatever clock the caller uses (seconds); `start` is the moment the
    request counts as started.
    """

    __slots__ = (
        "_decoder",
        "chars",
        "done",
        "door",
        "error",
        "error_detail",
        "events",
        "first_token_at",
        "gaps",
        "last_token_at",
        "start",
        "tokens",
    )

    def __init__(self, start: float, max_line_bytes: int = 1 << 20, door: Door = "chat") -> None:
        self.start = start
        self.door = door
        self._decoder = SSEDecoder(max_line_bytes=max_line_bytes, max_event_bytes=max_line_bytes)
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.gaps: list[float] = []
        self.tokens = 0
        self.chars = 0  # characters of output (content, reasoning, tool calls)
        self.events = 0
        self.done = False  # saw `data: [DONE]`
        self.error: str | None = None  # "stream_error" once the stream is known bad
        self.error_detail: str | None = None

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.start

    def feed(self, data: bytes, t: float) -> None:
        """Bytes of one read that arrived at time `t`."""
        if self.error is not None:
            return
        try:
            events = self._decoder.feed(data)
        except (LineTooLong, EventTooLarge) as exc:
            self._fail(str(exc))
            return
        for event in events:
            payload = event.data
            if payload == DONE:
                self.done = True
                continue
            self.events += 1
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self._fail("a data event is not JSON")
                return
            if self.door != "chat":
                if not self._door_event(chunk, t):
                    return
                continue
            if isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices"):
                self._fail(_error_message(chunk["error"]))
                return
            size = output_size(chunk)
            if size:
                self.chars += size
                self._token(t)

    def _door_event(self, event: Any, t: float) -> bool:
        """One Responses or Messages event; False once the stream failed."""
        if not isinstance(event, dict):
            self._fail("a data event is not a JSON object")
            return False
        kind = event.get("type")
        if kind in ("error", "response.failed"):
            error = event.get("error") or (event.get("response") or {}).get("error")
            self._fail(_error_message(error if error is not None else event))
            return False
        if kind in _RESPONSES_DONE or kind == "message_stop":
            self.done = True
            return True
        if self.door == "responses":
            size = responses_output_size(event)
        else:
            size = messages_output_size(event)
        if size:
            self.chars += size
            self._token(t)
        return True

    def _token(self, t: float) -> None:
        self.tokens += 1
        if self.first_token_at is None:
            self.first_token_at = t
        else:
            assert self.last_token_at is not None
            self.gaps.append(t - self.last_token_at)
        self.last_token_at = t

    def close(self) -> None:
        """End of body: a stream that ended without `[DONE]` (and without an error) failed."""
        if self.error is None:
            try:
                self._decoder.close()
            except (LineTooLong, EventTooLarge) as exc:  # pragma: no cover - close does not raise
                self._fail(str(exc))
                return
            if not self.done:
                end = {"chat": "data: [DONE]", "responses": "response.completed"}
                self._fail(f"stream ended without {end.get(self.door, 'message_stop')}")

    def _fail(self, detail: str) -> None:
        self.error = "stream_error"
        self.error_detail = detail[:200]


def _error_message(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str):
            return "in-stream error: " + message
    return "in-stream error"
