"""User feedback: which deployment served a request, and ratings per deployment.

`remember(request_id, deployment, route, key_id)` is called when a request with a
winner is recorded (`sinks.FeedbackSink`). It is a cheap local append;
`rate(request_id, rating, key_id)` later resolves the id to the deployment and adds
the rating. Only the key that made the request may rate it (`key_id=None`: the admin
key, any request); for any other key the id is unknown (None, as for a forgotten id:
no oracle for other tenants' ids). A request is rated at most once: a second rating
replaces the first (the first is taken out of the decayed sums). Rating is open for
`window_s` (24 h) after the request; later `rate` raises `FeedbackWindowClosed`.
The handler validates the rating (-1..1); nothing is checked here.

Ratings are kept per deployment as exponentially decayed sums: every rating
has weight ``2 ** (-age / half_life_s)``, so ``ratings()`` returns
``{deployment: (mean, count)}`` where mean = decayed sum / decayed count
(within -1..1 for valid ratings) and count is the decayed number of ratings
(a float). A decayed sum is stored as ``(s, n, t)``: sum and count as of wall
time ``t``.

`MemoryFeedbackStore` keeps the last `max_requests` (100k) request ids in an
``OrderedDict`` (oldest forgotten first), with their current rating.

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

from gateway.value_class import value_class

MAX_REQUESTS = 100_000
DEFAULT_HALF_LIFE_S = 86_400.0  # a rating counts half after a day
DEFAULT_TTL_S = 7 * 86_400
DEFAULT_WINDOW_S = 86_400.0


class FeedbackWindowClosed(Exception):
    """The request is older than the feedback window."""


@value_class
class Served:
    deployment: str
    route: str = ""
    key_id: str = "anonymous"
    at: float | None = None  # wall time the request was recorded (None: unknown)


def check_rating(
    served: Served | None, key_id: str | None, now: float, window_s: float
) -> Served | None:
    """`served` when `key_id` may rate it now (None: the admin key); None when unknown or
    another key's; raises FeedbackWindowClosed when too old."""
    if served is None or (key_id is not None and key_id != served.key_id):
        return None
    if served.at is not None and now - served.at > window_s:
        raise FeedbackWindowClosed
    return served


@dataclass(slots=True)
class DecayedSum:
    """Exponentially decayed sum and count of ratings, as of wall time `t`."""

    s: float = 0.0
    n: float = 0.0
    t: float | None = None

    def add(self, value: float, at: float, half_life_s: float, weight: float = 1.0) -> None:
        """Add a rating made at `at`; `weight=-1` takes a replaced rating back out."""
        if self.t is None:
            self.s, self.n, self.t = value * weight, weight, at
        elif at >= self.t:
            factor = _decay(at - self.t, half_life_s)
            self.s, self.n, self.t = self.s * factor + value * weight, self.n * factor + weight, at
        else:  # an older rating arriving late: decay it instead of the sum
            factor = _decay(self.t - at, half_life_s)
            self.s += value * weight * factor
            self.n += weight * factor

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
        if self.t is None or self.n <= 1e-9:  # empty, or every rating taken back out
            return 0.0, 0.0
        count = self.n * _decay(max(now - self.t, 0.0), half_life_s)
        return self.s / self.n, count


def _decay(age_s: float, half_life_s: float) -> float:
    if half_life_s <= 0:
        return 1.0
    return float(2.0 ** (-age_s / half_life_s))


def _may_index(existing: Served | None, key_id: str) -> bool:
    """A client may send its own x-request-id: another key's request under the same id
    must not take the index entry (and its rating) over."""
    return existing is None or existing.key_id == key_id


class FeedbackStore(Protocol):
    window_s: float  # how long after its request a rating is taken (a reload may change it)

    @property
    def degraded(self) -> bool: ...

    def remember(
        self, request_id: str, deployment: str, route: str = "", key_id: str = "anonymous"
    ) -> None: ...

    async def rate(self, request_id: str, rating: float, key_id: str | None = None) -> str | None:
        """The deployment credited; None for an unknown, forgotten or other key's request."""
        ...

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


class MemoryFeedbackStore:
    """One instance's request ids and ratings (state.backend memory)."""

    def __init__(
        self,
        *,
        max_requests: int = MAX_REQUESTS,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        window_s: float = DEFAULT_WINDOW_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.half_life_s = half_life_s
        self.window_s = window_s
        self._wall = wall_clock
        self._requests = _RequestMemory(max_requests)
        self._rated: dict[str, tuple[float, float]] = {}  # request id -> (rating, at)
        self._ratings: dict[str, DecayedSum] = {}

    @property
    def degraded(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self._requests)

    def remember(
        self, request_id: str, deployment: str, route: str = "", key_id: str = "anonymous"
    ) -> None:
        if not _may_index(self._requests.get(request_id), key_id):
            return
        self._requests.put(request_id, Served(deployment, route, key_id, self._wall()))
        self._rated.pop(request_id, None)  # a new request under a reused id
        if len(self._rated) > self._requests.max_requests:
            self._rated = {r: v for r, v in self._rated.items() if self._requests.get(r)}

    def lookup(self, request_id: str) -> Served | None:
        return self._requests.get(request_id)

    async def rate(self, request_id: str, rating: float, key_id: str | None = None) -> str | None:
        now = self._wall()
        served = check_rating(self._requests.get(request_id), key_id, now, self.window_s)
        if served is None:
            return None
        decayed = self._ratings.setdefault(served.deployment, DecayedSum())
        previous = self._rated.get(request_id)
        if previous is not None:  # once per request: the new rating replaces the old
            decayed.add(previous[0], previous[1], self.half_life_s, weight=-1.0)
        decayed.add(float(rating), now, self.half_life_s)
        self._rated[request_id] = (float(rating), now)
        return served.deployment

    def ratings(self) -> dict[str, tuple[float, float]]:
        now = self._wall()
        return {name: d.at(now, self.half_life_s) for name, d in self._ratings.items()}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._requests.clear()
        self._rated.clear()
