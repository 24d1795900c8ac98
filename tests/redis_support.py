"""Shared Redis test plumbing: a client on REDIS_URL with its own key prefix, cleaned up
afterwards (only its own keys; never FLUSHALL), and polling with a deadline."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from gateway.routing.redisconn import connect

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@asynccontextmanager
async def redis_with_prefix(tag: str) -> AsyncIterator[tuple[Redis, str]]:
    """A fail-fast client and a unique prefix; skips the test when Redis is unreachable."""
    client = connect(REDIS_URL)
    try:
        async with asyncio.timeout(2):
            await client.ping()
    except Exception as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc!r}")
    prefix = f"test-{tag}-{uuid.uuid4().hex[:12]}"
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=500)]
        keys += [key async for key in client.scan_iter(match=f"{{{prefix}:*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def eventually(check: Callable[[], object], within_s: float = 3.0) -> None:
    """Poll `check` until it is truthy; fail after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within_s}s")
        await asyncio.sleep(0.02)
