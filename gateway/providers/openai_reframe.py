"""The shortcut for plain text chunks of an OpenAI-shaped stream: no JSON parse in, none out.

Nearly every chunk of a streamed answer is the same bytes except for its text:
`{"id":…,"model":…,"choices":[{"index":0,"delta":{"content":"` + text + `"},…}`.
Once one such chunk has been fully parsed, its bytes up to the text (the *head*) are
remembered. A later chunk that starts with that exact head and ends in one of the
few known tails is a text delta whose JSON-escaped body is cut out as it is: it
becomes a `TextDelta` carrying that body (`raw`), which the encoder re-frames
without decoding or re-encoding it. Anything else takes the full parse, so the
shortcut can only ever produce what the parse would have.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from gateway.streaming.events import Event, ResponseMeta, TextDelta

# The escaped string body (no raw control characters, no unescaped quote), then what
# may follow the text of a plain text chunk: the end of the delta and the choice
# (logprobs null, no finish reason), and only null usage or OpenAI's padding field.
_TEXT_TAIL = re.compile(
    r'((?:[^"\\\x00-\x1f]|\\.)*)"\},(?:"logprobs":null,)?"finish_reason":null\}\]'
    r'(?:,"usage":null)?(?:,"obfuscation":"[A-Za-z0-9+/=_-]*")?\}'
)
_DELTA = '"delta":{'
_CONTENT = '"content":"'
_CHOICE_KEYS = frozenset(("index", "delta", "logprobs", "finish_reason"))


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
    """Learns the head of a stream's plain text chunks and cuts the text out of later ones."""

    __slots__ = ("_head",)

    def __init__(self) -> None:
        self._head: str | None = None

    def match(self, data: str) -> TextDelta | bool:
        """A TextDelta for a plain text chunk, True for one with empty text (no event),
        False when the chunk needs the full parse."""
        head = self._head
        if head is None or not data.startswith(head):
            return False
        found = _TEXT_TAIL.fullmatch(data, len(head))
        if found is None:
            return False
        body = found.group(1)
        if not body:
            return True
        return text_delta(body) or False

    def learn(self, data: str, chunk: dict[str, Any], events: list[Event]) -> None:
        """Remember the head of `data` if the parsed `chunk` is a plain text chunk whose
        only events (`events`, what the full parse made of it) the shortcut reproduces."""
        if self._head is not None or not _plain_text(chunk):
            return
        texts = [event for event in events if type(event) is TextDelta]
        if len(texts) != 1 or any(type(e) not in (TextDelta, ResponseMeta) for e in events):
            return
        start = data.find(_DELTA)
        at = data.find(_CONTENT, start) if start >= 0 else -1
        if at < 0:
            return
        head = data[: at + len(_CONTENT)]
        found = _TEXT_TAIL.fullmatch(data, len(head))
        if found is None:
            return
        event = text_delta(found.group(1))
        if event is not None and event.text == texts[0].text:
            self._head = head


def _plain_text(chunk: dict[str, Any]) -> bool:
    """One choice whose delta is only text (and the assistant role), no finish, no usage."""
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
    if choice.get("logprobs") is not None:
        return False
    delta = choice.get("delta")
    if not isinstance(delta, dict) or not isinstance(delta.get("content"), str):
        return False
    return all(
        key == "content" or (key == "role" and value == "assistant") for key, value in delta.items()
    )
