"""Incremental, sans-I/O Server-Sent Events decoder (WHATWG HTML, "Event stream
interpretation").

Two layers, as in httpx-sse: `LineSplitter` cuts bytes into lines (LF, CR or
CRLF, also across chunk boundaries), and `SSEDecoder` builds events from lines.
UTF-8 is decoded per line, after splitting, with ``errors="replace"``.

Spec behaviour kept here:
- one UTF-8 BOM is stripped at the very start of the stream only;
- lines starting with ``:`` are comments (ignored, counted in `comments_seen`);
- ``field:value`` drops one optional space after the colon; a line without a
  colon is a field name with an empty value; unknown fields are ignored;
- ``data`` lines are joined with ``"\\n"``; a blank line dispatches the event
  only if at least one ``data`` line was seen (so ``event: ping`` followed by a
  blank line dispatches nothing), and resets the event name either way;
- ``id`` is ignored if it contains NUL; otherwise it becomes the last event id,
  which persists across events (``None`` until the first ``id`` field);
- ``retry`` is honoured only if it is all ASCII digits (and at most 18 significant
  digits: an absurd value is ignored rather than converted);
- at EOF an event without its closing blank line is discarded, unless
  ``close(flush_incomplete=True)`` is used (some upstreams, e.g. Gemini, end
  the body right after the last ``data:`` line).
"""

from __future__ import annotations

from gateway.streaming.lines import LineSplitter, LineTooLong
from gateway.value_class import value_class

__all__ = ["EventTooLarge", "LineTooLong", "SSEDecoder", "SSEEvent"]

_BOM = b"\xef\xbb\xbf"
_COLON = 0x3A
_SPACE = 0x20
_MAX_RETRY_DIGITS = 18  # past this a `retry` value (ms) is absurd; int() of 4300+ digits raises


class EventTooLarge(ValueError):
    """The data of one event is longer than `max_event_bytes`."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"SSE event too large: {size} bytes of data exceeds max_event_bytes={limit}"
        )
        self.size = size
        self.limit = limit


@value_class
class SSEEvent:
    """One dispatched event.

    `event` is the ``event:`` field, or ``""`` if the event had none (the spec's
    default type "message" is left to the caller). `id` is the stream's last
    event id at dispatch time (``None`` if no ``id`` field has been seen yet).
    `retry` is the valid ``retry`` value given inside this event, if any.
    """

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes, get `SSEEvent`s. No I/O, no asyncio."""

    __slots__ = (
        "_at_start",
        "_data",
        "_data_bytes",
        "_event",
        "_lines",
        "_retry",
        "comments_seen",
        "last_event_id",
        "max_event_bytes",
        "reconnection_time",
    )

    def __init__(self, max_line_bytes: int = 1 << 20, max_event_bytes: int = 4 << 20) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be >= 1, got {max_event_bytes}")
        self._lines = LineSplitter(max_line_bytes)
        self.max_event_bytes = max_event_bytes
        self._at_start = True
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0
        self._retry: int | None = None
        self.comments_seen = 0
        self.last_event_id: str | None = None
        self.reconnection_time: int | None = None  # last valid ``retry`` (ms)

    @property
    def between_events(self) -> bool:
        """Nothing buffered: no partial line, no event field or data line pending."""
        return not self._data and not self._event and self._lines.idle

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Buffer `data` and return the events it completes."""
        return self._process(self._lines.feed(data))

    def feed_data(self, data: bytes) -> list[str]:
        """Like `feed`, but only the events' data: for callers that ignore event names,
        ids and retry (OpenAI-shaped streams).

        The common case, whole `data: …` events that each fit one line and end in one
        read, is cut with two C-level splits instead of going line by line.
        """
        if (
            data.startswith(b"data: ")
            and data.endswith(b"\n\n")
            and not self._data
            and not self._event
            and self._lines.idle
            and data.find(b"\r") < 0  # find, not `in` (which raises inside, on bytes)
            and len(data) <= self._lines.max_line_bytes
        ):
            body = data[6:-2]
            if body.find(b"\n") < 0:  # one event (the usual read): no split, no scan per part
                self._at_start = False
                if len(body) > self.max_event_bytes:
                    raise EventTooLarge(len(body), self.max_event_bytes)
                return [body.decode("utf-8", "replace")]
            parts = data[:-2].split(b"\n\n")
            if all(part.startswith(b"data: ") and part.find(b"\n") < 0 for part in parts):
                self._at_start = False
                if len(data) > self.max_event_bytes:
                    longest = max(len(part) - 6 for part in parts)
                    if longest > self.max_event_bytes:
                        raise EventTooLarge(longest, self.max_event_bytes)
                return [part[6:].decode("utf-8", "replace") for part in parts]
        return [event.data for event in self.feed(data)]

    def close(self, flush_incomplete: bool = False) -> list[SSEEvent]:
        """End the stream.

        By default (spec behaviour) an event that was not ended by a blank line
        is discarded, including an unterminated last line. With
        `flush_incomplete=True` the unterminated last line is processed and a
        pending event with data is dispatched as if a blank line had followed.
        """
        tail = self._lines.close()
        events: list[SSEEvent] = []
        if flush_incomplete:
            events = self._process(tail)
            if self._data:
                events.append(self._dispatch())
        self._reset_event()
        return events

    def _reset_event(self) -> None:
        self._event = ""
        self._data = []
        self._data_bytes = 0
        self._retry = None

    def _dispatch(self) -> SSEEvent:
        event = SSEEvent(self._event, "\n".join(self._data), self.last_event_id, self._retry)
        self._reset_event()
        return event

    def _process(self, lines: list[bytes]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not lines:
            return events
        if self._at_start:
            self._at_start = False
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        for line in lines:
            if not line:  # blank line: dispatch (only if there is data)
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._reset_event()
                continue
            colon = line.find(b":")
            if colon == 0:
                self.comments_seen += 1
                continue
            if colon < 0:
                field, value = line, b""
            else:
                field = line[:colon]
                start = colon + 1
                if start < len(line) and line[start] == _SPACE:
                    start += 1
                value = line[start:]
            if field == b"data":
                size = self._data_bytes + len(value) + (1 if self._data else 0)
                if size > self.max_event_bytes:
                    raise EventTooLarge(size, self.max_event_bytes)
                self._data.append(value.decode("utf-8", "replace"))
                self._data_bytes = size
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
            elif field == b"id":
                if b"\x00" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
            elif field == b"retry":
                if value.isdigit():  # bytes.isdigit: ASCII digits only, non-empty
                    digits = value.lstrip(b"0") or b"0"
                    if len(digits) <= _MAX_RETRY_DIGITS:
                        self._retry = self.reconnection_time = int(digits)
        return events
