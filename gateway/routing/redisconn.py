"""Redis plumbing kept for components written before the shared layer (`gateway.redislayer`):
a fail-fast single-node client and per-component outage bookkeeping.

New code takes a `RedisLayer` (one client per process for single node, Sentinel or
Cluster, and one breaker); `connect` and `Outage` remain for callers that have not moved.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.asyncio import Redis

from gateway.redislayer import RedisSettings, describe, make_client
from gateway.tasks import raise_if_cancelling

__all__ = ["Outage", "connect", "describe", "log"]

log = structlog.get_logger("gateway.routing")


def connect(url: str, **kwargs: Any) -> Redis:
    """A single-node client for `url` that fails fast (no retries, short timeouts)."""
    if kwargs:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        options: dict[str, Any] = {
            "socket_connect_timeout": 0.5,
            "socket_timeout": 1.0,
            "retry": Retry(NoBackoff(), 0),
        }
        options.update(kwargs)
        return Redis.from_url(url, **options)
    client = make_client(RedisSettings.from_url(url))
    assert isinstance(client, Redis)
    return client


class Outage:
    """Degraded flag over several components; logs once when an outage starts and ends."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._failing: set[str] = set()
        self.outages = 0  # outages seen since start (for a counter)

    @property
    def degraded(self) -> bool:
        return bool(self._failing)

    def failed(self, component: str, exc: BaseException) -> None:
        """Note a failed Redis call; a cancellation the client disguised as an error is
        re-raised, not taken for an outage."""
        raise_if_cancelling(exc)
        if not self._failing:
            self.outages += 1
            log.warning(
                "redis unavailable, using the local view",
                component=self.what,
                part=component,
                error=describe(exc),
            )
        self._failing.add(component)

    def ok(self, component: str) -> None:
        if component in self._failing:
            self._failing.discard(component)
            if not self._failing:
                log.info("redis reachable again", component=self.what)
