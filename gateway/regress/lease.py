"""One regression run per (deployment, model version) across gateway instances.

The instance that notices a version change first takes a lease named after both; the
others find it taken and do nothing. In memory (one instance) the lease is a dict; with
`state.backend: redis` it is ``SET {prefix}:regress:lease:{name} {instance} NX PX ttl``.
A Redis error counts as "not taken here": a run costs money, so when in doubt, skip.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Protocol

from gateway.redislayer import RedisClient
from gateway.routing.redisconn import connect, describe, log
from gateway.tasks import raise_if_cancelling


class Lease(Protocol):
    async def acquire(self, name: str, ttl_s: float) -> bool: ...

    async def close(self) -> None: ...


class MemoryLease:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    async def acquire(self, name: str, ttl_s: float) -> bool:
        now = self._clock()
        if self._until.get(name, 0.0) > now:
            return False
        self._until[name] = now + ttl_s
        return True

    async def close(self) -> None:
        return None


class RedisLease:
    def __init__(self, redis: RedisClient | str, prefix: str = "rg") -> None:
        self._owns_client = isinstance(redis, str)
        self._redis: RedisClient = connect(redis) if isinstance(redis, str) else redis
        self.prefix = prefix
        self.instance = uuid.uuid4().hex[:12]

    async def acquire(self, name: str, ttl_s: float) -> bool:
        key = f"{self.prefix}:regress:lease:{name}"
        try:
            taken = await self._redis.set(key, self.instance, nx=True, px=int(ttl_s * 1000))
        except Exception as exc:
            raise_if_cancelling(exc)
            log.warning("regress lease unavailable, not running", lease=name, error=describe(exc))
            return False
        return bool(taken)

    async def close(self) -> None:
        if self._owns_client:
            await self._redis.aclose()
