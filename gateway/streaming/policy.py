"""Small race policies: the extra-load budget and the choice of error when every attempt fails."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable

from gateway.streaming.events import UpstreamError


class LoadBudget:
    """Caps speculative upstream attempts (racing, hedging) at a share of requests.

    Over a sliding window, extra attempts may not exceed `max_extra_load`
    times the number of requests; attempts started because another failed
    are not speculative and are never refused.
    """

    def __init__(
        self,
        max_extra_load: float,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_extra_load = max_extra_load
        self.window_s = window_s
        self._clock = clock
        self._requests: deque[float] = deque()
        self._extra: deque[float] = deque()
        self.refused = 0  # speculative attempts refused since start (for metrics)
        self.spent = 0

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        while self._requests and self._requests[0] < horizon:
            self._requests.popleft()
        while self._extra and self._extra[0] < horizon:
            self._extra.popleft()

    def note_request(self) -> None:
        self._requests.append(self._clock())

    def try_spend(self) -> bool:
        now = self._clock()
        self._prune(now)
        if len(self._extra) < self.max_extra_load * len(self._requests):
            self._extra.append(now)
            self.spent += 1
            return True
        self.refused += 1
        return False

    @property
    def utilisation(self) -> float:
        """Extra attempts / allowed extra attempts over the window (0..1+)."""
        self._prune(self._clock())
        allowed = self.max_extra_load * len(self._requests)
        return len(self._extra) / allowed if allowed else 0.0


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
