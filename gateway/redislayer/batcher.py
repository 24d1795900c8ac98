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

from gateway.tasks import cancel_and_wait

Fill = Callable[[Any], None]  # adds one command to a pipeline


class CommandBatcher:
    def __init__(self, pipeline: Callable[[], Any], *, batch_timeout_s: float = 1.0) -> None:
        self._pipeline = pipeline
        self.batch_timeout_s = batch_timeout_s  # a batch on a hung Redis is abandoned after
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
        for fill, _ in batch:
            fill(pipe)
        self.batches += 1
        self.commands += len(batch)
        try:
            async with asyncio.timeout(self.batch_timeout_s):
                replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # every caller of the batch gets the error
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # a caller that gave up never reads it: no warning
            return
        self.connected = True
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
