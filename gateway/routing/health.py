"""Per-deployment health: one circuit breaker each, fed by race records, read by routing.

- `filter(names)` keeps the candidates a request may use now (order kept):
  breaker closed, half-open with a free probe slot, not cooling after a
  retry-after, not at its rate limit. When every candidate is blocked it
  returns the one that reopens first (ties: best health score, then order) as
  a probe, so a request is tried rather than failed outright.
- `on_race_end(record)` (a `RaceObserver`) maps attempts to outcomes:

  ===========================  ===============================================
  won                           success with the attempt's TTFT; failure when
                                the stream then failed with an error that
                                opens the circuit
  failed / timed_out            failure when `error.opens_circuit` (or no
                                error); client-caused errors (400/413/422,
                                ``opens_circuit=False``) are neutral
  cancelled / running           neutral (frees a half-open probe slot)
  ===========================  ===============================================

  A 429/529 with retry-after cools the deployment for that long in any case.
- State-change listeners get a `StateChange` for every local breaker change
  (and for changes applied from other instances, flagged `remote`); the shared
  layer publishes the local ones.

Synchronous and pure apart from the injected monotonic clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gateway.routing.breaker import COOLING_STATUSES, BreakerState, CircuitBreaker
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.value_class import value_class

DEFAULT_ERROR_BUDGET = 0.05
MAX_TRACKED_REQUESTS = 10_000  # probe grants remembered per request id


@value_class
class StateChange:
    deployment: str
    old: BreakerState
    new: BreakerState
    retry_in_s: float  # seconds until the deployment may be tried again (open/cooling)
    at: float  # monotonic clock reading when it happened
    remote: bool = False  # applied from another instance


@value_class
class Outcome:
    """One outcome recorded locally (what the shared layer pushes)."""

    deployment: str
    ok: bool
    ttft_s: float | None = None
    status: int = 0  # failures only


StateListener = Callable[[StateChange], None]
OutcomeListener = Callable[[Outcome], None]
ProbeListener = Callable[[str, float], None]  # (deployment, seconds the probe slot is held)


class AllUnavailable(Exception):
    """Every candidate is open, cooling or rate-limited, and each one's probe for this
    interval is already out (here or on another instance): shed the request at once."""

    def __init__(self, retry_in_s: float, rate_limited: bool) -> None:
        super().__init__(f"every deployment is unavailable for {retry_in_s:.1f}s")
        self.retry_in_s = retry_in_s
        self.rate_limited = rate_limited  # every candidate is at its own rpm/tpm limit


class HealthRegistry:
    def __init__(
        self,
        deployments: Mapping[str, float],
        window: int = 100,
        min_requests: int = 20,
        cooldown_s: float = 30.0,
        probes: int = 3,
        clock: Callable[[], float] = time.monotonic,
        *,
        ttft_ref_s: float = 2.0,
        probe_interval_s: float = 1.0,
    ) -> None:
        """`deployments` maps each deployment name to its error budget (e.g. 0.05, 0.01)."""
        self.window = window
        self.min_requests = min_requests
        self.cooldown_s = cooldown_s
        self.probes = probes
        self.ttft_ref_s = ttft_ref_s
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._limited_until: dict[str, float] = {}
        self._grants: OrderedDict[str, list[str]] = OrderedDict()
        self._state_listeners: list[StateListener] = []
        self._outcome_listeners: list[OutcomeListener] = []
        self._probe_listeners: list[ProbeListener] = []
        self.probe_interval_s = probe_interval_s
        self._forced_until: dict[str, float] = {}  # the last forced probe's slot, per deployment
        self._applying_remote = False
        self._removed: set[str] = set()  # dropped by a reload: late outcomes are ignored
        for name, budget in deployments.items():
            self._add(name, budget)

    # -- breakers ----------------------------------------------------------

    def _add(self, name: str, budget: float) -> CircuitBreaker:
        breaker = CircuitBreaker(
            window=self.window,
            error_budget=budget,
            min_requests=self.min_requests,
            cooldown_s=self.cooldown_s,
            half_open_probes=self.probes,
            clock=self._clock,
            ttft_ref_s=self.ttft_ref_s,
        )
        breaker.listener = lambda old, new, retry_in_s: self._changed(name, old, new, retry_in_s)
        self._breakers[name] = breaker
        return breaker

    def reconfigure(self, deployments: Mapping[str, float], reset: Iterable[str] = ()) -> None:
        """A config reload: `deployments` (name -> error budget) are the ones now served.
        Kept breakers keep their window and state with the new budget; removed ones are
        dropped, new and `reset` ones (a new identity) start closed and empty."""
        fresh = set(reset)
        removed = {n for n in self._breakers if n not in deployments}
        self._removed = (self._removed | removed) - set(deployments)
        for name in removed | (fresh & set(self._breakers)):
            del self._breakers[name]
            self._limited_until.pop(name, None)
        for name, budget in deployments.items():
            breaker = self._breakers.get(name)
            if breaker is None:
                self._add(name, budget)
            else:
                breaker.error_budget = budget

    def breaker(self, name: str) -> CircuitBreaker:
        """The deployment's breaker (created with the default budget for an unknown name)."""
        found = self._breakers.get(name)
        return found if found is not None else self._add(name, DEFAULT_ERROR_BUDGET)

    def names(self) -> list[str]:
        return list(self._breakers)

    def _changed(self, name: str, old: BreakerState, new: BreakerState, retry_in_s: float) -> None:
        change = StateChange(name, old, new, retry_in_s, self._clock(), self._applying_remote)
        for listener in list(self._state_listeners):
            listener(change)

    def add_listener(self, listener: StateListener) -> None:
        """Called on every breaker state change (see `StateChange`)."""
        self._state_listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        if listener in self._state_listeners:
            self._state_listeners.remove(listener)

    def add_outcome_listener(self, listener: OutcomeListener) -> None:
        self._outcome_listeners.append(listener)

    def remove_outcome_listener(self, listener: OutcomeListener) -> None:
        if listener in self._outcome_listeners:
            self._outcome_listeners.remove(listener)

    # -- routing -----------------------------------------------------------

    def _limited_for(self, name: str, now: float) -> float:
        until = self._limited_until.get(name)
        if until is None:
            return 0.0
        if until <= now:
            del self._limited_until[name]
            return 0.0
        return until - now

    def available(self, name: str) -> bool:
        """Could `name` take a request now (no probe slot taken)?"""
        return self._limited_for(name, self._clock()) == 0.0 and self.breaker(name).available()

    def filter(self, names: Iterable[str], request_id: str | None = None) -> list[str]:
        """The candidates that may be used now, order kept; never empty for a non-empty input.

        Half-open deployments take a probe slot. With `request_id`, slots taken
        for candidates the race never attempted are freed by `on_race_end`
        (otherwise they expire after the breaker's `probe_timeout_s`).
        """
        candidates = list(dict.fromkeys(names))
        if not candidates:
            return []
        now = self._clock()
        allowed: list[str] = []
        probed: list[str] = []
        for name in candidates:
            if self._limited_for(name, now) > 0:
                continue
            breaker = self.breaker(name)
            if breaker.phase == "half_open":
                if breaker.allow():
                    allowed.append(name)
                    probed.append(name)
            elif breaker.allow():
                allowed.append(name)
        if not allowed:  # one forced probe per deployment per interval; shed the rest
            free = [(i, n) for i, n in enumerate(candidates) if self._forced_until.get(n, 0) <= now]
            if not free:
                raise self._shed(candidates, now)
            best = min(
                free, key=lambda item: (self.retry_in_s(item[1]), -self.score(item[1]), item[0])
            )[1]
            self._forced_until[best] = now + self.probe_interval_s
            for listener in list(self._probe_listeners):
                listener(best, self.probe_interval_s)
            breaker = self.breaker(best)
            breaker.force_probe()
            if breaker.phase == "half_open":
                probed.append(best)
            allowed = [best]
        if request_id is not None and probed:
            self._grants[request_id] = probed
            while len(self._grants) > MAX_TRACKED_REQUESTS:
                self._grants.popitem(last=False)
        return allowed

    def _shed(self, candidates: list[str], now: float) -> AllUnavailable:
        """The shortest wait until some candidate takes requests again (its breaker's or
        rate limit's own wait; for one that only waits on probe slots, the slot), and whether
        every candidate is at its own rate limit."""
        wait = min(
            self.retry_in_s(name) or max(self._forced_until.get(name, 0.0) - now, 0.0)
            for name in candidates
        )
        limited = all(self._limited_for(name, now) > 0 for name in candidates)
        return AllUnavailable(max(wait, 0.0), limited)

    def note_remote_probe(self, name: str, held_s: float) -> None:
        """Another instance forced a probe of `name`: none from here for `held_s`."""
        if held_s > 0:
            until = self._clock() + held_s
            self._forced_until[name] = max(until, self._forced_until.get(name, 0.0))

    def probe_held_s(self, name: str) -> float:
        """Seconds until a forced probe of `name` may go out again (here or elsewhere)."""
        return max(self._forced_until.get(name, 0.0) - self._clock(), 0.0)

    def add_probe_listener(self, listener: ProbeListener) -> None:
        """Called when this instance forces a probe (shared health publishes it)."""
        self._probe_listeners.append(listener)

    def remove_probe_listener(self, listener: ProbeListener) -> None:
        if listener in self._probe_listeners:
            self._probe_listeners.remove(listener)

    def retry_in_s(self, name: str) -> float:
        """Seconds until `name` may be tried again (breaker open, cooling or rate-limited)."""
        return max(self.breaker(name).retry_in_s(), self._limited_for(name, self._clock()))

    def score(self, name: str) -> float:
        """Health score in [0, 1] (formula in gateway.routing.breaker); 0 while rate-limited."""
        if self._limited_for(name, self._clock()) > 0:
            return 0.0
        return self.breaker(name).health_score()

    def mark_rate_limited(self, name: str, retry_after_s: float) -> None:
        """The deployment's own rpm/tpm is used up: skip it locally for `retry_after_s`.

        Not a breaker change and not published: the limiter is already shared.
        """
        if retry_after_s > 0:
            until = self._clock() + retry_after_s
            self._limited_until[name] = max(until, self._limited_until.get(name, 0.0))

    # -- outcomes ----------------------------------------------------------

    def record_success(self, name: str, ttft_s: float | None = None) -> None:
        self.breaker(name).record_success(ttft_s)
        self._emit(Outcome(name, True, ttft_s))

    def record_failure(
        self, name: str, status: int = 0, retry_after_s: float | None = None
    ) -> None:
        self.breaker(name).record_failure(status, retry_after_s)
        self._emit(Outcome(name, False, status=status))

    def _emit(self, outcome: Outcome) -> None:
        for listener in list(self._outcome_listeners):
            listener(outcome)

    def on_race_end(self, record: RaceRecord) -> None:
        attempted = set()
        for attempt in record.attempts:
            attempted.add(attempt.deployment)
            if attempt.deployment not in self._removed:  # a request from before a reload
                self._record_attempt(record, attempt)
        granted = self._grants.pop(record.request_id, None)
        for name in granted or ():
            if name not in attempted:
                self.breaker(name).release_probe()

    def _record_attempt(self, record: RaceRecord, attempt: AttemptRecord) -> None:
        name = attempt.deployment
        error = attempt.error
        if error is not None and not error.opens_circuit and error.status in COOLING_STATUSES:
            # not counted as a failure, but the retry-after still holds
            self.breaker(name).cool(error.retry_after_s or 0.0)
        if attempt.outcome == "won":
            # A winner cut mid-stream is a failure even when a backup resumed its answer.
            if error is not None and error.opens_circuit:
                self.record_failure(name, error.status, error.retry_after_s)
            else:
                self.record_success(name, attempt.ttft_s)
        elif attempt.outcome in ("failed", "timed_out"):
            if error is None:
                self.record_failure(name, 504 if attempt.outcome == "timed_out" else 0)
            elif error.opens_circuit:
                self.record_failure(name, error.status, error.retry_after_s)
            else:
                self.breaker(name).release_probe()
        else:
            self.breaker(name).release_probe()

    # -- other instances ---------------------------------------------------

    def apply_remote(self, name: str, state: str, retry_in_s: float = 0.0) -> None:
        """Apply a state change seen by another instance (listeners get `remote=True`).

        ``open`` opens here too for the remaining time (never shortens a local
        open), ``cooling`` cools, ``closed`` closes a local open/half-open
        breaker (the other instance's probes succeeded); anything else is ignored.
        """
        breaker = self.breaker(name)
        self._applying_remote = True
        try:
            if state == "open":
                breaker.trip(retry_in_s)
            elif state == "cooling":
                breaker.cool(retry_in_s)
            elif state == "closed":
                breaker.reset()
        finally:
            self._applying_remote = False

    def seed(self, name: str, outcomes: list[tuple[bool, float | None]]) -> None:
        """Fill an empty window with shared outcomes (oldest first)."""
        self.breaker(name).seed(outcomes)

    # -- visibility --------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per deployment: state, health score, error rate, TTFT p50/p90/p99 (s), window size."""
        out: dict[str, dict[str, Any]] = {}
        now = self._clock()
        for name, breaker in self._breakers.items():
            limited = self._limited_for(name, now)
            out[name] = {
                "state": breaker.state,
                "rate_limited": limited > 0,
                "health_score": round(self.score(name), 4),
                "error_rate": round(breaker.error_rate, 4),
                "error_budget": breaker.error_budget,
                "ttft_p50_s": breaker.ttft_quantile(0.5),
                "ttft_p90_s": breaker.ttft_quantile(0.9),
                "ttft_p99_s": breaker.ttft_quantile(0.99),
                "window": len(breaker),
                "failures": breaker.failures,
                "retry_in_s": round(max(breaker.retry_in_s(), limited), 3),
                "probes_in_flight": breaker.probes_in_flight,
                "opened_count": breaker.opened_count,
            }
        return out
