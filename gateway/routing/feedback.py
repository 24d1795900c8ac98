"""User feedback: which deployment served a request, and ratings per deployment.

`remember(request_id, deployment, route)` is called when a request finishes
(or through `on_race_end`, a `RaceObserver`: the winner is remembered). It is
a cheap local append; `rate(request_id, rating)` later resolves the id to the
deployment (None for an unknown or forgotten id) and adds the rating. The
handler validates the rating (-1..1); nothing is checked here.

Ratings are kept per deployment as exponentially decayed sums: every rating
has weight ``2 ** (-age / half_life_s)``, so ``ratings()`` returns
``{deployment: (mean, count)}`` where mean = decayed sum / decayed count
(within -1..1 for valid ratings) and count is the decayed number of ratings
(a float). A decayed sum is stored as ``(s, n, t)``: sum and count as of wall
time ``t``.

`MemoryFeedbackStore` keeps the last `max_requests` (100k) request ids in an
``OrderedDict`` (oldest forgotten first).

`RedisFeedbackStore` shares both across instances:

- ``{prefix}:fb:req:{request_id}``: JSON ``{"d": deployment, "r": route}``
  with a TTL (`ttl_s`, 7 days), written in batches by a background flush
  (every `flush_interval_s`); the instance that served the request also keeps
  it in a local bounded ``OrderedDict``, so rating it there needs no Redis.
- ``{prefix}:fb:ratings`` (hash): fields ``{deployment}|s``, ``|n`` and
  ``|t`` per deployment. A Lua script decays and adds atomically (plain
  ``HINCRBYFLOAT`` cannot decay a sum in place); pending ratings go in one
  script call per flush, followed by an ``HGETALL`` that refreshes the local
  snapshot (at least every `refresh_s`).

``ratings()`` is synchronous (the weight worker calls it): the last shared
snapshot plus this instance's ratings not yet acknowledged by Redis. On a Redis
failure the pending writes are kept (bounded) and retried, `degraded` is set
(one warning per outage, see `Outage`), and ``ratings()`` keeps answering from
the last snapshot plus the local ratings. A rating whose id is known only to
another instance cannot be resolved while Redis is away (``rate`` returns
None). A write batch that timed out after Redis applied it may be applied
twice on retry; with the fail-fast client that is rare and only nudges a mean.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.streaming.accounting import RaceRecord

MAX_REQUESTS = 100_000
DEFAULT_HALF_LIFE_S = 86_400.0  # a rating counts half after a day
DEFAULT_TTL_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class Served:
    deployment: str
    route: str = ""


@dataclass(slots=True)
class DecayedSum:
    """Exponentially decayed sum and count of ratings, as of wall time `t`."""

    s: float = 0.0
    n: float = 0.0
    t: float | None = None

    def add(self, value: float, at: float, half_life_s: float) -> None:
        if self.t is None:
            self.s, self.n, self.t = value, 1.0, at
        elif at >= self.t:
            factor = _decay(at - self.t, half_life_s)
            self.s, self.n, self.t = self.s * factor + value, self.n * factor + 1.0, at
        else:  # an older rating arriving late: decay it instead of the sum
            factor = _decay(self.t - at, half_life_s)
            self.s += value * factor
            self.n += factor

    def merge(self, other: DecayedSum, half_life_s: float) -> DecayedSum:
        if other.t is None:
            return DecayedSum(self.s, self.n, self.t)
        if self.t is None:
            return DecayedSum(other.s, other.n, other.t)
        t = max(self.t, other.t)
        a, b = _decay(t - self.t, half_life_s), _decay(t - other.t, half_life_s)
        return DecayedSum(self.s * a + other.s * b, self.n * a + other.n * b, t)

    def at(self, now: float, half_life_s: float) -> tuple[float, float]:
        """(mean, decayed count) at `now`; (0, 0) when empty."""
        if self.t is None or self.n <= 0:
            return 0.0, 0.0
        count = self.n * _decay(max(now - self.t, 0.0), half_life_s)
        return self.s / self.n, count


def _decay(age_s: float, half_life_s: float) -> float:
    if half_life_s <= 0:
        return 1.0
    return float(2.0 ** (-age_s / half_life_s))


class FeedbackStore(Protocol):
    @property
    def degraded(self) -> bool: ...

    def remember(self, request_id: str, deployment: str, route: str = "") -> None: ...

    def on_race_end(self, record: RaceRecord) -> None: ...

    async def rate(self, request_id: str, rating: float) -> str | None: ...

    def ratings(self) -> dict[str, tuple[float, float]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class _RequestMemory:
    """Bounded request id -> Served map (oldest forgotten first)."""

    def __init__(self, max_requests: int) -> None:
        self.max_requests = max(max_requests, 1)
        self._served: OrderedDict[str, Served] = OrderedDict()

    def put(self, request_id: str, served: Served) -> None:
        self._served[request_id] = served
        self._served.move_to_end(request_id)
        while len(self._served) > self.max_requests:
            self._served.popitem(last=False)

    def get(self, request_id: str) -> Served | None:
        return self._served.get(request_id)

    def __len__(self) -> int:
        return len(self._served)

    def clear(self) -> None:
        self._served.clear()


def _remember_record(store: FeedbackStore, record: RaceRecord) -> None:
    if record.winner is not None:
        store.remember(record.request_id, record.winner, record.route)


class MemoryFeedbackStore:
    """One instance's request ids and ratings (state.backend memory)."""

    def __init__(
        self,
        *,
        max_requests: int = MAX_REQUESTS,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.half_life_s = half_life_s
        self._wall = wall_clock
        self._requests = _RequestMemory(max_requests)
        self._ratings: dict[str, DecayedSum] = {}

    @property
    def degraded(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._requests)

    def remember(self, request_id: str, deployment: str, route: str = "") -> None:
        self._requests.put(request_id, Served(deployment, route))

    def on_race_end(self, record: RaceRecord) -> None:
        _remember_record(self, record)

    def lookup(self, request_id: str) -> Served | None:
        return self._requests.get(request_id)

    async def rate(self, request_id: str, rating: float) -> str | None:
        served = self._requests.get(request_id)
        if served is None:
            return None
        decayed = self._ratings.setdefault(served.deployment, DecayedSum())
        decayed.add(float(rating), self._wall(), self.half_life_s)
        return served.deployment

    def ratings(self) -> dict[str, tuple[float, float]]:
        now = self._wall()
        return {name: d.at(now, self.half_life_s) for name, d in self._ratings.items()}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._requests.clear()


# KEYS[1] ratings hash; ARGV: half-life s, ttl s, then (deployment, rating, wall time) triples.
# Decays each deployment's (s, n) to the rating's time and adds it (see DecayedSum.add).
