"""A breaker in front of Redis, shared by every Redis-backed component of a process.

Routing state in Redis is an optimisation: when Redis is away (down, or hung) every
component decides on its own local view. The guard makes that cheap:

- every call has a time budget: a few ms on the request path (`RedisLayer.request`),
  longer for background flushes (`call(timeout_s=...)`); a request that runs out of its
  budget decides locally without counting as a failure (a busy event loop is not an
  outage), but a request-path batch left unanswered for `hung_after_s` is;
- after `open_after` consecutive failures (at once for a refused connection) the breaker
  opens: the outage is remembered across requests, calls fail at once with
  `RedisUnavailable` without touching the network, and one background task probes Redis
  every `probe_interval_s`;
- the first probe Redis answers closes it (and `degraded` clears: it is this breaker's
  state, not a flag that only the next call of some component would reset);
- with `confirm` (a Cluster), failures open the breaker only when no node of the cluster
  answers either: a master failing over or a slot in migration is a partial failure, in
  which each call that cannot reach its node decides locally and nothing is declared.

One warning is logged when an outage starts and one line when it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.tasks import cancel_and_wait, raise_if_cancelling

log = structlog.get_logger("gateway.redis")
T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer within the budget, failed, or is known to be away."""


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class RedisGuard:
    def __init__(
        self,
        ping: Callable[[], Awaitable[object]],
        *,
        request_timeout_s: float = 0.005,
        probe_interval_s: float = 0.5,
        probe_timeout_s: float = 0.5,
        open_after: int = 3,
        where: str = "redis",
        confirm: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._ping = ping
        self._confirm = confirm  # does any part of Redis still answer? (a cluster)
        self._confirming: asyncio.Task[None] | None = None
        self.partial = 0  # failures a confirmation showed to be one node's, not Redis's
        self.request_timeout_s = request_timeout_s
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self.open_after = max(open_after, 1)
        self.where = where  # redacted location, for the log lines
        self._open = False
        self._consecutive = 0
        self._prober: asyncio.Task[None] | None = None
        self.outages = 0  # times the breaker opened
        self.skipped = 0  # calls answered locally at once because the breaker was open
        self.failures = 0  # calls that failed or ran out of time
        self.last_outage = ""  # what opened the breaker last (part: error)

    @property
    def open(self) -> bool:
        return self._open

    @property
    def degraded(self) -> bool:
        """Redis is known to be away: callers use their local views."""
        return self._open

    async def call(self, op: Callable[[], Awaitable[T]], *, timeout_s: float, part: str) -> T:
        """`op()` within `timeout_s`; RedisUnavailable at once while the breaker is open."""
        if self._open:
            self.skipped += 1
            raise RedisUnavailable("redis is away (breaker open)")
        try:
            async with asyncio.timeout(timeout_s):
                result = await op()
        except Exception as exc:
            raise_if_cancelling(exc)  # redis-py may disguise a cancellation as an error
            self.failed(part, exc)
            raise RedisUnavailable(describe(exc)) from exc
        raise_if_cancelling()  # redis-py may have swallowed a cancellation
        self._consecutive = 0
        return result

    def succeeded(self) -> None:
        self._consecutive = 0

    def hung(self, part: str, waited_s: float) -> None:
        """A command has been outstanding for `waited_s`: Redis is hung, open at once."""
        self._consecutive = self.open_after
        self.failed(part, TimeoutError(f"no answer for {waited_s * 1000:.0f} ms"))

    def failed(self, part: str, exc: BaseException) -> None:
        """Count a failed call; open the breaker after `open_after` in a row (at once for a
        refused connection)."""
        self.failures += 1
        self._consecutive += 1
        refused = isinstance(exc, RedisConnectionError | ConnectionRefusedError)
        if self._open or (self._consecutive < self.open_after and not refused):
            return
        if self._confirm is not None:
            if self._confirming is None or self._confirming.done():
                self._confirming = asyncio.get_running_loop().create_task(
                    self._confirm_then_open(part, exc), name="redis-confirm"
                )
            return
        self._open_now(part, exc)

    async def _confirm_then_open(self, part: str, exc: BaseException) -> None:
        """Open only if no node answers; otherwise the failure was one node's (failover)."""
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                await self._confirm()  # type: ignore[misc]
        except Exception as confirm_exc:
            raise_if_cancelling(confirm_exc)
            if not self._open:
                self._open_now(part, exc)
            return
        raise_if_cancelling()
        self._consecutive = 0
        self.partial += 1
        log.info("redis node unavailable, its keys decided locally", redis=self.where, part=part)

    def _open_now(self, part: str, exc: BaseException) -> None:
        self._open = True
        self.outages += 1
        self.last_outage = f"{part}: {describe(exc)}"
        log.warning(
            "redis unavailable, using local views",
            redis=self.where,
            part=part,
            error=describe(exc),
            probe_every_s=self.probe_interval_s,
        )
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe(), name="redis-probe")

    async def _probe(self) -> None:
        while self._open:
            await asyncio.sleep(self.probe_interval_s)
            try:
                async with asyncio.timeout(self.probe_timeout_s):
                    await self._ping()
            except Exception as exc:
                raise_if_cancelling(exc)
                continue
            raise_if_cancelling()
            self.close_breaker()

    def close_breaker(self) -> None:
        """Redis answered: use it again."""
        if self._open:
            self._open = False
            self._consecutive = 0
            log.info("redis reachable again", redis=self.where, outages=self.outages)

    async def close(self) -> None:
        tasks = (self._prober, self._confirming)
        self._prober = self._confirming = None
        await cancel_and_wait(*tasks)
