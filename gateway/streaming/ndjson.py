"""Incremental, sans-I/O NDJSON (newline-delimited JSON) line decoder.

`NDJSONDecoder` returns each non-blank line as raw bytes, stripped of ASCII
whitespace; the caller parses it (``orjson.loads``). Blank and whitespace-only
lines are skipped.

Line endings follow `LineSplitter`: LF, CRLF *and a bare CR* end a line. NDJSON
only defines LF (and tolerates CRLF), but a raw CR cannot appear inside a JSON
string, and real producers (Ollama, Go's json.Encoder) never put one between
tokens, so reusing the shared splitter is safe in practice. A line holding a
bare CR as inter-token whitespace would be cut in two and fail to parse.
"""

from __future__ import annotations

from gateway.streaming.lines import LineSplitter, LineTooLong

__all__ = ["LineTooLong", "NDJSONDecoder"]


class NDJSONDecoder:
    """Feed bytes, get complete JSON documents as bytes. No I/O, no asyncio."""

    __slots__ = ("_lines",)

    def __init__(self, max_line_bytes: int = 1 << 20) -> None:
        self._lines = LineSplitter(max_line_bytes)

    def feed(self, data: bytes) -> list[bytes]:
        """Buffer `data`; return the non-blank lines it completes, stripped."""
        return [s for line in self._lines.feed(data) if (s := line.strip())]

    def close(self) -> list[bytes]:
        """End the stream; return the unterminated last line if it is not blank."""
        return [s for line in self._lines.close() if (s := line.strip())]
