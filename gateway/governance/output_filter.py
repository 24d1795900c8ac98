"""Streaming output filter: configured patterns and PII detectors over text deltas.

The filter holds back the last `window` characters of the stream, so that a
match split across chunks is still seen whole before any of it is emitted.
Text is delayed by at most `window` characters (the first token included) and
the filter never buffers more than `window` characters plus one delta: it is
never a whole answer. The trade-off: a match longer than the window (minus the
few characters of context its pattern looks at) may be cut at the window's
edge; with `redact` its tail can then slip through, with `stop` the stream
still ends at its start. A bigger window catches longer matches and delays
text more.

Actions:
- `redact`: each match is replaced by `[REDACTED:<name>]` (configurable);
- `stop`: the text before the first match is emitted, `stopped` is set, and
  the caller ends the stream with `finish_reason: content_filter`.

Run it on the upstream text *before* restoring redaction placeholders (a
placeholder is not PII; the values restored into it are the client's own).
Use one filter per channel (answer text, reasoning, each tool call).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from gateway.governance.detectors import ALL_TYPES, collect
from gateway.governance.spans import Span, resolve
from gateway.value_class import value_class

FilterAction = Literal["redact", "stop"]
_CONTEXT = 16  # characters of already emitted text kept for lookbehinds at the held text's start


@value_class
class FilterResult:
    text: str  # safe to emit now (may be empty)
    stopped: bool = False  # the stream must end now (action stop)
    matched: tuple[str, ...] = ()  # names of the patterns/detectors that matched in this call


_EMPTY = FilterResult("")
_STOPPED = FilterResult("", True)


class OutputFilter:
    """`patterns`: (name, regex) pairs; `detectors`: PII types; see the module doc."""

    __slots__ = (
        "_action",
        "_context",
        "_held",
        "_patterns",
        "_replacements",
        "_stopped",
        "_types",
        "_window",
    )

    def __init__(
        self,
        patterns: Sequence[tuple[str, str | re.Pattern[str]]] = (),
        detectors: Iterable[str] = (),
        action: FilterAction = "redact",
        window: int = 64,
        replacement: str = "[REDACTED:{name}]",
    ) -> None:
        if action not in ("redact", "stop"):
            raise ValueError(f"output filter action must be redact or stop, got {action!r}")
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 65536:
            raise ValueError(f"output filter window must be an integer in 1..65536, got {window!r}")
        self._types = frozenset(detectors)
        unknown = self._types - ALL_TYPES
        if unknown:
            raise ValueError(f"unknown output filter detectors: {', '.join(sorted(unknown))}")
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for name, regex in patterns:
            try:
                compiled = regex if isinstance(regex, re.Pattern) else re.compile(regex)
            except re.error as exc:
                raise ValueError(
                    f"output filter pattern {name!r} is not a valid regex: {exc}"
                ) from exc
            self._patterns.append((name, compiled))
        names = [name for name, _ in self._patterns] + sorted(self._types)
        self._replacements = {name: replacement.format(name=name) for name in names}
        self._action: FilterAction = action
        self._window = window
        self._held = ""  # received, not yet emitted
        self._context = ""  # last characters emitted (raw), for lookbehinds
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def feed(self, text: str) -> FilterResult:
        if self._stopped:
            return _STOPPED
        if not text:
            return _EMPTY
        held = self._held + text
        if len(held) <= self._window:
            self._held = held
            return _EMPTY
        return self._run(held, len(held) - self._window)

    def flush(self) -> FilterResult:
        """End of stream: everything still held, filtered."""
        if self._stopped:
            return _STOPPED
        held, self._held = self._held, ""
        return self._run(held, len(held)) if held else _EMPTY

    def _run(self, held: str, cut: int) -> FilterResult:
        """Act on the matches starting before `cut` (in `held`); emit up to `cut` or past them."""
        base = len(self._context)
        scan = self._context + held
        cut += base
        matches = self._matches(scan, base)
        if self._action == "stop":
            for span in matches:
                if span.start < cut:
                    self._stopped = True
                    self._held = self._context = ""
                    return FilterResult(scan[base : span.start], True, (span.type,))
            return self._emit(scan, cut, scan[base:cut], ())
        pieces: list[str] = []
        names: list[str] = []
        pos = base
        for span in matches:
            if span.start >= cut:
                break
            pieces.append(scan[pos : span.start])
            pieces.append(self._replacements[span.type])
            names.append(span.type)
            pos = span.end
        end = max(cut, pos)
        pieces.append(scan[pos:end])
        return self._emit(scan, end, "".join(pieces), tuple(names))

    def _emit(self, scan: str, end: int, text: str, names: tuple[str, ...]) -> FilterResult:
        self._held = scan[end:]
        self._context = scan[max(0, end - _CONTEXT) : end]
        return FilterResult(text, False, names) if text or names else _EMPTY

    def _matches(self, scan: str, base: int) -> list[Span]:
        spans = [s for s in collect(scan, self._types) if s.start >= base] if self._types else []
        for name, regex in self._patterns:
            for m in regex.finditer(scan, base):
                if m.end() > m.start():
                    spans.append(Span(m.start(), m.end(), name, ""))
        return resolve(spans)
