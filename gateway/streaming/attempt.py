"""Pumping one attempt's event batches into the race queue, with its two deadlines.

Before the first token the attempt has `ttft_timeout_s` in all. After it, an
idle watchdog fails the stream when the upstream sends nothing for
`idle_timeout_s`; time spent waiting for a slow client (a full queue) does not
count. The watchdog is one timer per idle period, not per chunk: the hot path
only stamps the time of the last batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from gateway.streaming.accounting import AttemptRecord
from gateway.streaming.events import Event, UpstreamError, is_token


class _IdleWatchdog:
    __slots__ = ("_handle", "_idle", "_loop", "_task", "fired", "last", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle_s: float) -> None:
        self._loop = loop
        self._idle = idle_s
        self._task = asyncio.current_task()
        self.last = loop.time()
        self.waiting = False  # blocked on the client's pace, not the upstream's
        self.fired = False
        self._handle = loop.call_later(idle_s, self._check)

    def _check(self) -> None:
        remaining = self.last + self._idle - self._loop.time()
        if self.waiting or remaining > 0:
            self._handle = self._loop.call_later(max(remaining, self._idle / 4), self._check)
            return
        self.fired = True
        if self._task is not None:
            self._task.cancel()

    def cancel(self) -> None:
        self._handle.cancel()


async def pump(
    stream: AsyncGenerator[list[Event], None],
    queue: asyncio.Queue[Any],
    key: object,
    record: AttemptRecord,
    started_at: float,
    ttft_timeout_s: float,
    idle_timeout_s: float,
) -> UpstreamError | None:
    """Forward `stream`'s batches as `(key, batch)`; the error that ended it, or None."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(ttft_timeout_s):
            while True:
                batch = await anext(stream)
                token = False
                for event in batch:
                    if is_token(event):
                        token = True
                        break
                if token:
                    record.ttft_s = loop.time() - started_at
                    break
                await queue.put((key, batch))
    except StopAsyncIteration:
        return None
    except TimeoutError:
        record.outcome = "timed_out"
        message = f"no first token within {ttft_timeout_s:g}s"
        return UpstreamError(504, "upstream_timeout", message, True)
    await queue.put((key, batch))  # the first token's batch, outside any deadline
    task = asyncio.current_task()
    base = task.cancelling() if task is not None else 0
    watchdog = _IdleWatchdog(loop, idle_timeout_s)
    try:
        async for batch in stream:
            watchdog.waiting = True
            await queue.put((key, batch))
            watchdog.waiting = False
            watchdog.last = loop.time()
    except asyncio.CancelledError:
        if watchdog.fired and task is not None and task.uncancel() <= base:
            message = f"upstream stalled for more than {idle_timeout_s:g}s"
            return UpstreamError(504, "upstream_timeout", message, True)
        raise
    finally:
        watchdog.cancel()
    return None
