"""Stored responses: memory (TTL, bound, owner) and Redis (shared, TTL, owner, outage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.config import ConfigError, parse_config
from gateway.responses_store import (
    MemoryResponseStore,
    RedisResponseStore,
    StoredResponse,
    StoreUnavailable,
)
from tests.redis_support import REDIS_URL, redis_with_prefix


def record(response_id: str, owner: str = "key-1") -> StoredResponse:
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    return StoredResponse(owner, {"id": response_id, "output": []}, conversation)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_memory_round_trip_expiry_and_owner() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl_s=60, max_stored=10, clock=clock)
    await store.put(record("resp_1"))
    got = await store.get("resp_1", "key-1")
    assert got == record("resp_1")
    assert await store.get("resp_1", "key-2") is None  # another key's: as if unknown
    assert not await store.delete("resp_1", "key-2")
    clock.now += 59.9
    assert await store.get("resp_1", "key-1") is not None
    clock.now += 0.2
    assert await store.get("resp_1", "key-1") is None
    assert not await store.delete("resp_1", "key-1")


async def test_memory_records_are_copies() -> None:
    store = MemoryResponseStore(ttl_s=60, max_stored=10)
    kept = record("resp_1")
    await store.put(kept)
    kept.conversation.append({"role": "user", "content": "changed later"})
    got = await store.get("resp_1", "key-1")
    assert got is not None and len(got.conversation) == 2


async def test_memory_is_bounded_oldest_first() -> None:
    store = MemoryResponseStore(ttl_s=60, max_stored=3)
    for i in range(5):
        await store.put(record(f"resp_{i}"))
    assert [await store.get(f"resp_{i}", "key-1") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    assert await store.delete("resp_4", "key-1")
    assert await store.get("resp_4", "key-1") is None


async def test_memory_is_bounded_in_bytes_too() -> None:
    size = len(record("resp_0").dumps())
    store = MemoryResponseStore(ttl_s=60, max_stored=100, max_stored_bytes=size * 2)
    for i in range(3):
        await store.put(record(f"resp_{i}"))
    assert await store.get("resp_0", "key-1") is None
    assert await store.get("resp_1", "key-1") is not None
    assert await store.get("resp_2", "key-1") is not None
    await store.put(record("resp_2"))  # replacing a record frees its old bytes first
    assert await store.get("resp_1", "key-1") is not None


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    async with redis_with_prefix("resp") as client_prefix:
        yield client_prefix


async def test_redis_shared_between_instances_with_ttl(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    a = RedisResponseStore(REDIS_URL, prefix=prefix, ttl_s=30)
    b = RedisResponseStore(REDIS_URL, prefix=prefix, ttl_s=30)
    try:
        await a.put(record("resp_x"))
        assert await b.get("resp_x", "key-1") == record("resp_x")
        assert await b.get("resp_x", "key-2") is None
        ttl_ms = await client.pttl(f"{prefix}:resp:resp_x")
        assert 0 < ttl_ms <= 30_000
        assert not await b.delete("resp_x", "key-2")
        assert await b.delete("resp_x", "key-1")
        assert await a.get("resp_x", "key-1") is None
    finally:
        await a.close()
        await b.close()


async def test_redis_record_expires(redis_prefix: tuple[Redis, str]) -> None:
    client, prefix = redis_prefix
    store = RedisResponseStore(client, prefix=prefix, ttl_s=0.05)
    await store.put(record("resp_y"))
    deadline = asyncio.get_running_loop().time() + 3
    while await store.get("resp_y", "key-1") is not None:  # Redis expires it, not us
        assert asyncio.get_running_loop().time() < deadline, "record never expired"
        await asyncio.sleep(0.02)
    assert await client.exists(f"{prefix}:resp:resp_y") == 0


async def test_redis_outage_is_an_error_not_a_miss() -> None:
    store = RedisResponseStore("redis://127.0.0.1:1/0", prefix="rg", ttl_s=30)
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("resp_z", "key-1")
        with pytest.raises(StoreUnavailable):
            await store.put(record("resp_z"))
    finally:
        await store.close()


def test_config_section() -> None:
    config = parse_config(
        {"responses": {"store_ttl_s": 60, "max_stored": 5, "store_by_default": True}}, env={}
    )
    assert config.responses.store_ttl_s == 60 and config.responses.max_stored == 5
    assert config.responses.store_by_default is True
    assert parse_config({}, env={}).responses.store_ttl_s == 3600
    with pytest.raises(ConfigError) as info:
        parse_config({"responses": {"store_ttl_s": 0, "max_stored": 0, "stor": 1}}, env={})
    text = str(info.value)
    assert "responses.store_ttl_s" in text and "responses.max_stored" in text
    assert "responses.stor" in text
