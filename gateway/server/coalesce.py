"""The coalescing window (`stream.coalesce_ms`): fewer, larger writes after the first token.

Off by default. When on, the request's task waits until the window since its last write
has passed before it asks for the next batch; the upstream's chunks that arrive
meanwhile wait in aiohttp's buffer and come out of that one read as one batch, which
costs one encode and one write. Nothing is cancelled or timed out around the read
(cancelling it would close the upstream stream); the wait is a plain sleep between
reads, where the idle watchdog already counts time as the client's, not the upstream's.

The first token is written before a `Pacer` is ever awaited, so it is never held; a
chunk after it is held at most one window, and not at all while the upstream is slower
than the window. Heartbeats come before the first token and
are untouched. A client that goes away during the wait cancels the sleep like any
other await of the request's task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.config.model import StreamConfig
from gateway.streaming.events import Event


class BatchSource(Protocol):
    """What the pacer reads: an `Answer` after its first token."""

    async def next_batch(self) -> list[Event] | None: ...


class Pacer:
    """Reads a source at most once per window while the upstream keeps up with it:
    `next_batch()` sleeps until `window_s` after the previous batch was returned (the
    write that follows it), then reads.

    When a read had to wait for the upstream a whole window or more, the upstream is
    slower than the window and there is nothing to gather: the next read goes at once,
    which saves a timer and a wake-up per chunk (at 5 ms between tokens and a 2 ms window,
    every chunk). The first read after a quick one is paced again, so a burst after a
    pause costs at most one extra write.

    Make it just before the first token's write: that write opens the first window.
    `clock` and `sleep` are the running loop's unless a test brings its own.
    """

    __slots__ = ("_clock", "_due", "_hold", "_sleep", "window_s")

    def __init__(
        self,
        window_s: float,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.window_s = window_s
        self._clock = clock or asyncio.get_running_loop().time
        self._sleep = sleep
        self._due = self._clock() + window_s
        self._hold = True  # the pace after the first token is not known yet

    async def next_batch(self, source: BatchSource) -> list[Event] | None:
        clock = self._clock
        if self._hold:
            delay = self._due - clock()
            if delay > 0:
                await self._sleep(delay)
        asked = clock()
        batch = await source.next_batch()
        now = clock()
        self._hold = now - asked < self.window_s
        self._due = now + self.window_s
        return batch


def pacer(
    stream: StreamConfig,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Pacer | None:
    """A pacer for one streamed answer, or None when coalescing is off (the default)."""
    if stream.coalesce_ms <= 0:
        return None
    return Pacer(stream.coalesce_ms / 1000, clock, sleep)
