"""Deployments taken out of races until their regression suite passes or an admin releases
them (`auto_regress.policy: quarantine`).

The planner drops a quarantined deployment from a request's candidates unless that would
leave none (then it serves: a quarantine lowers trust, it does not make a route fail).
With `state.backend: redis` the set is the hash ``{prefix}:quarantine`` (deployment ->
JSON reason), read by every instance every `refresh_s`, so a quarantine decided on one
instance holds on all; a Redis outage keeps each instance's last view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.redislayer import RedisClient
from gateway.routing.redisconn import Outage, connect
from gateway.tasks import cancel_and_wait, raise_if_cancelling


class Quarantine:
    def __init__(
        self, redis: RedisClient | str | None = None, *, prefix: str = "rg", refresh_s: float = 2.0
    ) -> None:
        self._owns_client = isinstance(redis, str)
        self._redis: RedisClient | None = connect(redis) if isinstance(redis, str) else redis
        self.key = f"{prefix}:quarantine"
        self.refresh_s = refresh_s
        self._held: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.outage = Outage("quarantine")

    def __contains__(self, deployment: object) -> bool:
        return deployment in self._held

    def held(self) -> Mapping[str, Mapping[str, Any]]:
        """deployment -> why it is quarantined (this instance's view)."""
        return dict(self._held)

    async def add(self, deployment: str, reason: Mapping[str, Any]) -> None:
        self._held[deployment] = dict(reason)
        await self._write(lambda r: r.hset(self.key, deployment, orjson.dumps(dict(reason))))

    async def release(self, deployment: str) -> bool:
        """True when it was quarantined (on this instance's view or in the backend)."""
        was = self._held.pop(deployment, None) is not None
        removed = await self._write(lambda r: r.hdel(self.key, deployment))
        return was or bool(removed)

    async def refresh(self) -> None:
        """Take the shared set from the backend (no-op in memory)."""
        if self._redis is None:
            return
        try:
            raw = await self._redis.hgetall(self.key)
        except Exception as exc:
            self.outage.failed("refresh", exc)
            return
        self.outage.ok("refresh")
        held: dict[str, dict[str, Any]] = {}
        for name, value in raw.items():
            try:
                reason = orjson.loads(value)
            except orjson.JSONDecodeError:
                reason = {}
            held[name.decode() if isinstance(name, bytes) else str(name)] = reason
        self._held = held

    async def _write(self, op: Any) -> Any:
        if self._redis is None:
            return None
        try:
            result = await op(self._redis)
        except Exception as exc:
            self.outage.failed("write", exc)
            return None
        self.outage.ok("write")
        return result

    async def start(self) -> None:
        if self._redis is not None and self._task is None:
            await self.refresh()
            self._task = asyncio.create_task(self._loop(), name="quarantine-refresh")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()
            raise_if_cancelling()

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._redis is not None and self._owns_client:
            await self._redis.aclose()
