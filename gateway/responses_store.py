"""Stored responses for the Responses door: `store: true` keeps one, `previous_response_id`
continues it, `GET` / `DELETE /v1/responses/{id}` read and remove it.

A record holds the Response object (for GET) and the conversation as chat messages
(history, this turn's input, its output), so a later turn only prepends it. Records expire
after `responses.store_ttl_s` (default one hour) and belong to the gateway key that made
them: another key gets the same 404 as an unknown id.

`MemoryResponseStore` keeps records in process (state.backend memory), at most
`max_stored` of them and `max_stored_bytes` of JSON (the oldest go first).
`RedisResponseStore` shares them across instances: ``{prefix}:resp:{id}`` holds the
record as JSON, written with ``SET ... PX``. Unlike the routing state, a stored
conversation cannot be rebuilt from a local view, so a Redis failure is an error
(`StoreUnavailable`, a 503 to the client), never a silent 404; while the Redis
layer's breaker is open that error comes at once instead of after a timeout.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import orjson

from gateway.redislayer import RedisClient, RedisLayer, RedisUnavailable, as_layer
from gateway.value_class import value_class

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The shared store could not be read or written (Redis away)."""


@value_class
class StoredResponse:
    owner: str  # the gateway key id that created it
    response: dict[str, Any]  # the Response object
    conversation: list[dict[str, Any]]  # chat messages, this turn's output included

    def dumps(self) -> bytes:
        return orjson.dumps(
            {"owner": self.owner, "response": self.response, "conversation": self.conversation}
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> StoredResponse:
        data = orjson.loads(raw)
        return cls(data["owner"], data["response"], data["conversation"])


class ResponseStore(Protocol):
    async def put(self, record: StoredResponse) -> None: ...

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The record, or None when it is unknown, expired or another key's."""
        ...

    async def delete(self, response_id: str, owner: str) -> bool: ...

    async def close(self) -> None: ...


class MemoryResponseStore:
    """Records in process, as JSON bytes (a caller cannot change a stored record)."""

    def __init__(
        self,
        ttl_s: float,
        max_stored: int,
        max_stored_bytes: int = 256 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_stored = max_stored
        self.max_stored_bytes = max_stored_bytes
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, str, bytes]] = OrderedDict()
        self._bytes = 0

    async def put(self, record: StoredResponse) -> None:
        response_id = record.response["id"]
        self._drop(response_id)
        raw = record.dumps()
        self._records[response_id] = (self._clock() + self.ttl_s, record.owner, raw)
        self._bytes += len(raw)
        while len(self._records) > self.max_stored or self._bytes > self.max_stored_bytes:
            self._drop(next(iter(self._records)))

    def _drop(self, response_id: str) -> None:
        entry = self._records.pop(response_id, None)
        if entry is not None:
            self._bytes -= len(entry[2])

    def _live(self, response_id: str, owner: str) -> bytes | None:
        entry = self._records.get(response_id)
        if entry is None:
            return None
        expires, stored_owner, raw = entry
        if expires <= self._clock():
            self._drop(response_id)
            return None
        return raw if stored_owner == owner else None

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        raw = self._live(response_id, owner)
        return StoredResponse.loads(raw) if raw is not None else None

    async def delete(self, response_id: str, owner: str) -> bool:
        if self._live(response_id, owner) is None:
            return False
        self._drop(response_id)
        return True

    async def close(self) -> None:
        self._records.clear()
        self._bytes = 0


class RedisResponseStore:
    """Records shared through Redis with a TTL (see the module doc)."""

    def __init__(
        self,
        redis: RedisLayer | RedisClient | str,
        *,
        prefix: str,
        ttl_s: float,
        op_timeout_s: float = 1.0,
    ) -> None:
        self._layer, self._owns_layer = as_layer(redis, prefix)
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.op_timeout_s = op_timeout_s

    def key(self, response_id: str) -> str:
        return f"{self.prefix}:resp:{response_id}"

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        """`op` within its budget; fails at once while the Redis layer's breaker is open."""
        try:
            return await self._layer.guard.call(op, timeout_s=self.op_timeout_s, part="responses")
        except RedisUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def put(self, record: StoredResponse) -> None:
        key, raw = self.key(record.response["id"]), record.dumps()
        await self._call(lambda: self._layer.client.set(key, raw, px=self.ttl_ms))

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        key = self.key(response_id)
        raw = await self._call(lambda: self._layer.client.get(key))
        if raw is None:
            return None
        record = StoredResponse.loads(raw)
        return record if record.owner == owner else None

    async def delete(self, response_id: str, owner: str) -> bool:
        if await self.get(response_id, owner) is None:
            return False
        key = self.key(response_id)
        return bool(await self._call(lambda: self._layer.client.delete(key)))

    async def close(self) -> None:
        if self._owns_layer:
            await self._layer.close()
