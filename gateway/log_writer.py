"""Log lines written off the event loop: a stalled reader of stderr never stalls a request.

A gateway's log is usually a pipe to a collector, and a pipe holds 64 KiB: when its
reader falls behind (docker's default log mode blocks the writer; a busy collector), a
write blocks. Written from the event loop, that one write would stop every request of
the process. `BackgroundLines` is the binary stream the JSON log writes to instead:

- the lines written on a loop within `batch_s` (20 ms) of the first are joined and
  handed to one writer thread as one batch (at once when 64 KiB are waiting): one
  hand-over and one write system call per batch, not per line;
- what waits for that thread is bounded (`max_pending_bytes`, 8 MiB); beyond it lines
  are dropped and counted, and once the thread has written what it held, one
  `log_lines_dropped` line says how many;
- lines written with no loop running in the writing thread go to the writer thread at
  once, behind what it holds already;
- `close()` (also at exit) hands over the last batch and waits a bounded time for the
  thread to write everything; after it, lines are written directly while the stream is
  known to be writable, and dropped once a write has not finished in time.
"""

from __future__ import annotations

import asyncio
import atexit
import queue
import threading
import time
from typing import IO

MAX_PENDING_BYTES = 8 << 20
CLOSE_WAIT_S = 2.0
BATCH_S = 0.02
BATCH_BYTES = 64 << 10


class BackgroundLines:
    """A write-only binary stream (`write`, `flush`) that never blocks its caller."""

    def __init__(
        self,
        stream: IO[bytes],
        max_pending_bytes: int = MAX_PENDING_BYTES,
        batch_s: float = BATCH_S,
    ) -> None:
        self._stream = stream
        self._max = max_pending_bytes
        self._batch_s = batch_s
        self._batch: list[bytes] = []  # written on a loop, not handed over yet
        self._batch_bytes = 0
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards the counters below
        self._pending = 0  # bytes handed to the thread, not written yet
        self._dropped = 0  # lines dropped since the last report
        self.dropped_total = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stuck = False  # close() found a write that did not finish: drop the rest

    @property
    def target(self) -> IO[bytes]:
        return self._stream

    # -- the caller's side --------------------------------------------------------

    def write(self, data: bytes) -> int:
        if self._closed:
            return self._write_closed(data)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._hand([data])
            return len(data)
        if not self._batch:
            loop.call_later(self._batch_s, self._flush_batch)
        self._batch.append(data)
        self._batch_bytes += len(data)
        if self._batch_bytes >= BATCH_BYTES:
            self._flush_batch()  # the timer then finds nothing to do
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the batch goes when its window ends."""

    def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Hand over what is left and wait up to `wait_s` for the thread to write it."""
        if self._closed:
            return
        self._flush_batch()
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._queue.put(None)
        thread.join(wait_s)
        self._stuck = thread.is_alive()

    # -- handing over -------------------------------------------------------------

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, []
        self._batch_bytes = 0
        if batch:
            self._hand(batch)

    def _hand(self, lines: list[bytes]) -> None:
        data = lines[0] if len(lines) == 1 else b"".join(lines)
        with self._lock:
            if self._pending + len(data) > self._max:
                self._dropped += len(lines)
                self.dropped_total += len(lines)
                return
            self._pending += len(data)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def _write_closed(self, data: bytes) -> int:
        if not self._stuck:
            self._write_out(data)
        return len(data)

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._write_out(data)
            with self._lock:
                self._pending -= len(data)
                dropped = self._dropped if self._pending == 0 else 0
                self._dropped -= dropped
            if dropped:
                self._write_out(dropped_line(dropped))

    def _write_out(self, data: bytes) -> None:
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nobody to tell
            pass


def dropped_line(count: int) -> bytes:
    """The JSON line that reports `count` lines dropped, as the log's other lines look."""
    from gateway.logs import json_line, stamped  # logs imports this module

    fields = {"event": "log_lines_dropped", "count": count}
    fields["reason"] = "the log's reader fell behind"
    return json_line(stamped(fields, "warning", time.time()))


def background(stream: IO[bytes]) -> BackgroundLines:
    """`stream` behind a BackgroundLines, closed (drained, bounded) at exit."""
    lines = BackgroundLines(stream)
    atexit.register(lines.close)
    return lines
