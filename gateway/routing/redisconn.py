"""Redis plumbing shared by the routing layer: a client that fails fast, and outage bookkeeping.

Routing state in Redis is an optimisation: when Redis is away every instance
falls back to its own view. So the clients made here do not retry (a retry
could apply a rate-limit take twice) and time out quickly, and `Outage`
turns failures into one flag for a metric and one log line per outage.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.tasks import raise_if_cancelling

log = structlog.get_logger("gateway.routing")

CONNECT_TIMEOUT_S = 0.5
SOCKET_TIMEOUT_S = 1.0


def connect(url: str, **kwargs: Any) -> Redis:
    """A client for `url` that fails fast (no retries, short timeouts); connects lazily."""
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(NoBackoff(), 0),
    }
    options.update(kwargs)
    return Redis.from_url(url, **options)


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
