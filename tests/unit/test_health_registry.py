"""HealthRegistry: filtering candidates, the all-blocked probe, race-record mapping, snapshot."""

from __future__ import annotations

import pytest

from gateway.routing.health import AllUnavailable, HealthRegistry, Outcome, StateChange
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.streaming.events import UpstreamError


class Clock:
    def __init__(self, now: float = 500.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def registry(clock: Clock, **budgets: float) -> HealthRegistry:
    return HealthRegistry(
        budgets or {"a": 0.05, "b": 0.05, "c": 0.01},
        window=100,
        min_requests=20,
        cooldown_s=30,
        probes=2,
        clock=clock,
    )


def trip(reg: HealthRegistry, name: str) -> None:
    for _ in range(20):
        reg.record_failure(name, 503)
    assert reg.breaker(name).state == "open"


def err(status: int, opens: bool = True, retry_after_s: float | None = None) -> UpstreamError:
    return UpstreamError(
        status, "x", f"status {status}", True, retry_after_s=retry_after_s, opens_circuit=opens
    )


def race(*attempts: AttemptRecord, rid: str = "r1", stream: str = "completed") -> RaceRecord:
    record = RaceRecord(request_id=rid, route="chat", strategy="race")
    record.attempts.extend(attempts)
    record.stream_outcome = stream  # type: ignore[assignment]
    return record


def attempt(name: str, outcome: str, **kwargs: object) -> AttemptRecord:
    record = AttemptRecord(deployment=name, start_offset_s=0.0, **kwargs)  # type: ignore[arg-type]
    record.outcome = outcome  # type: ignore[assignment]
    return record


def test_filter_skips_open_and_keeps_order() -> None:
    reg = registry(Clock())
    trip(reg, "b")
    assert reg.filter(["c", "b", "a"]) == ["c", "a"]
    assert reg.filter([]) == []


def test_filter_all_blocked_returns_the_one_reopening_first() -> None:
    clock = Clock()
    reg = registry(clock)
    trip(reg, "a")
    clock.now += 10
    trip(reg, "b")  # reopens 10 s after a
    reg.breaker("c").cool(50)
    assert reg.filter(["b", "c", "a"]) == ["a"]
    clock.now += 35  # b reopens in 5 s, c cools 15 s more
    assert reg.filter(["c", "b"]) == ["b"]


def test_filter_half_open_takes_probe_slots_and_on_race_end_frees_unused_ones() -> None:
    clock = Clock()
    reg = registry(clock)
    trip(reg, "a")
    clock.now += 30
    assert reg.filter(["a", "b"], request_id="r1") == ["a", "b"]
    assert reg.filter(["a", "b"], request_id="r2") == ["a", "b"]
    assert reg.filter(["a", "b"], request_id="r3") == ["b"]  # both probe slots taken
    assert reg.breaker("a").probes_in_flight == 2
    # r1 never attempted a (b won first): its slot is freed
    reg.on_race_end(race(attempt("b", "won", ttft_s=0.2), rid="r1"))
    assert reg.breaker("a").probes_in_flight == 1
    # r2 probed a and it succeeded; then one more success closes it
    reg.on_race_end(race(attempt("a", "won", ttft_s=0.2), rid="r2"))
    assert reg.breaker("a").state == "half_open"
    reg.filter(["a"], request_id="r4")
    reg.on_race_end(race(attempt("a", "won", ttft_s=0.2), rid="r4"))
    assert reg.breaker("a").state == "closed"


def test_rate_limited_deployment_is_skipped_until_the_window_resets() -> None:
    clock = Clock()
    reg = registry(clock)
    reg.mark_rate_limited("a", 3)
    assert reg.filter(["a", "b"]) == ["b"]
    assert reg.score("a") == 0.0
    assert reg.filter(["a"]) == ["a"]  # all blocked: still one candidate
    clock.now += 3
    assert reg.filter(["a", "b"]) == ["a", "b"]


def test_on_race_end_maps_outcomes() -> None:
    reg = registry(Clock())
    outcomes: list[Outcome] = []
    reg.add_outcome_listener(outcomes.append)
    reg.on_race_end(
        race(
            attempt("a", "won", ttft_s=0.4),
            attempt("b", "failed", error=err(503)),
            attempt("c", "cancelled", censored_ttft_s=0.4),
        )
    )
    reg.on_race_end(race(attempt("b", "timed_out", error=err(504)), stream="no_winner"))
    assert outcomes == [
        Outcome("a", True, 0.4),
        Outcome("b", False, status=503),
        Outcome("b", False, status=504),
    ]
    assert len(reg.breaker("c")) == 0  # cancelled: neutral
    assert reg.breaker("a").ttft_quantile(0.5) == pytest.approx(0.4)


def test_client_errors_do_not_count() -> None:
    reg = registry(Clock())
    for status in (400, 413, 422):
        for _ in range(10):
            reg.on_race_end(
                race(attempt("a", "failed", error=err(status, opens=False)), stream="no_winner")
            )
    assert len(reg.breaker("a")) == 0
    assert reg.breaker("a").state == "closed"


def test_failures_from_race_records_open_the_breaker() -> None:
    reg = registry(Clock())
    changes: list[StateChange] = []
    reg.add_listener(changes.append)
    for i in range(20):
        reg.on_race_end(race(attempt("a", "failed", error=err(500)), rid=f"r{i}"))
    assert reg.breaker("a").state == "open"
    assert [(c.deployment, c.old, c.new, c.remote) for c in changes] == [
        ("a", "closed", "open", False)
    ]
    assert changes[0].retry_in_s == 30


def test_midstream_failure_of_the_winner_counts_as_failure() -> None:
    reg = registry(Clock())
    reg.on_race_end(race(attempt("a", "won", ttft_s=0.1, error=err(502)), stream="failed"))
    assert reg.breaker("a").failures == 1


def test_429_with_retry_after_cools_even_when_not_counted() -> None:
    reg = registry(Clock())
    reg.on_race_end(
        race(attempt("a", "failed", error=err(429, retry_after_s=7)), stream="no_winner")
    )
    assert reg.breaker("a").state == "cooling"
    assert reg.retry_in_s("a") == pytest.approx(7)
    reg.on_race_end(
        race(
            attempt("b", "failed", error=err(429, opens=False, retry_after_s=4)), stream="no_winner"
        )
    )
    assert reg.breaker("b").state == "cooling" and len(reg.breaker("b")) == 0


def test_apply_remote_is_flagged_and_unknown_names_get_a_default_breaker() -> None:
    reg = registry(Clock())
    changes: list[StateChange] = []
    reg.add_listener(changes.append)
    reg.apply_remote("zzz", "open", 12)
    assert reg.breaker("zzz").state == "open" and reg.filter(["zzz", "a"]) == ["a"]
    reg.apply_remote("zzz", "closed")
    assert reg.breaker("zzz").state == "closed"
    assert [(c.new, c.remote) for c in changes] == [("open", True), ("closed", True)]
    reg.apply_remote("zzz", "half_open", 1)  # ignored
    assert reg.breaker("zzz").state == "closed"


def test_snapshot() -> None:
    clock = Clock()
    reg = registry(clock)
    for ttft in (0.1, 0.2, 0.3, 0.4):
        reg.record_success("a", ttft)
    trip(reg, "b")
    snap = reg.snapshot()
    assert set(snap) == {"a", "b", "c"}
    a = snap["a"]
    assert a["state"] == "closed" and a["window"] == 4 and a["error_rate"] == 0.0
    assert a["ttft_p50_s"] == pytest.approx(0.25)
    assert a["health_score"] == 1.0
    b = snap["b"]
    assert b["state"] == "open" and b["health_score"] == 0.0 and b["error_rate"] == 1.0
    assert b["retry_in_s"] == 30 and b["ttft_p99_s"] is None
    assert snap["c"]["error_budget"] == 0.01


def test_all_blocked_probes_each_deployment_once_per_interval_then_sheds() -> None:
    clock = Clock()
    reg = registry(clock)
    reg.probe_interval_s = 2.0
    probes: list[tuple[str, float]] = []
    reg.add_probe_listener(lambda name, held: probes.append((name, held)))
    trip(reg, "a")
    trip(reg, "b")
    assert reg.filter(["a", "b"]) == ["a"]  # a forced probe
    assert reg.filter(["a", "b"]) == ["b"]  # a's slot is taken: b's probe
    with pytest.raises(AllUnavailable) as shed:
        reg.filter(["a", "b"])
    # the shortest wait: each breaker asked for 30 s (a probe slot frees sooner, but only
    # for the one probe)
    assert shed.value.retry_in_s == pytest.approx(30.0) and not shed.value.rate_limited
    assert probes == [("a", 2.0), ("b", 2.0)]
    clock.now += 2.0  # the interval is over: one more probe each
    assert reg.filter(["b", "a"]) == ["b"]


def test_shed_waits_for_the_shortest_wait_and_says_when_all_are_rate_limited() -> None:
    clock = Clock()
    reg = registry(clock)
    reg.probe_interval_s = 1.0
    reg.mark_rate_limited("a", 5.0)
    reg.mark_rate_limited("b", 3.0)
    assert reg.filter(["a", "b"]) == ["b"]
    assert reg.filter(["a", "b"]) == ["a"]
    with pytest.raises(AllUnavailable) as shed:
        reg.filter(["a", "b"])
    assert shed.value.rate_limited and shed.value.retry_in_s == pytest.approx(3.0)


def test_a_probe_forced_on_another_instance_holds_ours_back() -> None:
    clock = Clock()
    reg = registry(clock)
    trip(reg, "a")
    reg.note_remote_probe("a", 1.5)
    with pytest.raises(AllUnavailable) as shed:
        reg.filter(["a"])
    assert shed.value.retry_in_s == pytest.approx(30.0)  # a's own breaker wait is longer
    clock.now += 31
    assert reg.filter(["a"]) == ["a"]  # half-open now: a normal probe slot
