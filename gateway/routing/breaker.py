"""Circuit breaker for one deployment: the last N outcomes, an error budget, cooldown and probes.

States (`CircuitBreaker.state`):

- ``closed``: traffic flows; every outcome goes into a ring buffer of the last
  `window` outcomes. When at least `min_requests` outcomes are in the window
  and the error rate over it is *above* `error_budget`, the breaker opens.
- ``open``: no traffic for the current cooldown (`cooldown_s`, doubled after
  each failed half-open round, capped at `max_cooldown_s`).
- ``half_open``: after the cooldown, up to `half_open_probes` requests may be
  in flight at once (`allow()` counts one, an outcome or `release_probe()`
  frees it). `half_open_probes` successes close the breaker (the window is
  reset, the cooldown goes back to `cooldown_s`); one failure opens it again.
- ``cooling``: a 429/529 carried `retry-after`; the deployment is skipped until
  then whatever the error-rate state (capped at `max_cooling_s`). Cooling
  hides the other states in `state` while it lasts.

Health score, in [0, 1] (`health_score()`)::

    0                                   when open or cooling
    error_factor * latency_factor       otherwise (halved when half-open)

    error_factor   = clip(1 - e / (4 * error_budget), 0, 1)
    e              = failures / max(outcomes, min_requests)
    latency_factor = min(1, ttft_ref_s / ttft_p90)     (1 without TTFT samples)

`e` counts missing samples as successes until `min_requests` outcomes exist,
so a single early failure does not zero the score. At the error budget the
error factor is 0.75, at four times the budget it is 0. The latency factor is
1 while the p90 TTFT is within `ttft_ref_s` and falls as 1/x beyond it.

Pure: no I/O, the clock (monotonic seconds) is injected.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open", "cooling"]
Phase = Literal["closed", "open", "half_open"]
# (old, new, seconds until the deployment may be tried again; 0 if now). Called on every
# phase change (closed/open/half_open) and when a retry-after starts or extends cooling
# (new == "cooling"; old is then the state before, possibly "cooling" itself).
BreakerListener = Callable[[BreakerState, BreakerState, float], None]

COOLING_STATUSES = frozenset({429, 529})


class CircuitBreaker:
    def __init__(
        self,
        window: int = 100,
        error_budget: float = 0.05,
        min_requests: int = 20,
        cooldown_s: float = 30.0,
        half_open_probes: int = 3,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_cooldown_s: float | None = None,
        max_cooling_s: float = 300.0,
        probe_timeout_s: float = 60.0,
        ttft_ref_s: float = 2.0,
        listener: BreakerListener | None = None,
    ) -> None:
        if window < 1 or min_requests < 1 or half_open_probes < 1:
            raise ValueError("window, min_requests and half_open_probes must be >= 1")
        self.window = window
        self.error_budget = error_budget
        self.min_requests = min_requests
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max_cooldown_s if max_cooldown_s is not None else cooldown_s * 8
        self.max_cooling_s = max_cooling_s
        self.half_open_probes = half_open_probes
        self.probe_timeout_s = probe_timeout_s
        self.ttft_ref_s = ttft_ref_s
        self.listener = listener
        self._clock = clock
        # (ok, ttft_s) per outcome; ttft only for successes that reported one
        self._outcomes: deque[tuple[bool, float | None]] = deque(maxlen=window)
        self._failures = 0
        self._phase: Phase = "closed"
        self._open_until = 0.0
        self._cooldown_s = cooldown_s
        self._cooling_until = 0.0
        self._probes: deque[float] = deque()  # start times of probes in flight
        self._probe_successes = 0
        self.opened_count = 0  # times the breaker opened (for metrics)

    # -- state -------------------------------------------------------------

    def _advance(self, now: float) -> None:
        """Apply time-driven transitions: open -> half_open, expired probes."""
        if self._phase == "open" and now >= self._open_until:
            self._phase = "half_open"
            self._probes.clear()
            self._probe_successes = 0
            self._notify("open", "half_open", max(self._cooling_until - now, 0.0))
        if self._probes:
            horizon = now - self.probe_timeout_s
            while self._probes and self._probes[0] <= horizon:
                self._probes.popleft()

    def _state_at(self, now: float) -> BreakerState:
        if self._phase == "open":
            return "open"
        if now < self._cooling_until:
            return "cooling"
        return self._phase

    @property
    def state(self) -> BreakerState:
        now = self._clock()
        self._advance(now)
        return self._state_at(now)

    @property
    def phase(self) -> Phase:
        """The error-rate state alone (ignores cooling)."""
        self._advance(self._clock())
        return self._phase

    def retry_in_s(self) -> float:
        """Seconds until `allow()` may say yes again (0 when it may now)."""
        now = self._clock()
        self._advance(now)
        wait = max(self._cooling_until - now, 0.0)
        if self._phase == "open":
            wait = max(wait, self._open_until - now)
        return wait

    @property
    def cooling_until(self) -> float:
        return self._cooling_until

    @property
    def probes_in_flight(self) -> int:
        self._advance(self._clock())
        return len(self._probes)

    def allow(self) -> bool:
        """May a request go to this deployment now? In half-open, True takes a probe slot."""
        now = self._clock()
        self._advance(now)
        if now < self._cooling_until or self._phase == "open":
            return False
        if self._phase == "closed":
            return True
        if len(self._probes) < self.half_open_probes:
            self._probes.append(now)
            return True
        return False

    def available(self) -> bool:
        """Like `allow()` without taking a probe slot."""
        now = self._clock()
        self._advance(now)
        if now < self._cooling_until or self._phase == "open":
            return False
        return self._phase == "closed" or len(self._probes) < self.half_open_probes

    def force_probe(self) -> None:
        """Send a request although `allow()` said no (every candidate was blocked)."""
        now = self._clock()
        self._advance(now)
        if self._phase == "half_open":
            self._probes.append(now)

    def release_probe(self) -> None:
        """A probe ended without an outcome that says anything (cancelled, client error)."""
        if self._probes:
            self._probes.popleft()

    # -- outcomes ----------------------------------------------------------

    def _push(self, ok: bool, ttft_s: float | None) -> None:
        if len(self._outcomes) == self.window and not self._outcomes[0][0]:
            self._failures -= 1
        self._outcomes.append((ok, ttft_s))
        if not ok:
            self._failures += 1

    def record_success(self, ttft_s: float | None = None) -> None:
        now = self._clock()
        self._advance(now)
        self._push(True, ttft_s)
        if self._phase == "half_open":
            self.release_probe()
            self._probe_successes += 1
            if self._probe_successes >= self.half_open_probes:
                self._close(now)

    def record_failure(self, error_status: int = 0, retry_after_s: float | None = None) -> None:
        now = self._clock()
        self._advance(now)
        if error_status in COOLING_STATUSES and retry_after_s is not None:
            self.cool(retry_after_s)
        self._push(False, None)
        if self._phase == "half_open":
            self.release_probe()
            self._cooldown_s = min(self._cooldown_s * 2, self.max_cooldown_s)
            self._open(now, self._cooldown_s)
        elif (
            self._phase == "closed"
            and len(self._outcomes) >= self.min_requests
            and self._failures / len(self._outcomes) > self.error_budget
        ):
            self._open(now, self._cooldown_s)

    def cool(self, seconds: float, notify: bool = True) -> None:
        """Skip the deployment for `seconds` (retry-after), independent of the error rate."""
        if seconds <= 0:
            return
        now = self._clock()
        self._advance(now)
        until = now + min(seconds, self.max_cooling_s)
        if until <= self._cooling_until:
            return
        old = self._state_at(now)
        self._cooling_until = until
        if notify and self._phase != "open":
            self._notify(old, "cooling", until - now)

    def trip(self, seconds: float, notify: bool = True) -> None:
        """Open now for `seconds` (e.g. another instance opened it); never shortens an open."""
        now = self._clock()
        self._advance(now)
        if seconds <= 0 or (self._phase == "open" and self._open_until >= now + seconds):
            return
        self._open(now, seconds, notify=notify)

    def reset(self, notify: bool = True) -> None:
        """Close now with an empty window (e.g. another instance's probes succeeded)."""
        now = self._clock()
        self._advance(now)
        if self._phase != "closed":
            self._close(now, notify=notify)

    def seed(self, outcomes: list[tuple[bool, float | None]]) -> None:
        """Fill an empty window with outcomes seen elsewhere, oldest first; no transitions."""
        if self._outcomes:
            return
        for ok, ttft_s in outcomes[-self.window :]:
            self._push(ok, ttft_s)

    def _open(self, now: float, seconds: float, notify: bool = True) -> None:
        old = self._phase
        self._phase = "open"
        self._open_until = now + seconds
        self._probes.clear()
        self._probe_successes = 0
        self.opened_count += 1
        if notify:
            self._notify(old, "open", self.retry_in_s())

    def _close(self, now: float, notify: bool = True) -> None:
        old = self._phase
        self._phase = "closed"
        self._cooldown_s = self.base_cooldown_s
        self._outcomes.clear()
        self._failures = 0
        self._probes.clear()
        self._probe_successes = 0
        if notify:
            self._notify(old, "closed", self.retry_in_s())

    def _notify(self, old: BreakerState, new: BreakerState, retry_in_s: float) -> None:
        if self.listener is not None and (old != new or new == "cooling"):
            self.listener(old, new, retry_in_s)

    # -- statistics --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def error_rate(self) -> float:
        """Failures / outcomes over the window (0.0 when empty)."""
        n = len(self._outcomes)
        return self._failures / n if n else 0.0

    def ttft_quantile(self, q: float) -> float | None:
        """The q-quantile (0..1, linear interpolation) of successful TTFTs in the window."""
        samples = sorted(t for ok, t in self._outcomes if ok and t is not None)
        if not samples:
            return None
        pos = min(max(q, 0.0), 1.0) * (len(samples) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(samples) - 1)
        return samples[lo] + (samples[hi] - samples[lo]) * (pos - lo)

    def health_score(self) -> float:
        """See the module doc for the formula."""
        state = self.state
        if state in ("open", "cooling"):
            return 0.0
        e = self._failures / max(len(self._outcomes), self.min_requests)
        budget = self.error_budget if self.error_budget > 0 else 1e-9
        error_factor = min(max(1.0 - e / (4 * budget), 0.0), 1.0)
        p90 = self.ttft_quantile(0.9)
        latency_factor = 1.0 if not p90 or p90 <= 0 else min(1.0, self.ttft_ref_s / p90)
        score = error_factor * latency_factor
        return score * 0.5 if state == "half_open" else score
