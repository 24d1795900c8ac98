"""The request path's Redis commands, batched: every command that concurrent requests
submit while a batch is on the wire goes out together in the next one (one pipeline, so
one round trip per node), and a caller waits for its reply only as long as its budget.

Why: a request must never wait long on Redis, yet a command cut off by a timeout would
drop its connection (and the next command pays a new connect). Here a caller that gives
up leaves its command to finish in the background (it still counts in Redis, once) and
the connection stays; a command whose caller gave up before it was sent is not sent.
Under load this also turns N requests' calls into one round trip instead of N
connections.

A command a cluster bounced between two nodes for the whole of redis-py's redirect
budget (`ClusterError: TTL exhausted.`) ran nowhere, so it is sent again in a later
batch, a pause later, at most REDIRECT_RETRIES times. This happens in the middle of a
slot migration: redis-py sends the ASKING that an ASK redirect asks for on a pooled
connection and the command on another whenever several commands are redirected at once,
so the target answers MOVED back to the source, and around again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.exceptions import ClusterError

from gateway.redislayer.guard import RedisGuard
from gateway.tasks import cancel_and_wait, raise_if_cancelling

Fill = Callable[[Any], None]  # adds one command to a pipeline
REDIRECT_RETRIES = 3
REDIRECT_PAUSE_S = 0.05  # a migrating slot settles in a few round trips


def bounced(reply: object) -> bool:
    """A command redis-py gave up on after redirects (or TRYAGAIN) alone: it did not run."""
    return isinstance(reply, ClusterError) and "TTL exhausted" in str(reply)


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
        self._bounces: dict[asyncio.Future[Any], int] = {}  # sends again after a bounce
        self._closed = False
        self.resent = 0  # commands sent again after a bounce
        self.batches = 0  # pipelines sent
        self.commands = 0  # commands sent in them
        self.connected = False  # a batch has been answered (the connection is warm)

    def submit(self, fill: Fill) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply (or the error)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(fill, future)
        return future

    def _enqueue(self, fill: Fill, future: asyncio.Future[Any]) -> None:
        self._queue.append((fill, future))
        self._wake.set()
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="redis-batcher")

    def _send_again(self, fill: Fill, future: asyncio.Future[Any]) -> bool:
        """After a bounce: queue the command again a pause later (False: no retries left)."""
        tries = self._bounces.get(future, 0)
        if tries >= REDIRECT_RETRIES or self._closed:
            self._bounces.pop(future, None)
            return False
        self._bounces[future] = tries + 1
        self.resent += 1
        asyncio.get_running_loop().call_later(REDIRECT_PAUSE_S, self._requeue, fill, future)
        return True

    def _requeue(self, fill: Fill, future: asyncio.Future[Any]) -> None:
        if self._closed:
            self._bounces.pop(future, None)
            future.cancel()
        elif not future.done():
            self._enqueue(fill, future)

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
                self._bounces.pop(fut, None)
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()  # a caller that gave up never reads it: no warning
            return
        finally:
            hung.cancel()
        self.connected = True
        self._guard.succeeded()
        for (fill, fut), reply in zip(batch, replies, strict=True):
            if not fut.done() and bounced(reply) and self._send_again(fill, fut):
                continue
            self._bounces.pop(fut, None)
            if fut.done():
                continue
            if isinstance(reply, Exception):
                fut.set_exception(reply)
                fut.exception()
            else:
                fut.set_result(reply)

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        for _, fut in self._queue:
            fut.cancel()
        self._queue = []
        for fut in self._bounces:  # waiting for their pause: never sent again
            fut.cancel()
        self._bounces.clear()
