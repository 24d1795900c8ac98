"""Spend (USD) per gateway key and per deployment, per UTC day and month; the budget check.

A *subject* is what spends: a key id, or ``dep:{deployment}`` (`deployment_subject`).
`add(subject, usd)` is a cheap local accumulate on the request path, counted in both
the day and the month; `add_record(key_id, record)` adds every attempt's cost (losers'
waste included: a cancelled attempt was billed too) to the key and to each attempt's
deployment. `spent(subject, period)` is this day's or month's spend and
`over_budget(key_id, budget_usd)` is ``spent(key_id, "day") >= budget_usd``.

The day (``YYYYMMDD``) and month (``YYYYMM``) are those of the injected wall clock
(`time.time`) in UTC, so every instance agrees where they start; spend recorded at
23:59:59 counts for that day even when it is flushed after midnight.

`MemorySpendTracker` keeps the current and previous periods in process
(state.backend memory; gone at a restart).

`RedisSpendTracker` shares and persists them: ``{prefix:spend}:{subject}:{period}``
(a float counter; every spend key shares the ``{prefix:spend}`` hash tag, so one
script can change them together on a cluster). A background task sends the local adds
about every `flush_interval_s` (0.5 s) as one *batch*: a script that adds each total
with ``INCRBYFLOAT`` (and ``EXPIRE``: two days for a day, 62 for a month) only if the
batch's sequence number is above the instance's high-water mark
``{prefix:spend}:seq:{instance}``, which it raises in the same script. A batch whose
reply was lost (a timeout after Redis applied it) is resent as is, with the same
number, until Redis answers: it counts exactly once. Adds made meanwhile wait for the
next batch. The script returns the new totals, which refresh the local cache for free.
`spent` reads the cache, refreshed from Redis at most every `refresh_s` (1 s, one
``GET`` within the request path's Redis budget; concurrent callers use the stale value
meanwhile), plus what this instance added and has not sent yet. So a budget is enforced
across instances within about a second and a half.

Redis outage (down, hung, or the layer's breaker open): adds keep accumulating
locally; `spent` answers at once from the last known total plus the local adds;
`degraded` follows the layer's breaker.

At shutdown `close()` sends what is left: the last batch gets the whole drain budget
(`drain_s`, 3 s, well inside the supervisor's margin before SIGKILL), since a Redis
slow to answer while a machine stops is busy, not away; tries stop early when the
breaker opens. Spend still unsent then is logged (``spend not shared at close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import structlog

from gateway.redislayer import RedisClient, RedisGuard, RedisLayer, RedisUnavailable, as_layer
from gateway.streaming.accounting import RaceRecord
from gateway.tasks import cancel_and_wait, raise_if_cancelling

log = structlog.get_logger("gateway.spend")

SPEND_TTL_S = 2 * 86_400
MONTH_TTL_S = 62 * 86_400
Period = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")


def utc_day(wall: float) -> str:
    """``YYYYMMDD`` of the UTC day containing wall time `wall`."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y%m%d")


def utc_month(wall: float) -> str:
    """``YYYYMM`` of the UTC month containing wall time `wall`."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y%m")


def deployment_subject(deployment: str) -> str:
    """The spend subject of a deployment (key ids cannot contain ':')."""
    return f"dep:{deployment}"


class _Periods:
    """The current day and month of a wall clock, and which slots are still worth keeping
    (the current and previous ones): a slot is (subject, ``YYYYMMDD`` or ``YYYYMM``)."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall
        self.day = ""
        self.month = ""

    def now(self) -> bool:
        """Update the current periods; True when they changed (time to prune)."""
        wall = self._wall()
        day = utc_day(wall)
        if day == self.day:
            return False
        self.day, self.month = day, utc_month(wall)
        return True

    def keep(self) -> set[str]:
        wall = self._wall()
        first = datetime.fromtimestamp(wall, UTC).replace(day=1).timestamp()
        return {self.day, utc_day(wall - 86_400), self.month, utc_month(first - 86_400)}


def record_cost(record: RaceRecord) -> float:
    """Every attempt's cost in USD (winner and losers)."""
    return sum(attempt.cost_usd for attempt in record.attempts)


class SpendTracker(Protocol):
    @property
    def degraded(self) -> bool: ...

    def add(self, subject: str, usd: float) -> None: ...

    def add_record(self, key_id: str, record: RaceRecord) -> None: ...

    async def spent(self, subject: str, period: Period = "day") -> float: ...

    async def over_budget(self, key_id: str, budget_usd: float) -> bool: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def add_attempts(tracker: SpendTracker, key_id: str, record: RaceRecord) -> None:
    """Every attempt's cost, to the key and to the attempt's deployment."""
    tracker.add(key_id, record_cost(record))
    for attempt in record.attempts:
        tracker.add(deployment_subject(attempt.deployment), attempt.cost_usd)


class MemorySpendTracker:
    """In-process spend (one instance)."""

    def __init__(self, *, wall_clock: Callable[[], float] = time.time) -> None:
        self._periods = _Periods(wall_clock)
        self._spent: dict[tuple[str, str], float] = {}

    @property
    def degraded(self) -> bool:
        return False

    def _now(self) -> _Periods:
        periods = self._periods
        if periods.now():
            keep = periods.keep()
            self._spent = {k: v for k, v in self._spent.items() if k[1] in keep}
        return periods

    def add(self, subject: str, usd: float) -> None:
        if not usd:
            return
        periods = self._now()
        for slot in ((subject, periods.day), (subject, periods.month)):
            self._spent[slot] = self._spent.get(slot, 0.0) + usd

    def add_record(self, key_id: str, record: RaceRecord) -> None:
        add_attempts(self, key_id, record)

    async def spent(self, subject: str, period: Period = "day") -> float:
        periods = self._now()
        return self._spent.get((subject, periods.day if period == "day" else periods.month), 0.0)

    async def over_budget(self, key_id: str, budget_usd: float) -> bool:
        return await self.spent(key_id) >= budget_usd

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._spent.clear()


@dataclass(slots=True)
class _Cached:
    total: float = 0.0  # last total seen in Redis (includes flushed local adds)
    fetched_at: float | None = None  # monotonic clock reading of the last fetch (or try)
    seq: int = 0  # bumped by every flush that updates `total`


# KEYS[1] the instance's high-water mark, KEYS[2..] counters (one hash tag: one slot).
# ARGV[1] batch sequence number, ARGV[2] mark ttl, then (amount, ttl) per counter.
# Applies the batch only when its number is above the mark; returns the counters' totals.
_ADD_BATCH = """
local seq = tonumber(ARGV[1])
local fresh = seq > tonumber(redis.call('GET', KEYS[1]) or '0')
if fresh then redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2])) end
local out = {}
for i = 2, #KEYS do
  local total
  if fresh then
    total = redis.call('INCRBYFLOAT', KEYS[i], ARGV[2 * i - 1])
    redis.call('EXPIRE', KEYS[i], tonumber(ARGV[2 * i]))
  else
    total = redis.call('GET', KEYS[i]) or '0'
  end
  out[#out + 1] = total
end
return out
"""
MARK_TTL_S = 7 * 86_400  # a batch is resent until it lands; an instance's mark outlives that


class RedisSpendTracker:
    """Spend shared across instances through Redis (see the module doc)."""

    def __init__(
        self,
        redis: RedisLayer | RedisClient | str,
        *,
        prefix: str = "rg",
        flush_interval_s: float = 0.5,
        refresh_s: float = 1.0,
        op_timeout_s: float = 0.5,
        drain_s: float = 3.0,
        ttl_s: int = SPEND_TTL_S,
        instance_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._layer, self._owns_layer = as_layer(redis, prefix)
        self.prefix = prefix
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.flush_interval_s = flush_interval_s
        self.refresh_s = refresh_s
        self.op_timeout_s = op_timeout_s
        self.drain_s = drain_s  # how long close() may spend sending the last adds
        self.ttl_s = ttl_s
        self._clock = clock
        self._wall = wall_clock
        self._script = self._layer.client.register_script(_ADD_BATCH)
        self._pending: dict[tuple[str, str], float] = {}
        self._unsent: dict[tuple[str, str], float] = {}  # the batch being sent (or resent)
        self._unsent_seq = 0
        self._seq = 0
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._periods = _Periods(wall_clock)
        self._task: asyncio.Task[None] | None = None
        self.resent = 0  # batches sent again after a failure (counted once all the same)

    @property
    def degraded(self) -> bool:
        return self._layer.degraded

    @property
    def outage(self) -> RedisGuard:
        """The Redis layer's breaker (outage count, failures, calls answered locally)."""
        return self._layer.guard

    def key(self, subject: str, period: str) -> str:
        return f"{{{self.prefix}:spend}}:{subject}:{period}"

    @property
    def mark_key(self) -> str:
        return f"{{{self.prefix}:spend}}:seq:{self.instance_id}"

    def _now(self) -> _Periods:
        periods = self._periods
        if periods.now():
            keep = periods.keep()
            self._cache = {k: v for k, v in self._cache.items() if k[1] in keep}
        return periods

    # -- request path ---------------------------------------------------------

    def add(self, subject: str, usd: float) -> None:
        if not usd:
            return
        periods = self._now()
        for slot in ((subject, periods.day), (subject, periods.month)):
            self._pending[slot] = self._pending.get(slot, 0.0) + usd

    def add_record(self, key_id: str, record: RaceRecord) -> None:
        add_attempts(self, key_id, record)

    async def spent(self, subject: str, period: Period = "day") -> float:
        """The day's or month's spend: the shared total (at most ~`refresh_s` old) plus
        unsent adds."""
        periods = self._now()
        slot = (subject, periods.day if period == "day" else periods.month)
        cached = self._cache.get(slot)
        if cached is None:
            cached = self._cache[slot] = _Cached()
        now = self._clock()
        if cached.fetched_at is None or now - cached.fetched_at >= self.refresh_s:
            cached.fetched_at = now  # concurrent callers use the stale value meanwhile
            await self._fetch(slot, cached)
        return cached.total + self._unsent.get(slot, 0.0) + self._pending.get(slot, 0.0)

    async def over_budget(self, key_id: str, budget_usd: float) -> bool:
        return await self.spent(key_id) >= budget_usd

    async def _fetch(self, slot: tuple[str, str], cached: _Cached) -> None:
        seq = cached.seq
        key = self.key(*slot)

        def learn(raw: Any) -> None:
            if cached.seq == seq and not self._unsent:  # no batch moved or may move the total
                cached.total = float(raw) if raw is not None else 0.0

        # A reply later than the request's budget (a busy Redis) still sets the total for
        # the next requests: the one that asked went on without it (fail-open), and
        # without this every request until the next refresh would see the old total
        # (after a restart: nothing spent).
        with contextlib.suppress(RedisUnavailable):
            learn(await self._layer.request(lambda pipe: pipe.get(key), "spend", late=learn))

    # -- background flush -----------------------------------------------------

    async def flush(self, timeout_s: float | None = None) -> bool:
        """Send the unsent batch again, or the local adds as a new batch (exactly once).
        True when nothing is left unsent."""
        if not self._unsent:
            if not self._pending:
                return True
            self._seq += 1
            self._unsent, self._unsent_seq, self._pending = self._pending, self._seq, {}
        else:
            self.resent += 1
        batch = self._unsent
        keys = [self.mark_key, *(self.key(*slot) for slot in batch)]
        args: list[float | int] = [self._unsent_seq, MARK_TTL_S]
        for (_, period), usd in batch.items():
            args += [usd, self.ttl_s if len(period) == 8 else MONTH_TTL_S]
        try:
            totals = await self._layer.guard.call(
                lambda: self._script(keys=keys, args=args),
                timeout_s=self.op_timeout_s if timeout_s is None else timeout_s,
                part="spend",
            )
        except RedisUnavailable:
            return False  # resent as is by the next flush
        self._unsent = {}
        now = self._clock()
        for slot, total in zip(batch, totals, strict=True):
            cached = self._cache.get(slot)
            if cached is None:
                if slot[1] not in (self._periods.day, self._periods.month):
                    continue
                cached = self._cache[slot] = _Cached()
            cached.total = float(total)
            cached.fetched_at = now
            cached.seq += 1
        return not self._pending

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()
            raise_if_cancelling()  # redis-py may have swallowed a cancellation

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-flush")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if task is not None:
            await self._drain()
        if self._owns_layer:
            await self._layer.close()

    async def _drain(self) -> None:
        """The last adds, sent before the process goes: within `drain_s` in all, each try
        with that whole budget (a busy Redis at shutdown is slow, not away), while the
        breaker stays closed. What is still unsent is logged, not silently lost."""
        deadline = self._clock() + self.drain_s
        while (left := deadline - self._clock()) > 0:
            with contextlib.suppress(Exception):
                if await self.flush(timeout_s=max(left, self.op_timeout_s)):
                    return
            if self._layer.degraded:
                break
            await asyncio.sleep(min(0.05, max(deadline - self._clock(), 0)))  # a quick error
        unsent = sum(self._unsent.values()) + sum(self._pending.values())
        if unsent:
            # each USD is counted twice (day and month)
            log.warning(
                "spend not shared at close", usd=round(unsent / 2, 6), redis=self._layer.guard.where
            )
