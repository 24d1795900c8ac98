"""CircuitBreaker: error budget over a window, cooldown, half-open probes, retry-after cooling."""

from __future__ import annotations

import pytest

from gateway.routing.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, **kwargs: float) -> tuple[CircuitBreaker, list[tuple[str, str, float]]]:
    changes: list[tuple[str, str, float]] = []
    options: dict[str, float] = {
        "window": 100,
        "error_budget": 0.05,
        "min_requests": 20,
        "cooldown_s": 30,
        "half_open_probes": 3,
    }
    options.update(kwargs)
    breaker = CircuitBreaker(
        window=int(options["window"]),
        error_budget=options["error_budget"],
        min_requests=int(options["min_requests"]),
        cooldown_s=options["cooldown_s"],
        half_open_probes=int(options["half_open_probes"]),
        clock=clock,
    )

    def listener(old: BreakerState, new: BreakerState, retry_in_s: float) -> None:
        changes.append((old, new, retry_in_s))

    breaker.listener = listener
    return breaker, changes


def test_stays_closed_below_min_requests_even_when_all_fail() -> None:
    breaker, changes = make(Clock())
    for _ in range(19):
        breaker.record_failure(503)
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.error_rate == 1.0
    assert changes == []


def test_opens_when_error_rate_exceeds_budget_with_min_requests() -> None:
    breaker, changes = make(Clock())
    for _ in range(18):
        breaker.record_success(0.2)
    breaker.record_failure(503)  # 1/19 is over the budget but not enough outcomes yet
    assert breaker.state == "closed"
    breaker.record_failure(503)  # 2/20 = 10 % > 5 %
    assert breaker.state == "open"
    assert not breaker.allow()
    assert changes == [("closed", "open", 30.0)]


def test_error_rate_exactly_at_budget_does_not_open() -> None:
    breaker, _ = make(Clock())
    for _ in range(19):
        breaker.record_success(0.1)
    breaker.record_failure(500)  # 1/20 = 5 %: not above the budget
    assert breaker.state == "closed"


def test_window_forgets_old_outcomes() -> None:
    breaker, _ = make(Clock(), window=20, min_requests=20, error_budget=0.1)
    breaker.record_failure(500)
    breaker.record_failure(500)
    for _ in range(20):
        breaker.record_success(0.1)
    assert len(breaker) == 20 and breaker.failures == 0 and breaker.error_rate == 0.0


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(20):
        breaker.record_failure(503)
    assert breaker.state == "open"


def test_stays_open_for_cooldown_then_half_open_probes_close_it() -> None:
    clock = Clock()
    breaker, changes = make(clock)
    trip(breaker)
    clock.now += 29.9
    assert breaker.state == "open" and not breaker.allow()
    assert breaker.retry_in_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == "half_open"
    # three concurrent probes, the fourth is refused
    assert [breaker.allow() for _ in range(4)] == [True, True, True, False]
    assert breaker.probes_in_flight == 3
    breaker.record_success(0.3)
    breaker.record_success(0.3)
    assert breaker.state == "half_open"
    breaker.record_success(0.3)
    assert breaker.state == "closed"
    assert len(breaker) == 0  # window reset on close
    assert [c[:2] for c in changes] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_failed_probe_reopens_with_doubled_cooldown_capped() -> None:
    clock = Clock()
    breaker, _ = make(clock, cooldown_s=10)
    trip(breaker)
    expected = [20.0, 40.0, 80.0, 80.0]  # cap: 8 x cooldown
    cooldown = 10.0
    for wait in expected:
        clock.now += cooldown
        assert breaker.state == "half_open"
        assert breaker.allow()
        breaker.record_failure(502)
        assert breaker.state == "open"
        assert breaker.retry_in_s() == pytest.approx(wait)
        cooldown = wait
    # recovery resets the cooldown
    clock.now += cooldown
    for _ in range(3):
        assert breaker.allow()
        breaker.record_success(0.1)
    assert breaker.state == "closed"
    trip(breaker)
    assert breaker.retry_in_s() == pytest.approx(10.0)


def test_released_and_expired_probes_free_slots() -> None:
    clock = Clock()
    breaker, _ = make(clock, half_open_probes=1)
    trip(breaker)
    clock.now += 30
    assert breaker.allow() and not breaker.allow()
    breaker.release_probe()  # e.g. the probe was cancelled: no outcome
    assert breaker.allow() and not breaker.allow()
    clock.now += breaker.probe_timeout_s  # a probe nobody reported on
    assert breaker.allow()


def test_retry_after_cools_independently_of_error_rate() -> None:
    clock = Clock()
    breaker, changes = make(clock)
    breaker.record_failure(429, retry_after_s=12)
    assert breaker.state == "cooling" and not breaker.allow()
    assert breaker.phase == "closed"
    assert breaker.retry_in_s() == pytest.approx(12)
    assert changes == [("closed", "cooling", 12.0)]
    clock.now += 12
    assert breaker.state == "closed" and breaker.allow()


def test_retry_after_only_for_429_and_529_and_capped() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    breaker.record_failure(503, retry_after_s=10)
    assert breaker.state == "closed"
    breaker.record_failure(529, retry_after_s=10_000)
    assert breaker.state == "cooling"
    assert breaker.retry_in_s() == pytest.approx(breaker.max_cooling_s)


def test_cooling_blocks_half_open_probes() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    trip(breaker)
    clock.now += 25
    breaker.cool(20)  # until +45; open until +30
    clock.now += 10
    assert breaker.phase == "half_open" and breaker.state == "cooling"
    assert not breaker.allow()
    clock.now += 10
    assert breaker.state == "half_open" and breaker.allow()


def test_ttft_quantiles_and_health_score() -> None:
    breaker, _ = make(Clock(), min_requests=10, error_budget=0.1)
    assert breaker.ttft_quantile(0.5) is None
    assert breaker.health_score() == 1.0
    for i in range(1, 11):
        breaker.record_success(i / 10)  # 0.1 .. 1.0
    assert breaker.ttft_quantile(0.0) == pytest.approx(0.1)
    assert breaker.ttft_quantile(0.5) == pytest.approx(0.55)
    assert breaker.ttft_quantile(1.0) == pytest.approx(1.0)
    assert breaker.health_score() == 1.0  # p90 0.91 s is within ttft_ref_s 2 s
    breaker.record_failure(500)  # e = 1/11 (under the 10 % budget): factor 1 - 0.0909/0.4
    assert breaker.state == "closed"
    assert breaker.health_score() == pytest.approx(1 - (1 / 11) / 0.4)


def test_health_score_latency_factor_and_open_is_zero() -> None:
    clock = Clock()
    breaker, _ = make(clock)
    for _ in range(10):
        breaker.record_success(4.0)  # p90 4 s, twice the 2 s reference
    assert breaker.health_score() == pytest.approx(0.5)
    trip(breaker)
    assert breaker.health_score() == 0.0


def test_seed_fills_only_an_empty_window_without_transitions() -> None:
    breaker, changes = make(Clock())
    breaker.seed([(False, None)] * 30)
    assert len(breaker) == 30 and breaker.state == "closed" and changes == []
    breaker.seed([(True, 0.1)])
    assert breaker.failures == 30


def test_trip_and_reset_from_outside() -> None:
    clock = Clock()
    breaker, changes = make(clock)
    breaker.trip(5, notify=False)
    assert breaker.state == "open" and changes == []
    breaker.trip(1)  # never shortens
    assert breaker.retry_in_s() == pytest.approx(5)
    breaker.reset()
    assert breaker.state == "closed"
    assert changes == [("open", "closed", 0.0)]
