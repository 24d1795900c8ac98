"""Output drift: how far a new answer moved from the baseline's sample.

    drift(a, b) = 1 - difflib.SequenceMatcher(None, words(a), words(b)).ratio()

`words` lowercases the text and keeps its word tokens (runs of letters, digits
and underscores; punctuation and whitespace are dropped). The ratio is
2*M / (len(a) + len(b)) where M counts the words of the longest matching
blocks, so it is order-aware: the same words reshuffled drift too. 0.0 means
the same words in the same order, 1.0 nothing in common. Two empty outputs
(e.g. both answers were tool calls rendered to empty text) have drift 0.
"""

from __future__ import annotations

import difflib
import re

_WORD = re.compile(r"\w+")
SAMPLE_CHARS = 4000  # stored sample length; new outputs are cut the same way before comparing


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def drift(a: str, b: str) -> float:
    """1 - word-level difflib ratio of two texts (both cut to SAMPLE_CHARS), in [0, 1]."""
    wa, wb = words(a[:SAMPLE_CHARS]), words(b[:SAMPLE_CHARS])
    if not wa and not wb:
        return 0.0
    ratio = difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()
    return round(1.0 - ratio, 4)
