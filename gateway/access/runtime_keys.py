"""Runtime gateway keys (POST /admin/keys), held as SHA-256 digests, never as secrets.

`MemoryKeyStore` keeps them in this process (state.backend memory): they last until it
stops. `RedisKeyStore` shares them: one hash ``{prefix}:keys`` whose fields are key names
(JSON of the key's fields, the digest in hex) plus a version field ``~v`` that every change
increments in the same transaction. A background task reads the version every
`refresh_s`, and the whole hash only when it moved, so a key made or revoked on one
instance is in force on every instance within about `refresh_s`, and no request waits on
Redis for it. When Redis is away the last keys read stay in force (`degraded` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

from gateway.config.model import KeyConfig
from gateway.routing.redisconn import Outage, connect, log
from gateway.tasks import cancel_and_wait, raise_if_cancelling

VERSION_FIELD = "~v"  # cannot clash with a key name (names start with a letter or digit)


class StoreUnavailable(Exception):
    """The state backend did not answer an admin change."""


class RuntimeKeyStore(Protocol):
    @property
    def degraded(self) -> bool: ...

    def on_change(self, callback: Callable[[], None]) -> None: ...

    def off_change(self, callback: Callable[[], None]) -> None: ...

    def keys(self) -> list[KeyConfig]: ...

    async def create(self, key: KeyConfig) -> bool: ...

    async def revoke(self, name: str) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def to_json(key: KeyConfig) -> bytes:
    return orjson.dumps(
        {
            "digest": key.digest.hex(),
            "routes": key.routes,
            "rpm": key.rpm,
            "tpm": key.tpm,
            "daily": key.budget_daily_usd,
            "monthly": key.budget_monthly_usd,
            "pii": key.pii,
            "data_residency": key.data_residency,
            "direct": key.allow_direct_deployments,
            "metadata": key.metadata,
            "created_at": key.created_at,
        }
    )


def from_json(name: str, raw: bytes | str) -> KeyConfig:
    d: dict[str, Any] = orjson.loads(raw)
    return KeyConfig(
        name=name,
        digest=bytes.fromhex(d["digest"]),
        routes=tuple(d["routes"]) if d.get("routes") is not None else None,
        rpm=d.get("rpm"),
        tpm=d.get("tpm"),
        budget_daily_usd=d.get("daily"),
        budget_monthly_usd=d.get("monthly"),
        pii=dict(d.get("pii") or {}),
        data_residency=tuple(d["data_residency"]) if d.get("data_residency") else None,
        allow_direct_deployments=d.get("direct"),
        metadata=dict(d.get("metadata") or {}),
        runtime=True,
        created_at=d.get("created_at"),
    )


class _Listeners:
    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def off_change(self, callback: Callable[[], None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def _changed(self) -> None:
        for callback in self._callbacks:
            callback()


class MemoryKeyStore(_Listeners):
    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, KeyConfig] = {}

    @property
    def degraded(self) -> bool:
        return False

    def keys(self) -> list[KeyConfig]:
        return list(self._keys.values())

    async def create(self, key: KeyConfig) -> bool:
        if key.name in self._keys:
            return False
        self._keys[key.name] = key
        self._changed()
        return True

    async def revoke(self, name: str) -> bool:
        if self._keys.pop(name, None) is None:
            return False
        self._changed()
        return True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisKeyStore(_Listeners):
    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = "rg",
        refresh_s: float = 0.5,
        op_timeout_s: float = 0.5,
    ) -> None:
        super().__init__()
        self._owns_client = isinstance(redis, str)
        self._redis: Redis = connect(redis) if isinstance(redis, str) else redis
        self.hash_key = f"{prefix}:keys"
        self.refresh_s = refresh_s
        self.op_timeout_s = op_timeout_s
        self._keys: dict[str, KeyConfig] = {}
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.outage = Outage("runtime_keys")

    @property
    def degraded(self) -> bool:
        return self.outage.degraded

    def keys(self) -> list[KeyConfig]:
        return list(self._keys.values())

    async def refresh(self) -> None:
        """Read the version; read every key only when it moved since the last read."""
        try:
            async with asyncio.timeout(self.op_timeout_s):
                raw = await self._redis.hget(self.hash_key, VERSION_FIELD)
                version = int(raw) if raw is not None else 0
                if version == self._version:
                    self.outage.ok("refresh")
                    return
                entries = await self._redis.hgetall(self.hash_key)
        except Exception as exc:
            self.outage.failed("refresh", exc)
            return
        self.outage.ok("refresh")
        self._keys = _parse(entries)
        self._version = version
        self._changed()

    async def _change(self, build: Callable[[Any], None]) -> list[Any]:
        try:
            async with asyncio.timeout(self.op_timeout_s):
                pipe = self._redis.pipeline(transaction=True)
                build(pipe)
                pipe.hincrby(self.hash_key, VERSION_FIELD, 1)
                results: list[Any] = await pipe.execute()
        except Exception as exc:
            raise_if_cancelling(exc)
            raise StoreUnavailable(str(exc)) from None
        return results

    async def create(self, key: KeyConfig) -> bool:
        results = await self._change(lambda p: p.hsetnx(self.hash_key, key.name, to_json(key)))
        if not results[0]:
            return False
        self._keys[key.name] = key
        self._changed()
        return True

    async def revoke(self, name: str) -> bool:
        results = await self._change(lambda p: p.hdel(self.hash_key, name))
        if not results[0]:
            return False
        self._keys.pop(name, None)
        self._changed()
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self.refresh()
            raise_if_cancelling()  # redis-py may have swallowed a cancellation

    async def start(self) -> None:
        if self._task is None:
            await self.refresh()  # the keys are in force before the first request
            self._task = asyncio.get_running_loop().create_task(self._run(), name="keys-refresh")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._owns_client:
            with contextlib.suppress(Exception):
                await self._redis.aclose()


def _parse(entries: Mapping[bytes | str, bytes | str]) -> dict[str, KeyConfig]:
    out: dict[str, KeyConfig] = {}
    for field, raw in entries.items():
        name = field.decode() if isinstance(field, bytes) else field
        if name == VERSION_FIELD:
            continue
        try:
            out[name] = from_json(name, raw)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("bad runtime key entry ignored", key=name)
    return out
