"""The shortcut for plain text chunks of an OpenAI-shaped stream: no JSON parse in, none out.

Nearly every chunk of a streamed answer is the same bytes up to its delta object:
`{"id":…,"model":…,"choices":[{"index":0,"delta":{` (the *head*), then
`"content":"` + text + `"},"logprobs":null,"finish_reason":null}]}`. Once one
chunk has been fully parsed, its head is remembered (usually from the role chunk, so
that even the first token skips the parse). A later chunk that starts with that
exact head, holds only text in its delta and ends in one of the few known tails is
cut with a regular expression: it becomes a `TextDelta` carrying its JSON-escaped
body (`raw`), which the encoder re-frames without decoding or re-encoding it.
Anything else takes the full parse, so the shortcut only ever produces what the
parse would have.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.streaming.adapter import RelaySpec
from gateway.streaming.events import Event, ResponseMeta, TextDelta

# After the head: the text (an optional assistant role first), as an escaped string body
# (no raw control characters, no unescaped quote); then the end of the delta and of
# the choice (logprobs null, no finish reason), and only null usage or OpenAI's
# padding field after the choices. The body is runs of plain characters between escapes
# ("unrolled": a run is taken whole, not one character per alternation; the same
# strings as `(?:[^"\\\x00-\x1f]|\\.)*`, in half to a seventh of the time).
_TEXT_CHUNK = re.compile(
    r'(?:"role":"assistant",)?"content":"([^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*)"\},'
    r'(?:"logprobs":null,)?"finish_reason":null\}\]'
    r'(?:,"usage":null)?(?:,"obfuscation":"[A-Za-z0-9+/=_-]*")?\}'
)
# The same, as the bytes after the head of a whole SSE event (the fast relay's view).
TEXT_EVENT = re.compile(_TEXT_CHUNK.pattern.encode() + b"\n\n")
_DELTA = '"delta":{'
_PROBE = '"content":"x"},"finish_reason":null}]}'  # closes a head into a whole chunk
_CHOICE_KEYS = frozenset(("index", "delta", "logprobs", "finish_reason"))


def relay_spec(head: str | None, max_event_bytes: int) -> RelaySpec | None:
    """A plain text SSE event as bytes: `data: ` + the head + what `TEXT_EVENT` matches
    (the relay leaves `data:` without its space, CRLF endings and the rest to the decoder)."""
    if head is None:
        return None
    return RelaySpec(b"data: " + head.encode(), TEXT_EVENT, max_event_bytes)


def text_delta(body: str) -> TextDelta | None:
    """A TextDelta for a JSON-escaped string body; None if the body is not valid JSON."""
    if "\\" not in body:
        return TextDelta(body, body)
    try:
        text = orjson.loads('"' + body + '"')
    except orjson.JSONDecodeError:
        return None
    return TextDelta(text, body)


class TextChunkShortcut:
    """Learns the head of a stream's chunks and cuts the text out of plain text chunks."""

    __slots__ = ("_head", "_probes_left")

    @property
    def head(self) -> str | None:
        """The learned head, once a chunk has taught it."""
        return self._head

    def __init__(self) -> None:
        self._head: str | None = None
        self._probes_left = 4  # a stream whose heads never close into a chunk stops paying

    def match(self, data: str) -> TextDelta | bool:
        """A TextDelta for a plain text chunk, True for one with empty text (no event),
        False when the chunk needs the full parse."""
        head = self._head
        if head is None or not data.startswith(head):
            return False
        found = _TEXT_CHUNK.fullmatch(data, len(head))
        if found is None:
            return False
        body = found.group(1)
        if not body:
            return True
        return text_delta(body) or False

    def learn(self, data: str, chunk: dict[str, Any], events: list[Event]) -> None:
        """Remember the head of `data`, the raw text of the parsed `chunk`, if a plain text
        chunk with the same head would parse to just its text.

        `events` is what the full parse made of the chunk: a head that carried an error,
        usage or a finish reason would carry it again, so such a chunk teaches nothing.
        """
        if self._head is not None or not _one_open_choice(chunk):
            return
        if any(type(event) not in _QUIET for event in events):
            return
        at = data.find(_DELTA)
        if at < 0:
            return
        head = data[: at + len(_DELTA)]
        if self._probes_left <= 0:
            return
        self._probes_left -= 1
        # The head must close into exactly one plain text chunk with the same top level.
        try:
            probe = orjson.loads(head + _PROBE)
        except orjson.JSONDecodeError:
            return
        if not isinstance(probe, dict) or not _one_open_choice(probe):
            return
        if probe["choices"][0]["delta"] != {"content": "x"}:
            return
        if any(
            key not in chunk or chunk[key] != value
            for key, value in probe.items()
            if key != "choices"
        ):
            return
        self._head = head


_QUIET = (ResponseMeta, TextDelta)  # what a head may have produced (meta: once per stream)


def _one_open_choice(chunk: dict[str, Any]) -> bool:
    """One choice, at index 0, with a delta object, no finish reason, no logprobs, no usage."""
    if chunk.get("usage") is not None or "error" in chunk:
        return False
    choices = chunk.get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        return False
    choice = choices[0]
    if not isinstance(choice, dict) or not _CHOICE_KEYS.issuperset(choice):
        return False
    if choice.get("index") != 0 or choice.get("finish_reason") is not None:
        return False
    return choice.get("logprobs") is None and isinstance(choice.get("delta"), dict)
