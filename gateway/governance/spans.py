"""What a detector finds (`Span`), boundary checks shared by detectors, overlap resolution."""

from __future__ import annotations

from typing import NamedTuple

# ASCII word characters: a detected value must not be glued to one of these.
# Non-ASCII letters are deliberately *not* boundaries' concern, so that values
# inside CJK text (no spaces between words) are still found.
WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# Letters that follow a backslash in a JSON escape (`\n`, `\t`, `\r`): text taken
# raw from a JSON string (tool arguments, tool results) must still have boundaries.
_ESCAPES = frozenset("ntr")


class Span(NamedTuple):
    """One finding: `text[start:end] == value`, of detector type `type`."""

    start: int
    end: int
    type: str
    value: str


def left_ok(text: str, i: int, extra: str = "") -> bool:
    """True when `text[i]` may start a value: no word character (or `extra`) before it.

    A JSON escape (`\\n`, `\\t`, `\\r`) right before counts as a boundary.
    """
    if i <= 0:
        return True
    c = text[i - 1]
    if c in WORD or c in extra:
        return c in _ESCAPES and i >= 2 and text[i - 2] == "\\"
    return True


def right_ok(text: str, j: int, extra: str = "") -> bool:
    """True when a value may end at `j`: no word character (or `extra`) right after it."""
    if j >= len(text):
        return True
    c = text[j]
    return c not in WORD and c not in extra


def resolve(spans: list[Span]) -> list[Span]:
    """Sorted, non-overlapping: leftmost first, and the longest of those starting together."""
    if len(spans) < 2:
        return spans
    spans.sort(key=_order)
    out: list[Span] = []
    end = -1
    for span in spans:
        if span.start >= end:
            out.append(span)
            end = span.end
    return out


def _order(span: Span) -> tuple[int, int]:
    return (span.start, -span.end)
