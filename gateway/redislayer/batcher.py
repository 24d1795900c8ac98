"""The request path's Redis commands, batched: every command that concurrent requests
submit while a batch is on the wire goes out together in the next one (one pipeline, so
one round trip per node), and a caller waits for its reply only as long as its budget.

Why: a request must never wait long on Redis, yet a command cut off by a timeout would
drop its connection (and the next command pays a new connect). Here a caller that gives
up leaves its command to finish in the background (it still counts in Redis, once) and
the connection stays; a command whose caller gave up before it was sent is not sent.
Under load this also turns N requests' calls into one round trip instead of N
connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.redislayer.guard import RedisGuard
from gateway.tasks import cancel_and_wait, raise_if_cancelling

Fill = Callable[[Any], None]  # adds one command to a pipeline


class CommandBatcher:
    def __init__(
        self,
        pipeline: Callable[[], Any],
        guard: RedisGuard,
        *,
        batch_timeout_s: float = 1.0,
        hung_after_s: float = 0.5,
    ) -> None:
        self._pipeline = pipeline
        self._guard = guard  # told how batches go: the breaker's evidence
        self.batch_timeout_s = batch_timeout_s  # a batch on a hung Redis is abandoned after
        self.hung_after_s = hung_after_s  # a batch unanswered this long opens the breaker
        self._queue: list[tuple[Fill, asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # pipelines sent
        self.commands = 0  # commands sent in them
        self.connected = False  # a batch has been answered (the connection is warm)

    def submit(self, fill: Fill) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply (or the error)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((fill, future))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="redis-batcher")
        return future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = [(fill, fut) for fill, fut in self._queue if not fut.done()]
            self._queue = []
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[tuple[Fill, asyncio.Future[Any]]]) -> None:
        pipe = self._pipeline()
        queued = []
        for fill, fut in batch:
            try:
                fill(pipe)
            except Exception as exc:  # a command the pipeline refuses: its caller's error
                fut.set_exception(exc)
                fut.exception()
                continue
            queued.append((fill, fut))
        batch = queued
        if not batch:
            return
        self.batches += 1
        self.commands += len(batch)
        # the first batch also connects (and, on a cluster, discovers the slots)
        patience = self.hung_after_s if self.connected else max(self.hung_after_s, 2.0)
        hung = asyncio.get_running_loop().call_later(
            patience, self._guard.hung, "request path", patience
        )
        try:
            async with asyncio.timeout(self.batch_timeout_s):
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # every caller of the batch gets the error
            raise_if_cancelling(exc)
            if not self._guard.open:
                self._guard.failed("request path", exc)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # a caller that gave up never reads it: no warning
            return
        finally:
            hung.cancel()
        self.connected = True
        self._guard.succeeded()
        for (_, fut), reply in zip(batch, replies, strict=True):
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
                fut.exception()
            else:
                fut.set_result(reply)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for _, fut in self._queue:
            fut.cancel()
        self._queue = []
