"""Fixed-window rate limits (requests and tokens per minute), exact across instances.

A *name* is what is limited; by convention ``dep:{deployment}`` for a
deployment's own `rpm`/`tpm` and ``key:{key id}`` for a gateway key (see
`deployment_limit`, `key_limit`). Names without a configured `Limit` are
never limited and cost no round-trip.

Windows are aligned to the epoch (`window_start = floor(now / window_s) *
window_s`), so the clock is wall-clock seconds (`time.time`), not monotonic:
every instance must agree on where a window starts.

`RedisRateLimiter` keeps one hash per name and window,
``{prefix:rl:name}:{window_start}`` with fields ``r`` (requests) and ``t``
(tokens), and checks and takes in one Lua script on that one key (one cluster
slot): a request is admitted only when both counters stay within their limits,
and a refused request takes nothing. Because the script is atomic the total
admitted over all instances is exactly the limit. The key expires a little after
its window. The call has the request path's Redis budget (`RedisGuard.request`,
a few ms); when Redis fails, hangs or is known to be away, this instance decides
on its own view until it is back: a `MemoryRateLimiter` starting from the last
counts Redis returned for the current window, and, for a window Redis never
answered for, this instance's share of the limit (the fraction of the last
window's admitted requests that were its own), so that N instances on their own
views admit about one limit in total rather than N.

`MemoryRateLimiter` is the same for ``state.backend: memory`` (one instance).

`ratelimit_headers` renders OpenAI's ``x-ratelimit-*`` headers with Go-style
durations (`go_duration`: "1s", "6m0s", "20ms").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from gateway.redislayer import RedisClient, RedisGuard, RedisLayer, RedisUnavailable, as_layer
from gateway.value_class import value_class


@value_class
class Limit:
    rpm: int | None = None  # requests per window (None: unlimited)
    tpm: int | None = None  # tokens per window (None: unlimited)


@value_class
class Decision:
    allowed: bool
    retry_after_s: float | None  # when refused: seconds until the window resets
    limit: int | None  # requests per window (None: not limited)
    remaining: int | None  # requests left in this window after this one
    reset_s: float  # seconds until the window resets
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    degraded: bool = False  # admitted without checking (the store was unavailable)


UNLIMITED = Decision(True, None, None, None, 0.0)


def deployment_limit(deployment: str) -> str:
    return f"dep:{deployment}"


def key_limit(key_id: str) -> str:
    return f"key:{key_id}"


class RateLimiter(Protocol):
    limits: dict[str, Limit]  # name -> limit; a config reload replaces it

    @property
    def degraded(self) -> bool: ...

    def limit_for(self, name: str) -> Limit | None: ...

    async def check_and_take(
        self, name: str, requests: int = 1, tokens: int = 0, limit: Limit | None = None
    ) -> Decision:
        """`limit` (a gateway key's own) stands in for the configured limit of `name`."""
        ...

    async def used(self, name: str) -> tuple[int, int] | None: ...

    async def close(self) -> None: ...


def _window(now: float, window_s: float) -> tuple[int, float]:
    """(window start, seconds until it ends)."""
    start = math.floor(now / window_s) * window_s
    return int(start), start + window_s - now


def _decision(
    allowed: bool, limit: Limit, used_r: int, used_t: int, reset_s: float, degraded: bool = False
) -> Decision:
    return Decision(
        allowed=allowed,
        retry_after_s=None if allowed else reset_s,
        limit=limit.rpm,
        remaining=None if limit.rpm is None else max(limit.rpm - used_r, 0),
        reset_s=reset_s,
        limit_tokens=limit.tpm,
        remaining_tokens=None if limit.tpm is None else max(limit.tpm - used_t, 0),
        degraded=degraded,
    )


def _fits(limit: Limit, used_r: int, used_t: int, requests: int, tokens: int) -> bool:
    if limit.rpm is not None and used_r + requests > limit.rpm:
        return False
    return limit.tpm is None or used_t + tokens <= limit.tpm


class MemoryRateLimiter:
    """In-process fixed windows (state.backend memory)."""

    def __init__(
        self,
        limits: Mapping[str, Limit],
        window_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = dict(limits)
        self.window_s = window_s
        self._clock = clock
        self._used: dict[str, tuple[int, int, int]] = {}  # name -> (window start, r, t)

    @property
    def degraded(self) -> bool:
        return False

    def limit_for(self, name: str) -> Limit | None:
        return self.limits.get(name)

    def seed(self, name: str, window_start: int, used_r: int, used_t: int) -> None:
        """What the shared counter said (even after the caller stopped waiting): this view
        never counts less, so the local decisions made meanwhile start from there."""
        window, r, t = self._used.get(name, (window_start, 0, 0))
        if window != window_start:
            r = t = 0
        self._used[name] = (window_start, max(r, used_r), max(t, used_t))

    async def check_and_take(
        self, name: str, requests: int = 1, tokens: int = 0, limit: Limit | None = None
    ) -> Decision:
        """`limit` stands in for the configured limit of `name` (a share of it, say)."""
        limit = limit or self.limits.get(name)
        if limit is None or (limit.rpm is None and limit.tpm is None):
            return UNLIMITED
        start, reset_s = _window(self._clock(), self.window_s)
        window, used_r, used_t = self._used.get(name, (start, 0, 0))
        if window != start:
            used_r = used_t = 0
        if not _fits(limit, used_r, used_t, requests, tokens):
            self._used[name] = (start, used_r, used_t)
            return _decision(False, limit, used_r, used_t, reset_s)
        used_r, used_t = used_r + requests, used_t + tokens
        self._used[name] = (start, used_r, used_t)
        return _decision(True, limit, used_r, used_t, reset_s)

    async def used(self, name: str) -> tuple[int, int]:
        """Requests and tokens taken in the current window (read-only)."""
        start, _ = _window(self._clock(), self.window_s)
        window, used_r, used_t = self._used.get(name, (start, 0, 0))
        return (used_r, used_t) if window == start else (0, 0)

    async def close(self) -> None:
        self._used.clear()


# KEYS[1] counter hash; ARGV: requests, tokens, rpm (-1: none), tpm (-1: none), ttl seconds.
# Returns {admitted 0|1, requests used, tokens used}; a refused request takes nothing.
_CHECK_AND_TAKE = """
local used = redis.call('HMGET', KEYS[1], 'r', 't')
local r = tonumber(used[1]) or 0
local t = tonumber(used[2]) or 0
local req = tonumber(ARGV[1])
local tok = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
if (rpm >= 0 and r + req > rpm) or (tpm >= 0 and t + tok > tpm) then
  return {0, r, t}
end
if req > 0 then r = redis.call('HINCRBY', KEYS[1], 'r', req) end
if tok > 0 then t = redis.call('HINCRBY', KEYS[1], 't', tok) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {1, r, t}
"""


MIN_SHARE_SAMPLE = 10  # requests counted in a window before our share of it is trusted


class RedisRateLimiter:
    """Fixed windows in Redis, exact across instances (see the module doc)."""

    def __init__(
        self,
        redis: RedisLayer | RedisClient | str,
        limits: Mapping[str, Limit],
        *,
        prefix: str = "rg",
        window_s: float = 60.0,
        op_timeout_s: float = 0.5,  # reads off the request path (`used`)
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._layer, self._owns_layer = as_layer(redis, prefix)
        self.op_timeout_s = op_timeout_s
        self.limits = dict(limits)
        self.prefix = prefix
        self.window_s = window_s
        self._clock = clock
        self.local = MemoryRateLimiter(limits, window_s, clock)  # while Redis is away
        self.local_decisions = 0
        self._seen: dict[str, int] = {}  # name -> the last window Redis told us about
        self._own: dict[str, tuple[int, int]] = {}  # name -> (window, our admitted requests)
        self.shares: dict[str, float] = {}  # name -> our share of its use (Redis's answers)

    @property
    def degraded(self) -> bool:
        return self._layer.degraded

    @property
    def outage(self) -> RedisGuard:
        """The Redis layer's breaker (outage count, failures, calls answered locally)."""
        return self._layer.guard

    def limit_for(self, name: str) -> Limit | None:
        return self.limits.get(name)

    def key(self, name: str, window_start: int) -> str:
        return f"{{{self.prefix}:rl:{name}}}:{window_start}"

    async def check_and_take(
        self, name: str, requests: int = 1, tokens: int = 0, limit: Limit | None = None
    ) -> Decision:
        limit = limit or self.limits.get(name)
        if limit is None or (limit.rpm is None and limit.tpm is None):
            return UNLIMITED
        start, reset_s = _window(self._clock(), self.window_s)
        ttl = math.ceil(self.window_s) + 5
        args = [
            requests,
            tokens,
            -1 if limit.rpm is None else limit.rpm,
            -1 if limit.tpm is None else limit.tpm,
            ttl,
        ]
        key = self.key(name, start)
        try:  # batched with other requests' calls (one round trip), within the budget
            admitted, used_r, used_t = await self._layer.request(
                lambda pipe: pipe.eval(_CHECK_AND_TAKE, 1, key, *args),
                "rate_limits",
                late=lambda reply: self._answered(name, start, requests, reply),
            )
        except RedisUnavailable:  # decide on this instance's own view meanwhile
            self.local_decisions += 1
            local_limit = limit if self._seen.get(name) == start else self._share_of(name, limit)
            local = await self.local.check_and_take(name, requests, tokens, local_limit)
            return replace(local, degraded=True)
        return _decision(bool(admitted), limit, int(used_r), int(used_t), reset_s)

    def _answered(self, name: str, start: int, requests: int, reply: Any) -> None:
        """What Redis said (even after the caller stopped waiting): the local view starts
        from its counts, and our share of the name's use is updated."""
        admitted, used_r, used_t = int(reply[0]), int(reply[1]), int(reply[2])
        self.local.seed(name, start, used_r, used_t)
        self._seen[name] = start
        window, own = self._own.get(name, (start, 0))
        own = (own if window == start else 0) + (requests if admitted else 0)
        self._own[name] = (start, own)
        if used_r >= MIN_SHARE_SAMPLE:  # early in a window one request says little
            self.shares[name] = min(own / used_r, 1.0)

    def _share_of(self, name: str, limit: Limit) -> Limit:
        """A window Redis never answered for: this instance's share of the limit, so that
        N instances on their own views admit about one limit in total, not N."""
        share = self.shares.get(name, 1.0)

        def part(n: int | None) -> int | None:
            return None if n is None else max(math.floor(n * share), 1)

        return Limit(part(limit.rpm), part(limit.tpm))

    async def used(self, name: str) -> tuple[int, int] | None:
        """Requests and tokens taken in the current window by every instance (read-only);
        None when Redis does not answer."""
        start, _ = _window(self._clock(), self.window_s)
        key, client = self.key(name, start), self._layer.client
        try:
            raw = await self._layer.guard.call(
                lambda: client.hmget(key, ["r", "t"]),
                timeout_s=self.op_timeout_s,
                part="rate_limits",
            )
        except RedisUnavailable:
            return None
        return int(raw[0] or 0), int(raw[1] or 0)

    async def close(self) -> None:
        if self._owns_layer:
            await self._layer.close()


# -- headers ---------------------------------------------------------------


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() at millisecond precision (rounded up): 20ms, 1s, 1.5s, 6m0s."""
    ms = max(math.ceil(round(seconds * 1000, 6)), 0)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    out = f"{secs}s"
    if hours or minutes:
        out = f"{minutes}m{out}"
    if hours:
        out = f"{hours}h{out}"
    return out


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` headers for a limited name (empty when not limited).

    Adds ``retry-after`` (whole seconds, rounded up) when the request was refused.
    """
    headers: dict[str, str] = {}
    if decision.limit is not None:
        headers["x-ratelimit-limit-requests"] = str(decision.limit)
        headers["x-ratelimit-remaining-requests"] = str(decision.remaining or 0)
        headers["x-ratelimit-reset-requests"] = go_duration(decision.reset_s)
    if decision.limit_tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(decision.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(decision.remaining_tokens or 0)
        headers["x-ratelimit-reset-tokens"] = go_duration(decision.reset_s)
    if not decision.allowed and decision.retry_after_s is not None:
        headers["retry-after"] = str(max(math.ceil(decision.retry_after_s), 1))
    return headers
