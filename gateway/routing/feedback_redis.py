"""The Redis-backed feedback store: served-request records and decayed ratings shared by
every gateway instance (see gateway.routing.feedback for the model).

Keys: ``{prefix}:fb:req:{request_id}`` (JSON: deployment, route, key, time; expires after
the feedback window), ``{prefix}:fb:rated:{request_id}`` (the request's current rating
and its time, swapped atomically with ``SET ... GET`` so that a second rating, on any
instance, replaces the first exactly once) and ``{prefix:fb}:ratings`` (the decayed sums).
Ratings go in numbered batches: the script applies a batch only when its number is above
the instance's high-water mark ``{prefix:fb}:seq:{instance}`` (same hash tag: one slot)
and raises it, so a batch resent after a lost reply counts once. Every call goes through
the process's Redis layer and its breaker. While Redis is away a rating is still taken,
and replaced, from this instance's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from gateway.redislayer import RedisClient, RedisGuard, RedisLayer, RedisUnavailable, as_layer
from gateway.routing.feedback import (
    DEFAULT_HALF_LIFE_S,
    DEFAULT_WINDOW_S,
    MAX_REQUESTS,
    DecayedSum,
    Served,
    _may_index,
    _RequestMemory,
    check_rating,
)
from gateway.routing.redisconn import log
from gateway.tasks import cancel_and_wait, raise_if_cancelling
from gateway.value_class import value_class

# KEYS[1] ratings hash, KEYS[2] the instance's high-water mark (one hash tag: one slot).
# ARGV: half-life s, ttl s, batch number, then (deployment, rating, wall time, weight)
# quadruples. Decays each deployment's (s, n) to the rating's time and adds it
# (DecayedSum.add). A batch resent after a lost reply (number not above the mark): no-op.
_ADD_RATINGS = """
local seq = tonumber(ARGV[3])
if seq <= tonumber(redis.call('GET', KEYS[2]) or '0') then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'EX', 7 * 86400)
local h = tonumber(ARGV[1])
local function decay(age)
  if h <= 0 then return 1 end
  return 2 ^ (-age / h)
end
for i = 4, #ARGV, 4 do
  local d = ARGV[i]
  local r = tonumber(ARGV[i + 1])
  local at = tonumber(ARGV[i + 2])
  local w = tonumber(ARGV[i + 3])
  local v = redis.call('HMGET', KEYS[1], d .. '|s', d .. '|n', d .. '|t')
  local s = (v[1] and tonumber(v[1])) or 0
  local n = (v[2] and tonumber(v[2])) or 0
  local t = (v[3] and tonumber(v[3])) or at
  if at >= t then
    local f = decay(at - t)
    s = s * f + r * w
    n = n * f + w
    t = at
  else
    local f = decay(t - at)
    s = s + r * w * f
    n = n + w * f
  end
  redis.call('HSET', KEYS[1], d .. '|s', string.format('%.17g', s),
    d .. '|n', string.format('%.17g', n), d .. '|t', string.format('%.17g', t))
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""


@value_class
class _Rating:
    deployment: str
    rating: float
    at: float
    weight: float = 1.0  # -1: a replaced rating taken back out


class RedisFeedbackStore:
    """Request ids and ratings shared across instances (see the module doc)."""

    def __init__(
        self,
        redis: RedisLayer | RedisClient | str,
        *,
        prefix: str = "rg",
        window_s: float = DEFAULT_WINDOW_S,
        ratings_ttl_s: int = 30 * 86_400,
        max_requests: int = MAX_REQUESTS,
        max_pending: int = 10_000,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        flush_interval_s: float = 0.2,
        refresh_s: float = 1.0,
        op_timeout_s: float = 0.5,
        instance_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._layer, self._owns_layer = as_layer(redis, prefix)
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._seq = 0
        self._unsent_seq = 0  # number of the ratings batch being sent (or resent)
        self.prefix = prefix
        self.window_s = window_s
        self.ttl_s = int(window_s) + 60  # an entry is of use only within the window
        self.ratings_ttl_s = ratings_ttl_s
        self.max_pending = max(max_pending, 1)
        self.half_life_s = half_life_s
        self.flush_interval_s = flush_interval_s
        self.refresh_s = refresh_s
        self.op_timeout_s = op_timeout_s
        self._clock = clock
        self._wall = wall_clock
        self._requests = _RequestMemory(max_requests)
        self._rated: OrderedDict[str, tuple[float, float]] = OrderedDict()  # id -> (rating, at)
        self._pending_requests: OrderedDict[str, Served] = OrderedDict()
        self._pending_ratings: list[_Rating] = []
        self._inflight_ratings: list[_Rating] = []
        self._snapshot: dict[str, DecayedSum] = {}
        self._refreshed_at: float | None = None
        self._script = self._layer.client.register_script(_ADD_RATINGS)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def degraded(self) -> bool:
        return self._layer.degraded

    @property
    def outage(self) -> RedisGuard:
        return self._layer.guard

    def request_key(self, request_id: str) -> str:
        return f"{self.prefix}:fb:req:{request_id}"

    def rated_key(self, request_id: str) -> str:
        return f"{self.prefix}:fb:rated:{request_id}"

    @property
    def ratings_key(self) -> str:
        return f"{{{self.prefix}:fb}}:ratings"

    @property
    def mark_key(self) -> str:
        return f"{{{self.prefix}:fb}}:seq:{self.instance_id}"

    async def _call(self, op: Callable[[], Any]) -> Any:
        return await self._layer.guard.call(op, timeout_s=self.op_timeout_s, part="feedback")

    # -- request path (no awaits) -------------------------------------------

    def remember(
        self, request_id: str, deployment: str, route: str = "", key_id: str = "anonymous"
    ) -> None:
        if not _may_index(self._requests.get(request_id), key_id):
            return
        served = Served(deployment, route, key_id, self._wall())
        self._requests.put(request_id, served)
        self._pending_requests[request_id] = served
        while len(self._pending_requests) > self.max_pending:
            self._pending_requests.popitem(last=False)

    # -- feedback endpoint --------------------------------------------------

    async def lookup(self, request_id: str) -> Served | None:
        """Where `request_id` was served: local memory first, then Redis (bounded wait)."""
        served = self._requests.get(request_id)
        if served is not None:
            return served
        key = self.request_key(request_id)
        try:
            raw = await self._call(lambda: self._layer.client.get(key))
        except RedisUnavailable:
            return None
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
            at = data.get("t")
            served = Served(
                str(data["d"]),
                str(data.get("r", "")),
                str(data.get("k", "anonymous")),
                float(at) if at is not None else None,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            log.warning("bad feedback request entry ignored", key=self.request_key(request_id))
            return None
        self._requests.put(request_id, served)
        return served

    async def rate(self, request_id: str, rating: float, key_id: str | None = None) -> str | None:
        now = self._wall()
        served = check_rating(await self.lookup(request_id), key_id, now, self.window_s)
        if served is None:
            return None
        value = float(rating)
        previous = self._rated.pop(request_id, None)
        key, client = self.rated_key(request_id), self._layer.client
        try:  # swap in the new rating; the old one (from any instance) comes back
            old = await self._call(
                lambda: client.set(key, f"{value!r}|{now!r}", ex=self.ttl_s, get=True)
            )
        except RedisUnavailable:  # Redis away: this instance's memory of the rating
            pass
        else:
            previous = _parse_rated(old if not isinstance(old, bool) else None)
        self._rated[request_id] = (value, now)
        while len(self._rated) > self._requests.max_requests:
            self._rated.popitem(last=False)
        if previous is not None:  # once per request: take the replaced rating back out
            self._pending_ratings.append(_Rating(served.deployment, *previous, -1.0))
        self._pending_ratings.append(_Rating(served.deployment, value, now))
        if len(self._pending_ratings) > self.max_pending:
            del self._pending_ratings[: len(self._pending_ratings) - self.max_pending]
        self._wake.set()
        return served.deployment

    def ratings(self) -> dict[str, tuple[float, float]]:
        merged = {name: DecayedSum(d.s, d.n, d.t) for name, d in self._snapshot.items()}
        for item in (*self._inflight_ratings, *self._pending_ratings):
            merged.setdefault(item.deployment, DecayedSum()).add(
                item.rating, item.at, self.half_life_s, item.weight
            )
        now = self._wall()
        return {name: d.at(now, self.half_life_s) for name, d in merged.items()}

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="feedback-flush")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if task is not None:
            if self._pending_requests or self._pending_ratings:
                await self.flush()  # best effort, bounded by op_timeout_s
        if self._owns_layer:
            await self._layer.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
            raise_if_cancelling()  # redis-py may have swallowed a cancellation

    async def flush(self) -> None:
        """Write pending request ids and ratings, refresh the ratings snapshot if due.

        Ratings that were sent but not acknowledged stay in flight and are resent as the
        same batch (same number) until Redis answers: each counts exactly once."""
        requests, self._pending_requests = self._pending_requests, OrderedDict()
        if not self._inflight_ratings and self._pending_ratings:
            self._seq += 1
            self._unsent_seq = self._seq
            self._inflight_ratings, self._pending_ratings = self._pending_ratings, []
        ratings = self._inflight_ratings
        now = self._clock()
        refresh = (
            bool(ratings)
            or self._refreshed_at is None
            or now - self._refreshed_at >= self.refresh_s
        )
        if not requests and not refresh:
            return
        try:
            results = await self._call(lambda: self._write(requests, ratings, refresh))
        except asyncio.CancelledError:
            self._restore(requests)
            raise
        except RedisUnavailable:
            self._restore(requests)
            return
        self._inflight_ratings = []
        if refresh:
            self._snapshot = _parse_ratings(results[-1])
            self._refreshed_at = now

    async def _write(
        self, requests: Mapping[str, Served], ratings: list[_Rating], refresh: bool
    ) -> list[Any]:
        if ratings:
            args: list[str | float] = [self.half_life_s, self.ratings_ttl_s, self._unsent_seq]
            for item in ratings:
                args += [item.deployment, repr(item.rating), repr(item.at), item.weight]
            await self._script(keys=[self.ratings_key, self.mark_key], args=args)
        pipe = self._layer.pipeline()
        for request_id, served in requests.items():
            value = orjson.dumps(
                {"d": served.deployment, "r": served.route, "k": served.key_id, "t": served.at}
            )
            # NX: the first request under an id keeps it (ids may be client-chosen)
            pipe.set(self.request_key(request_id), value, ex=self.ttl_s, nx=True)
        if refresh:
            pipe.hgetall(self.ratings_key)
        return list(await pipe.execute()) if len(pipe) else []

    def _restore(self, requests: Mapping[str, Served]) -> None:
        for request_id, served in requests.items():
            self._pending_requests.setdefault(request_id, served)
        while len(self._pending_requests) > self.max_pending:
            self._pending_requests.popitem(last=False)


def _parse_rated(raw: bytes | str | None) -> tuple[float, float] | None:
    """A stored ``rating|wall time`` (None when absent or unreadable)."""
    if raw is None:
        return None
    rating, _, at = (raw.decode() if isinstance(raw, bytes) else raw).partition("|")
    try:
        return float(rating), float(at)
    except ValueError:
        return None


def _parse_ratings(raw: Mapping[bytes | str, bytes | str]) -> dict[str, DecayedSum]:
    out: dict[str, DecayedSum] = {}
    for key, value in raw.items():
        field = key.decode() if isinstance(key, bytes) else key
        name, sep, part = field.rpartition("|")
        if not sep or part not in ("s", "n", "t"):
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        decayed = out.setdefault(name, DecayedSum())
        if part == "s":
            decayed.s = number
        elif part == "n":
            decayed.n = number
        else:
            decayed.t = number
    return {name: d for name, d in out.items() if d.t is not None}
