"""Incremental, sans-I/O line splitting for streamed bytes.

`LineSplitter` turns arbitrary byte chunks into complete lines. A line ends at
LF, CR or CRLF (the SSE and HTTP "universal newline" set); a CRLF that is split
across two chunks (CR at the end of one, LF at the start of the next) counts as
one line ending, never as a line plus an empty line.

Only the new chunk is scanned (`bytes.splitlines`, which for `bytes` breaks on
exactly LF, CR and CRLF). An unterminated tail is kept as a list of pieces and
joined once when its line completes, so a long line that arrives in many small
chunks costs linear, not quadratic, time. Lines are returned without their
terminator and are not decoded: callers decode UTF-8 per line.
"""

from __future__ import annotations

__all__ = ["LineSplitter", "LineTooLong"]

_LF = 0x0A
_CR = 0x0D


class LineTooLong(ValueError):
    """A line, complete or still buffered, is longer than `max_line_bytes`."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"line too long: {length} bytes without a line ending exceeds max_line_bytes={limit}"
        )
        self.length = length
        self.limit = limit


class LineSplitter:
    """Split a byte stream into lines, one chunk at a time.

    Feed chunks with `feed()`; each call returns the lines completed by that
    chunk. At end of stream call `close()` to get the unterminated last line,
    if any. After `close()`, `feed()` raises `RuntimeError`. After
    `LineTooLong` the stream is corrupt and the splitter should be dropped.
    """

    __slots__ = ("_closed", "_pending", "_pending_len", "_skip_lf", "max_line_bytes")

    def __init__(self, max_line_bytes: int = 1 << 20) -> None:
        if max_line_bytes < 1:
            raise ValueError(f"max_line_bytes must be >= 1, got {max_line_bytes}")
        self.max_line_bytes = max_line_bytes
        self._pending: list[bytes] = []  # pieces of the current unterminated line
        self._pending_len = 0
        self._skip_lf = False  # the previous chunk ended with CR
        self._closed = False

    @property
    def buffered(self) -> int:
        """Bytes held for the current unterminated line."""
        return self._pending_len

    @property
    def idle(self) -> bool:
        """Nothing buffered, and no line ending split across chunks pending."""
        return not self._pending and not self._skip_lf and not self._closed

    def feed(self, data: bytes) -> list[bytes]:
        """Buffer `data` and return the lines it completes, without terminators."""
        if self._closed:
            raise RuntimeError("LineSplitter.feed() called after close()")
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == _LF:  # second half of a CRLF split across chunks
                data = data[1:]
                if not data:
                    return []

        lines = data.splitlines()
        last = data[-1]
        partial: bytes | None = None
        if last == _CR:
            self._skip_lf = True
        elif last != _LF:
            partial = lines.pop()  # never empty: splitlines drops no trailing text

        limit = self.max_line_bytes
        if lines:
            if self._pending:
                self._pending.append(lines[0])
                lines[0] = b"".join(self._pending)
                self._pending = []
                self._pending_len = 0
            longest = max(map(len, lines))
            if longest > limit:
                raise LineTooLong(longest, limit)
        if partial is not None:
            size = self._pending_len + len(partial)
            if size > limit:
                raise LineTooLong(size, limit)
            self._pending.append(partial)
            self._pending_len = size
        return lines

    def close(self) -> list[bytes]:
        """End the stream; return the unterminated last line, if there is one."""
        self._closed = True
        self._skip_lf = False
        if not self._pending:
            return []
        line = b"".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return [line]
