"""What both upstream pools (`http1.pool`, `http2.pool`) keep besides connections:
requests waiting their turn for one (`Turns`), and the URLs they have parsed (`Targets`)."""

from __future__ import annotations

import asyncio
from collections import deque

from gateway.streaming.http1.request import Target, parse_target

MAX_CACHED = 512  # parsed URLs kept


class Turns:
    """Requests waiting for room in a pool, woken one at a time, first come first served."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __bool__(self) -> bool:
        return bool(self._waiters)

    async def wait(self) -> None:
        """Until `wake` gives this request the turn (or `fail_all` fails it)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.wake()  # pass the turn it was given on
            else:
                self._waiters.remove(waiter)
            raise

    def wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def fail_all(self, exc: Exception) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        self._waiters.clear()


class Targets:
    """URL -> its parsed `Target`, parsed once (a provider's few URLs, over and over)."""

    __slots__ = ("_targets",)

    def __init__(self) -> None:
        self._targets: dict[str, Target] = {}

    def get(self, url: str) -> Target:
        """Raises ValueError for anything but an absolute http(s) URL with a host."""
        target = self._targets.get(url)
        if target is None:
            target = parse_target(url)
            if len(self._targets) >= MAX_CACHED:
                self._targets.clear()
            self._targets[url] = target
        return target
