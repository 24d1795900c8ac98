"""Redaction with stable placeholders, and restoring them in the answer stream.

`Redactor` replaces each distinct value with `<EMAIL_1>`, `<PHONE_1>`,
`<EMAIL_2>` ... (numbered per type; the same value gets the same placeholder
throughout one request) and keeps the placeholder -> original mapping in
memory only: it is never logged, and its repr shows counts, not values.

`Restorer` puts the originals back into streamed output: `feed(delta)` returns
the text that is safe to emit now, holding back a trailing fragment that could
still become a placeholder (`"<EMA"` + `"IL_1> is"` -> `""` then
`"bob@example.com is"`); `flush()` returns what is left. Only exact
placeholders are restored: an upstream that alters one (`<email_1>`,
`EMAIL_1`, `<EMAIL 1>`) gets it back unchanged. Use one Restorer per channel
(answer text, reasoning, each tool call's arguments).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

from gateway.governance.detectors import detect
from gateway.governance.spans import Span
from gateway.request import ChatRequest

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[1-9][0-9]*>")

_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in range(32)} | {
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


@cache
def label(kind: str) -> str:
    """Placeholder label of a type: `national_id` -> `NATIONAL_ID`."""
    return re.sub(r"[^A-Z0-9]+", "_", kind.upper()).strip("_") or "PII"


class Redactor:
    """Assigns placeholders to values and remembers them for the answer (in memory only).

    `reserved` are placeholder-shaped strings already present in the request:
    they are never assigned, so restoring cannot rewrite text the client wrote.
    """

    __slots__ = ("_by_value", "_last", "_originals", "_reserved", "_types")

    def __init__(self, types: Iterable[str], reserved: Iterable[str] = ()) -> None:
        self._types = frozenset(types)
        self._reserved = frozenset(reserved)
        self._by_value: dict[str, str] = {}
        self._originals: dict[str, str] = {}
        self._last: dict[str, int] = defaultdict(int)  # type -> last number given

    @property
    def types(self) -> frozenset[str]:
        return self._types

    @property
    def mapping(self) -> Mapping[str, str]:
        """Placeholder -> original value (read-only view; keep it out of logs)."""
        return MappingProxyType(self._originals)

    def placeholder(self, kind: str, value: str) -> str:
        found = self._by_value.get(value)
        if found is not None:
            return found
        n = self._last[kind]
        while True:
            n += 1
            token = f"<{label(kind)}_{n}>"
            if token not in self._reserved:
                break
        self._last[kind] = n
        self._by_value[value] = token
        self._originals[token] = value
        return token

    def redact_text(self, text: str, spans: Sequence[Span] | None = None) -> str:
        """`text` with each span of a redacted type replaced (spans: sorted, non-overlapping)."""
        if spans is None:
            spans = detect(text, self._types)
        pieces: list[str] = []
        pos = 0
        for span in spans:
            if span.type in self._types:
                pieces.append(text[pos : span.start])
                pieces.append(self.placeholder(span.type, span.value))
                pos = span.end
        if not pieces:
            return text
        pieces.append(text[pos:])
        return "".join(pieces)

    def redact_request(self, chat: ChatRequest) -> ChatRequest:
        """A copy of `chat` with every inspected text redacted (the input is not mutated)."""
        edits: dict[TextSlot, str] = {}
        for slot, text in iter_texts(chat.messages):
            redacted = self.redact_text(text)
            if redacted is not text:
                edits[slot] = redacted
        return with_texts(chat, edits)

    def restore(self, text: str, *, json_string: bool = False) -> str:
        """Non-streaming restore (`json_string`: the text is inside a JSON string)."""
        restorer = self.restorer(json_string=json_string)
        return restorer.feed(text) + restorer.flush()

    def restorer(self, *, json_string: bool = False) -> Restorer:
        return Restorer(self._originals, json_string=json_string)

    def __repr__(self) -> str:
        """Distinct values per label; never the values."""
        counts = Counter(token[1:].rpartition("_")[0] for token in self._originals)
        return "Redactor(" + ", ".join(f"{k}={n}" for k, n in sorted(counts.items())) + ")"


class Restorer:
    """Streaming placeholder -> original substitution for one output channel.

    `json_string=True` is for tool-call arguments (the text of a JSON document):
    quotes and control characters of the originals are escaped.
    """

    __slots__ = ("_pending", "_prefixes", "_values")

    def __init__(self, mapping: Mapping[str, str], *, json_string: bool = False) -> None:
        self._values = {
            token: value.translate(_JSON_ESCAPES) if json_string else value
            for token, value in mapping.items()
        }
        # Every proper prefix of a placeholder ("<", "<E", ..., "<EMAIL_1"): what may be held.
        self._prefixes = frozenset(t[:i] for t in self._values for i in range(1, len(t)))
        self._pending = ""

    def feed(self, text: str) -> str:
        if self._pending:
            text = self._pending + text
            self._pending = ""
        lt = text.rfind("<")
        if lt == -1:
            return text
        if text[lt:] in self._prefixes:
            self._pending = text[lt:]
            text = text[:lt]
            if "<" not in text:
                return text
        return PLACEHOLDER.sub(self._original, text)

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return text

    def _original(self, m: re.Match[str]) -> str:
        token = m.group()
        return self._values.get(token, token)


# --- where the text of a request lives ---


class TextSlot(NamedTuple):
    """Where one text is: `messages[message]`, then `kind`.

    `kind` is content | part | tool_call | function_call.
    """

    message: int
    kind: str
    position: int = -1  # index of the part or tool call
    key: str = ""  # the part's text field ("text" or "refusal")


def iter_texts(messages: Sequence[dict[str, Any]]) -> Iterator[tuple[TextSlot, str]]:
    """Every text a request sends: string content, text/refusal parts, tool call arguments.

    Tool results are `role: tool` messages, so their content is covered. Image,
    audio and file parts are not inspected, nor are tool definitions.
    """
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            if content:
                yield TextSlot(i, "content"), content
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict):
                    key = "text" if part.get("type") == "text" else "refusal"
                    text = part.get(key) if part.get("type") == key else None
                    if isinstance(text, str) and text:
                        yield TextSlot(i, "part", j, key), text
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for j, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                args = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(args, str) and args:
                    yield TextSlot(i, "tool_call", j), args
        legacy = message.get("function_call")
        if isinstance(legacy, dict) and isinstance(legacy.get("arguments"), str):
            yield TextSlot(i, "function_call"), legacy["arguments"]


def with_texts(chat: ChatRequest, edits: Mapping[TextSlot, str]) -> ChatRequest:
    """A copy of `chat` with the texts at `edits` replaced; only what changes is copied."""
    if not edits:
        return chat
    messages = list(chat.messages)
    copied: dict[int, dict[str, Any]] = {}
    for slot, text in edits.items():
        message = copied.get(slot.message)
        if message is None:
            message = copied[slot.message] = dict(messages[slot.message])
            for field in ("content", "tool_calls"):  # copy-on-write lists
                if isinstance(message.get(field), list):
                    message[field] = list(message[field])
            messages[slot.message] = message
        if slot.kind == "content":
            message["content"] = text
        elif slot.kind == "part":
            message["content"][slot.position] = {
                **message["content"][slot.position],
                slot.key: text,
            }
        elif slot.kind == "tool_call":
            call = message["tool_calls"][slot.position]
            message["tool_calls"][slot.position] = {
                **call,
                "function": {**call["function"], "arguments": text},
            }
        else:
            message["function_call"] = {**message["function_call"], "arguments": text}
    return replace(chat, messages=messages)
