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

`RedisSpendTracker` shares and persists them: ``{prefix}:spend:{subject}:{period}``
(a float counter) gets ``INCRBYFLOAT`` for the sum of the local adds since the
last flush, and ``EXPIRE`` (two days for a day, 62 for a month), pipelined by a
background task about every
`flush_interval_s` (0.5 s). INCRBYFLOAT returns the new total, which refreshes
the local cache for free. `spent` reads the cache, refreshed from Redis at most
every `refresh_s` (1 s, one bounded ``GET``; concurrent callers use the stale
value meanwhile), plus what this instance added and has not flushed yet. So a
budget is enforced across instances within about a second and a half.

Redis outage: adds keep accumulating locally (one total per key and day) and
are retried; `spent` answers from the last known total plus the local adds;
`degraded` is set with one warning per outage (see `Outage`). A flush that
timed out after Redis applied it is retried and may count twice; with the
fail-fast client that is rare, and it errs toward enforcing a budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from redis.asyncio import Redis

from gateway.routing.redisconn import Outage, connect
from gateway.streaming.accounting import RaceRecord
from gateway.tasks import cancel_and_wait, raise_if_cancelling

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


class RedisSpendTracker:
    """Daily spend shared across instances through Redis (see the module doc)."""

    def __init__(
        self,
        redis: Redis | str,
        *,
        prefix: str = "rg",
        flush_interval_s: float = 0.5,
        refresh_s: float = 1.0,
        op_timeout_s: float = 0.25,
        ttl_s: int = SPEND_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._owns_client = isinstance(redis, str)
        self._redis: Redis = connect(redis) if isinstance(redis, str) else redis
        self.prefix = prefix
        self.flush_interval_s = flush_interval_s
        self.refresh_s = refresh_s
        self.op_timeout_s = op_timeout_s
        self.ttl_s = ttl_s
        self._clock = clock
        self._wall = wall_clock
        self._pending: dict[tuple[str, str], float] = {}
        self._inflight: dict[tuple[str, str], float] = {}
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._periods = _Periods(wall_clock)
        self._task: asyncio.Task[None] | None = None
        self.outage = Outage("spend")

    @property
    def degraded(self) -> bool:
        return self.outage.degraded

    def key(self, subject: str, period: str) -> str:
        return f"{self.prefix}:spend:{subject}:{period}"

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
        unflushed adds."""
        periods = self._now()
        slot = (subject, periods.day if period == "day" else periods.month)
        cached = self._cache.get(slot)
        if cached is None:
            cached = self._cache[slot] = _Cached()
        now = self._clock()
        if cached.fetched_at is None or now - cached.fetched_at >= self.refresh_s:
            cached.fetched_at = now  # concurrent callers use the stale value meanwhile
            await self._fetch(slot, cached)
        return cached.total + self._inflight.get(slot, 0.0) + self._pending.get(slot, 0.0)

    async def over_budget(self, key_id: str, budget_usd: float) -> bool:
        return await self.spent(key_id) >= budget_usd

    async def _fetch(self, slot: tuple[str, str], cached: _Cached) -> None:
        seq = cached.seq
        try:
            async with asyncio.timeout(self.op_timeout_s):
                raw = await self._redis.get(self.key(*slot))
        except Exception as exc:
            self.outage.failed("spent", exc)
            return
        self.outage.ok("spent")
        if cached.seq == seq:  # no flush moved the total while we waited
            cached.total = float(raw) if raw is not None else 0.0

    # -- background flush -----------------------------------------------------

    async def flush(self) -> None:
        """Send the local adds (one INCRBYFLOAT per key and day)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        self._inflight = batch
        try:
            async with asyncio.timeout(self.op_timeout_s * 2):
                pipe = self._redis.pipeline(transaction=False)
                for (subject, period), usd in batch.items():
                    key = self.key(subject, period)
                    pipe.incrbyfloat(key, usd)
                    pipe.expire(key, self.ttl_s if len(period) == 8 else MONTH_TTL_S)
                results = await pipe.execute()
        except BaseException as exc:
            for slot, usd in batch.items():
                self._pending[slot] = self._pending.get(slot, 0.0) + usd
            self._inflight = {}
            if not isinstance(exc, Exception):
                raise
            self.outage.failed("flush", exc)
            return
        self._inflight = {}
        self.outage.ok("flush")
        now = self._clock()
        for slot, total in zip(batch, results[::2], strict=True):
            cached = self._cache.get(slot)
            if cached is None:
                if slot[1] not in (self._periods.day, self._periods.month):
                    continue
                cached = self._cache[slot] = _Cached()
            cached.total = float(total)
            cached.fetched_at = now
            cached.seq += 1

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
            with contextlib.suppress(Exception):
                await self.flush()  # best effort: the last adds (bounded by op_timeout_s)
        if self._owns_client:
            await self._redis.aclose()
