"""Small race policies: the extra-load budget and the choice of error when every attempt fails."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable

from gateway.streaming.events import UpstreamError

DEFAULT_HEDGE_EXTRA_LOAD = 0.5  # hedges' share when a route sets no max_extra_load


class LoadBudget:
    """Caps speculative upstream attempts (racing, hedging) at a share of requests, with a floor.

    Over a sliding window, extra attempts may not exceed the larger of
    `max_extra_load` times the requests in the window and `min_extra_per_s`
    times the window (Finagle's RetryBudget `minRetriesPerSec`): at volume the
    share caps amplification, at low traffic the floor still lets every request
    race or hedge. Attempts started because another failed are not speculative
    and are never refused. `covers_races` False: races of k are not limited
    (the route set no share; only hedges are, by the default share).
    """

    def __init__(
        self,
        max_extra_load: float,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        min_extra_per_s: float = 0.0,
        covers_races: bool = True,
    ) -> None:
        self.max_extra_load = max_extra_load
        self.min_extra_per_s = min_extra_per_s
        self.window_s = window_s
        self.covers_races = covers_races
        self._clock = clock
        self._requests: deque[float] = deque()
        self._extra: deque[float] = deque()
        self.refused = 0  # speculative attempts refused since start (for metrics)
        self.spent = 0

    @classmethod
    def for_route(
        cls,
        max_extra_load: float | None,
        min_extra_per_s: float,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> LoadBudget:
        """A route's budget: its share and floor; without a share, races are never limited
        and hedges get the default share (a hedge storm is what a budget is for)."""
        if max_extra_load is None:
            return cls(
                DEFAULT_HEDGE_EXTRA_LOAD,
                window_s,
                clock,
                min_extra_per_s=min_extra_per_s,
                covers_races=False,
            )
        return cls(max_extra_load, window_s, clock, min_extra_per_s=min_extra_per_s)

    def covers(self, strategy: str) -> bool:
        """Whether this budget limits the speculative attempts of `strategy`."""
        return self.covers_races or strategy != "race"

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._requests and self._requests[0] <= horizon:
            self._requests.popleft()
        while self._extra and self._extra[0] <= horizon:
            self._extra.popleft()

    def _allowed(self) -> float:
        return max(self.max_extra_load * len(self._requests), self.min_extra_per_s * self.window_s)

    def note_request(self) -> None:
        self._requests.append(self._clock())

    def try_spend(self) -> bool:
        now = self._clock()
        self._prune(now)
        if len(self._extra) < self._allowed():
            self._extra.append(now)
            self.spent += 1
            return True
        self.refused += 1
        return False

    @property
    def utilisation(self) -> float:
        """Extra attempts / allowed extra attempts over the window (0..1+)."""
        self._prune(self._clock())
        allowed = self._allowed()
        return len(self._extra) / allowed if allowed else 0.0

    def snapshot(self) -> dict[str, object]:
        """What the admin view shows: the rule and how much of it is used."""
        return {
            "share": self.max_extra_load,
            "min_extra_per_s": self.min_extra_per_s,
            "window_s": self.window_s,
            "limits_races": self.covers_races,
            "utilisation": round(self.utilisation, 3),
            "extra_in_window": len(self._extra),
            "requests_in_window": len(self._requests),
            "spent": self.spent,
            "refused": self.refused,
        }


_CLIENT_FAULT = frozenset({400, 413, 422})


def choose_error(errors: list[UpstreamError]) -> UpstreamError:
    """The one error the client sees when every attempt failed.

    A client-caused 4xx wins (retrying elsewhere cannot help); all-429 stays
    429 with the shortest retry-after; another 4xx beats 5xx; upstream
    credential failures become 502 (the client's own key was fine); timeouts
    alone give 504.
    """
    if not errors:
        return UpstreamError(502, "upstream_error", "no upstream attempt could be made", True)
    for error in errors:
        if error.status in _CLIENT_FAULT:
            return error
    if all(e.status == 429 for e in errors):
        waits = [e.retry_after_s for e in errors if e.retry_after_s is not None]
        best = min(errors, key=lambda e: e.retry_after_s if e.retry_after_s is not None else 1e9)
        return _with(best, retry_after_s=min(waits) if waits else None)
    for error in errors:
        if 400 <= error.status < 500 and error.status not in (401, 403, 408, 429):
            return error
    for error in errors:
        if error.status in (401, 403):
            return UpstreamError(
                502,
                "upstream_auth_error",
                "an upstream provider rejected the gateway's credentials",
                False,
                code="upstream_auth_error",
            )
    if all(e.type == "upstream_timeout" or e.status in (408, 504) for e in errors):
        return _with(errors[-1], status=504)
    # A mix of 429 and server errors: report the last server error (order-independent kind).
    last = [e for e in errors if e.status != 429][-1]
    status = last.status if last.status in (500, 502, 503) else 502
    if last.status == 529:
        status = 503
    return _with(last, status=status)


def _with(error: UpstreamError, **changes: object) -> UpstreamError:
    return dataclasses.replace(error, **changes)  # type: ignore[arg-type]
