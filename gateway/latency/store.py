"""Counter storage for latency profiles: in-process memory, or Redis shared by instances.

A store holds named hashes of float counters (``key → {field → weight}``). Writers
only ever *add* (``incr``), so any number of gateway instances can share one
Redis with HINCRBYFLOAT and no coordination.

Neither ``incr`` nor ``read`` awaits anything: the request path never touches
Redis. :class:`RedisStore` buffers increments and flushes them in one pipeline
about once a second, and serves reads from a local copy that a background task
refreshes about every two seconds, so an instance sees another's update within
``flush_interval_s + refresh_interval_s`` (3 s by default, plus round trips).
A Redis that is down, slow or restarting only costs the batches it could not
take: they are dropped and counted in ``dropped_updates``; one warning is
logged per outage, and the loop keeps going until Redis answers again.

Keys carry a hash tag, ``{prefix:deployment}:…``, so every key of a deployment
lives in one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.tasks import cancel_and_wait, raise_if_cancelling

_EMPTY: Mapping[str, float] = MappingProxyType({})


class CounterStore(Protocol):
    """What the latency profiles need from storage."""

    def key(self, deployment: str, suffix: str) -> str: ...

    def incr(self, key: str, deltas: Mapping[str, float]) -> None:
        """Add ``deltas`` to the counters of ``key``. Never blocks, never raises on I/O."""
        ...

    def read(self, key: str) -> Mapping[str, float]:
        """The current local view of ``key`` (do not mutate it)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def tagged_key(prefix: str, deployment: str, suffix: str) -> str:
    """``{prefix:deployment}:suffix``: all keys of a deployment share a cluster slot."""
    return f"{{{prefix.rstrip(':')}:{deployment}}}:{suffix}"


def _add(target: dict[str, float], deltas: Mapping[str, float]) -> None:
    for name, amount in deltas.items():
        target[name] = target.get(name, 0.0) + amount


class MemoryStore:
    """Counters in this process only (the default backend)."""

    def __init__(self, prefix: str = "rg") -> None:
        self.prefix = prefix
        self._data: dict[str, dict[str, float]] = {}

    def key(self, deployment: str, suffix: str) -> str:
        return tagged_key(self.prefix, deployment, suffix)

    def incr(self, key: str, deltas: Mapping[str, float]) -> None:
        target = self._data.get(key)
        if target is None:
            target = self._data[key] = {}
        _add(target, deltas)

    def read(self, key: str) -> Mapping[str, float]:
        return self._data.get(key, _EMPTY)

    def forget(self, deployment: str) -> None:
        """Drop every counter of `deployment` (a reload gave its name a new identity)."""
        tag = tagged_key(self.prefix, deployment, "")
        for key in [k for k in self._data if k.startswith(tag)]:
            del self._data[key]

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisStore:
    """Counters shared through Redis (standalone or Cluster), batched and cached locally.

    The local view of a key is "last snapshot read from Redis + increments not yet
    flushed". Only keys that were read in the last ``interest_ttl_s`` seconds are
    refreshed, so the refresh costs one HGETALL per key in use, not a SCAN.
    While Redis is unreachable the view keeps this instance's own increments, so
    the instance goes on learning locally; the next successful refresh replaces
    it with the shared state (which lacks the dropped batches).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "rg",
        cluster: bool = False,
        flush_interval_s: float = 1.0,
        refresh_interval_s: float = 2.0,
        socket_timeout_s: float = 0.5,
        op_timeout_s: float = 2.0,
        interest_ttl_s: float = 600.0,
        key_ttl_s: int | None = 365 * 86400,
    ) -> None:
        if flush_interval_s <= 0 or refresh_interval_s <= 0:
            raise ValueError("flush_interval_s and refresh_interval_s must be > 0")
        self.prefix = prefix
        self.cluster = cluster
        self._url = url
        self._flush_interval = flush_interval_s
        self._refresh_interval = refresh_interval_s
        self._socket_timeout = socket_timeout_s
        self._op_timeout = op_timeout_s
        self._interest_ttl = interest_ttl_s
        self._key_ttl = key_ttl_s
        self._view: dict[str, dict[str, float]] = {}
        self._pending: dict[str, dict[str, float]] = {}
        self._pending_ops = 0
        self._interest: dict[str, float] = {}  # key -> monotonic time of its last read
        self._client: Redis | RedisCluster | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._healthy = True
        self._log = structlog.get_logger("gateway.latency")
        self.dropped_updates = 0  # incr() calls whose batch Redis did not take
        self.outages = 0  # transitions from reachable to unreachable
        self.flushes = 0  # successful flushes
        self.refreshes = 0  # successful refreshes

    # -- request path (sync, no I/O) ----------------------------------------

    def key(self, deployment: str, suffix: str) -> str:
        return tagged_key(self.prefix, deployment, suffix)

    def incr(self, key: str, deltas: Mapping[str, float]) -> None:
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = {}
        _add(pending, deltas)
        view = self._view.get(key)
        if view is None:
            view = self._view[key] = {}
        _add(view, deltas)
        self._pending_ops += 1

    def read(self, key: str) -> Mapping[str, float]:
        self._interest[key] = time.monotonic()
        return self._view.get(key, _EMPTY)

    @property
    def healthy(self) -> bool:
        return self._healthy

    # -- lifecycle -------------------------------------------------------------

    def _connect(self) -> Redis | RedisCluster:
        options: dict[str, Any] = {
            "socket_timeout": self._socket_timeout,
            "socket_connect_timeout": self._socket_timeout,
            "retry": Retry(NoBackoff(), 1),  # one immediate retry (stale socket); our loop retries
        }
        if self.cluster:
            return RedisCluster.from_url(self._url, **options)
        return Redis.from_url(self._url, **options)

    async def start(self) -> None:
        if self._task is not None:
            return
        if self._client is None:
            self._client = self._connect()
        self._task = asyncio.create_task(self._run(), name="latency-store-sync")

    async def close(self) -> None:
        """Stop the background task, flush what is buffered (best effort), drop the pool."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client = self._client
        if client is None:
            return
        try:
            async with self._lock:
                await self._flush()
        finally:
            self._client = None
            try:
                await client.aclose()
            except Exception as exc:  # a dead server must not fail shutdown
                self._log.debug("latency_store_close_failed", error=repr(exc))

    async def sync(self) -> None:
        """One flush and one refresh now (the background task does this periodically)."""
        async with self._lock:
            await self._flush()
            await self._refresh()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_refresh = loop.time()
        while True:
            await asyncio.sleep(self._flush_interval)
            try:
                async with self._lock:
                    await self._flush()
                    if loop.time() >= next_refresh:
                        await self._refresh()
                        next_refresh = loop.time() + self._refresh_interval
            except Exception as exc:  # never let the loop die; Redis errors are handled inside
                raise_if_cancelling(exc)
                self._log.error("latency_store_loop_error", error=repr(exc))
            raise_if_cancelling()  # redis-py may have swallowed a cancellation

    # -- background I/O --------------------------------------------------------

    def _pipeline(self, client: Redis | RedisCluster) -> Any:
        if isinstance(client, RedisCluster):
            return client.pipeline()
        return client.pipeline(transaction=False)

    async def _flush(self) -> None:
        if not self._pending:
            return
        batch, ops = self._pending, self._pending_ops
        self._pending, self._pending_ops = {}, 0
        client = self._client
        try:
            if client is None:
                raise ConnectionError("store not started")
            async with asyncio.timeout(self._op_timeout), self._pipeline(client) as pipe:
                for key, fields in batch.items():
                    for name, amount in fields.items():
                        pipe.hincrbyfloat(key, name, amount)
                    if self._key_ttl is not None:
                        pipe.expire(key, self._key_ttl)
                await pipe.execute()
        except Exception as exc:
            self.dropped_updates += ops
            self._unavailable("flush", exc)
            return
        self.flushes += 1
        self._available()

    async def _refresh(self) -> None:
        now = time.monotonic()
        for key in [k for k, t in self._interest.items() if now - t > self._interest_ttl]:
            del self._interest[key]
            self._view.pop(key, None)
        keys = list(self._interest)
        client = self._client
        if not keys or client is None:
            return
        try:
            async with asyncio.timeout(self._op_timeout), self._pipeline(client) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                results = await pipe.execute()
        except Exception as exc:
            self._unavailable("refresh", exc)
            return
        for key, raw in zip(keys, results, strict=True):
            fresh = {name.decode(): float(value) for name, value in raw.items()}
            pending = self._pending.get(key)
            if pending:
                _add(fresh, pending)  # increments made since the last flush
            self._view[key] = fresh
        self.refreshes += 1
        self._available()

    def _unavailable(self, op: str, exc: BaseException) -> None:
        raise_if_cancelling(exc)  # redis-py may turn a cancellation into ConnectionError
        if self._healthy:
            self._healthy = False
            self.outages += 1
            self._log.warning(
                "latency_store_unavailable",
                op=op,
                error=f"{type(exc).__name__}: {exc}",
                dropped_updates=self.dropped_updates,
            )

    def _available(self) -> None:
        if not self._healthy:
            self._healthy = True
            self._log.info("latency_store_recovered", dropped_updates=self.dropped_updates)
