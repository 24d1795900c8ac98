"""LatencyProfiles: back-off levels, prior, forward decay, race-record mapping."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.latency import (
    GENERATION_HALF_LIVES,
    LatencyProfiles,
    MemoryStore,
    hour_of,
    prior_quantile,
    to_epoch,
)
from gateway.latency.profile import DEFAULT_HALF_LIFE_S
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.streaming.events import UpstreamError, Usage

T0 = datetime(2025, 3, 4, 13, 20, tzinfo=UTC).timestamp()  # 13:20 UTC
PRIOR = (550.0, 900.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def profiles(min_samples: int = 10, now: float = T0) -> tuple[LatencyProfiles, Clock]:
    clock = Clock(now)
    return LatencyProfiles(
        MemoryStore(), min_samples=min_samples, clock=clock, cache_ttl_s=0
    ), clock


def test_hour_of_and_to_epoch() -> None:
    assert hour_of(T0) == 13
    assert hour_of(0) == 0 and hour_of(3600 * 23 + 3599) == 23 and hour_of(86400) == 0
    assert hour_of(-1) == 23
    naive = datetime(2025, 3, 4, 13, 20)
    assert to_epoch(naive) == T0  # naive means UTC
    paris = datetime(2025, 3, 4, 14, 20, tzinfo=timezone(timedelta(hours=1)))
    assert to_epoch(paris) == T0 and hour_of(to_epoch(paris)) == 13


def test_prior_is_lognormal_from_p50_p95() -> None:
    sigma = math.log(900 / 550) / 1.645
    assert prior_quantile(550, 900, 0.5) == pytest.approx(0.55)
    assert prior_quantile(550, 900, 0.95) == pytest.approx(
        0.55 * math.exp(sigma * 1.6448536), rel=1e-6
    )
    assert prior_quantile(550, 900, 0.95) == pytest.approx(0.9, rel=1e-3)
    assert prior_quantile(550, 900, 0.99) == pytest.approx(
        0.55 * math.exp(sigma * 2.3263479), rel=1e-6
    )
    assert prior_quantile(500, 400, 0.9) == pytest.approx(0.5)  # p95 < p50: no spread


def test_back_off_levels_follow_min_samples() -> None:
    p, _ = profiles(min_samples=10)
    for i in range(10):
        p.record_attempt("d", "eu", T0, ttft_s=0.5 + i * 0.001)  # eu, hour 13
    for _ in range(5):
        p.record_attempt("d", "eu", T0 - 23 * 3600, ttft_s=0.8)  # eu, hour 14 of the day before
    aged = 5 * 2 ** (-23 * 3600 / DEFAULT_HALF_LIFE_S)  # decayed by 23 hours

    e = p.ttft_quantile("d", "eu", 13, 0.5, PRIOR)
    assert e.level == "region_hour" and e.samples == 10 and e.censored_share == 0.0
    assert e.value_s == pytest.approx(0.505, rel=0.011)

    e = p.ttft_quantile("d", "eu", 14, 0.5, PRIOR)  # 5 < 10 at (eu, 14): any hour in eu
    assert e.level == "region" and e.samples == pytest.approx(10 + aged)

    e = p.ttft_quantile("d", "us", 13, 0.5, PRIOR)  # nothing in us: hour 13 in any region
    assert e.level == "hour" and e.samples == 10

    e = p.ttft_quantile("d", "us", 2, 0.5, PRIOR)  # nothing at 02:00 anywhere: global
    assert e.level == "global" and e.samples == pytest.approx(10 + aged)

    e = p.ttft_quantile("other", "eu", 13, 0.95, PRIOR)
    assert e.level == "prior" and e.samples == 0
    assert e.value_s == pytest.approx(prior_quantile(*PRIOR, 0.95))


def test_censored_samples_count_towards_min_samples_and_share() -> None:
    p, _ = profiles(min_samples=10)
    for _ in range(6):
        p.record_attempt("d", "eu", T0, ttft_s=0.4)
    for _ in range(4):
        p.record_attempt("d", "eu", T0, censored_s=0.3)
    e = p.ttft_quantile("d", "eu", 13, 0.5, PRIOR)
    assert e.level == "region_hour" and e.samples == 10
    assert e.censored_share == pytest.approx(0.4)


def test_too_much_censoring_backs_off_and_floors_the_prior() -> None:
    p, _ = profiles(min_samples=10)
    for _ in range(20):
        p.record_attempt("slow", "eu", T0, censored_s=5.0)  # always lost, never a token by 5 s
    e = p.ttft_quantile("slow", "eu", 13, 0.5, PRIOR)
    assert e.level == "prior"
    assert e.value_s == pytest.approx(5.0, rel=0.011)  # not the 0.55 s prior

    # events elsewhere let a coarser level answer
    for _ in range(20):
        p.record_attempt("slow", "us", T0, ttft_s=6.0)
    e = p.ttft_quantile("slow", "eu", 13, 0.5, PRIOR)
    assert e.level == "hour" and e.value_s == pytest.approx(6.0, rel=0.011)


def test_unknown_region_feeds_only_any_region_levels() -> None:
    p, _ = profiles(min_samples=1)
    p.record_attempt("d", "", T0, ttft_s=0.3)
    assert p.ttft_quantile("d", "eu", 13, 0.5, PRIOR).level == "hour"
    assert p.ttft_quantile("d", "", 13, 0.5, PRIOR).level == "hour"
    assert p.ttft_quantile("d", "", 4, 0.5, PRIOR).level == "global"


@pytest.mark.parametrize("start", ["mid_generation", "across_generation_boundary"])
def test_after_two_half_lives_old_samples_weigh_a_quarter(start: str) -> None:
    half_life = DEFAULT_HALF_LIFE_S
    generation = GENERATION_HALF_LIVES * half_life
    t_old = (
        T0
        if start == "mid_generation"
        else (math.floor(T0 / generation) + 1) * generation - half_life
    )
    p, clock = profiles(min_samples=10, now=t_old)
    for _ in range(1500):
        p.record_attempt("d", "eu", ttft_s=0.1)  # clock's now
    assert p.ttft_quantile("d", "eu", hour_of(t_old), 0.5, PRIOR).value_s == pytest.approx(
        0.1, rel=0.011
    )

    clock.now = t_old + 2 * half_life  # same hour of day, two half-lives later
    hist = p.histograms("d", "eu", None)
    assert hist.events.count == pytest.approx(1500 / 4, rel=1e-9)
    for _ in range(1000):
        p.record_attempt("d", "eu", ttft_s=1.0)
    e = p.ttft_quantile("d", "eu", hour_of(clock.now), 0.5, PRIOR)
    assert e.samples == pytest.approx(375 + 1000, rel=1e-9)
    # undecayed, 1500 fast vs 1000 slow would put p50 at 0.1 s; decayed, the new one dominates
    assert e.value_s == pytest.approx(1.0, rel=0.011)


def test_weights_stay_bounded_far_from_the_epoch() -> None:
    far = datetime(2100, 7, 1, tzinfo=UTC).timestamp()
    store = MemoryStore()
    p = LatencyProfiles(store, min_samples=1, clock=Clock(far), cache_ttl_s=0)
    for i in range(100):
        p.record_attempt("d", "eu", far + i * 86400, ttft_s=0.2)
    biggest = max(v for key in store._data for v in store._data[key].values())
    assert biggest < 100 * 2.0**GENERATION_HALF_LIVES
    assert all(math.isfinite(v) for key in store._data for v in store._data[key].values())


def test_decayed_quantiles_are_scale_free() -> None:
    """The same samples recorded at any time give the same quantiles."""
    values = [random.Random(2).lognormvariate(-0.5, 0.7) for _ in range(300)]
    answers = []
    for when in (T0, T0 + 9 * DEFAULT_HALF_LIFE_S, T0 + 33 * DEFAULT_HALF_LIFE_S):
        p, _ = profiles(min_samples=1, now=when)
        for x in values:
            p.record_attempt("d", "eu", ttft_s=x)
        e = p.ttft_quantile("d", "eu", hour_of(when), 0.9, PRIOR)
        answers.append((e.value_s, round(e.samples, 6)))
    assert answers[0] == answers[1] == answers[2]


def attempt(
    deployment: str,
    outcome: str,
    *,
    ttft: float | None = None,
    censored: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    tokens: int = 0,
) -> AttemptRecord:
    return AttemptRecord(
        deployment=deployment,
        start_offset_s=start,
        outcome=outcome,  # type: ignore[arg-type]
        ttft_s=ttft,
        censored_ttft_s=censored,
        end_offset_s=end,
        tokens=tokens,
    )


def test_observe_maps_every_attempt_of_a_race() -> None:
    p, _ = profiles(min_samples=1)
    record = RaceRecord(
        request_id="r1",
        route="chat",
        strategy="race",
        region="eu",
        attempts=[
            attempt("fast", "won", ttft=0.4, tokens=11),
            attempt("slow", "cancelled", censored=0.4, end=0.4),
            attempt("late-token", "cancelled", ttft=0.41, censored=0.41, end=0.41),
            attempt("broken", "failed", start=0.0, end=0.05),
            attempt("stuck", "timed_out", start=0.2, end=10.2),
        ],
        winner="fast",
        ttft_s=0.4,
        stream_outcome="completed",
        total_s=1.4,
    )
    record.attempts[0].usage = Usage(prompt=10, completion=21)
    record.attempts[3].error = UpstreamError(502, "upstream_error", "boom", True)
    p.observe(record, T0)

    fast = p.histograms("fast", "eu", 13)
    assert fast.events.count == 1 and fast.censored.count == 0
    assert fast.events.quantile(0.5) == pytest.approx(0.4, rel=0.011)
    assert fast.itl.quantile(0.5) == pytest.approx(1.0 / 20, rel=0.011)  # (1.4-0.4)/(21-1)
    assert p.outcomes("fast", "eu", 13) == {
        "won": 1.0,
        "completed": 1.0,
        "cancelled": 0.0,
        "failed": 0.0,
        "timed_out": 0.0,
    }

    slow = p.histograms("slow", "eu", 13)
    assert slow.events.count == 0 and slow.censored.count == 1
    assert slow.censored.quantile(0.5) == pytest.approx(0.4, rel=0.011)
    assert p.outcomes("slow")["cancelled"] == 1.0

    late = p.histograms("late-token", "eu", 13)  # its token arrived: a real observation
    assert late.events.count == 1 and late.censored.count == 0

    broken = p.histograms("broken", "eu", 13)
    assert broken.ttft_samples == 0 and p.outcomes("broken")["failed"] == 1.0

    stuck = p.histograms("stuck", None, None)
    assert stuck.events.count == 0 and stuck.censored.quantile(0.5) == pytest.approx(
        10.0, rel=0.011
    )
    assert p.outcomes("stuck", "eu")["timed_out"] == 1.0

    itl = p.itl_quantile("fast", "eu", 13, 0.5)
    assert itl is not None and itl.level == "region_hour"
    assert p.itl_quantile("slow", "eu", 13, 0.5) is None


def test_client_gone_running_attempt_is_censored_and_failed_stream_not_completed() -> None:
    p, _ = profiles(min_samples=1)
    record = RaceRecord(
        request_id="r2",
        route="chat",
        strategy="race",
        region="us",
        attempts=[attempt("a", "running", start=0.1), attempt("b", "won", ttft=0.2, tokens=5)],
        winner="b",
        ttft_s=0.2,
        stream_outcome="failed",
        total_s=0.9,
    )
    p.on_race_end(record)  # the profile is a RaceObserver (clock's now = 13:20)
    a = p.histograms("a", "us", 13)
    assert a.censored.quantile(0.5) == pytest.approx(0.8, rel=0.011)
    assert sum(p.outcomes("a").values()) == 0
    assert p.outcomes("b")["won"] == 1.0 and p.outcomes("b")["completed"] == 0.0
    assert p.histograms("b", None, None).itl.count == 0


def test_record_attempt_validates() -> None:
    p, _ = profiles()
    with pytest.raises(ValueError):
        p.record_attempt("d", "eu", T0, ttft_s=0.1, censored_s=0.2)
    with pytest.raises(ValueError):
        p.record_attempt("d", "eu", T0, ttft_s=-1.0)
    with pytest.raises(ValueError):
        p.record_attempt("d", "eu", T0, ttft_s=math.nan)
    with pytest.raises(ValueError):
        p.record_attempt("d", "eu", T0, outcome="exploded")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        p.ttft_quantile("d", "eu", 13, 1.0, PRIOR)


def test_keys_share_one_hash_tag_per_deployment() -> None:
    store = MemoryStore(prefix="rg")
    p = LatencyProfiles(store, clock=Clock(T0))
    p.record_attempt("gpt-4o-mini", "eu", T0, ttft_s=0.3)
    keys = sorted(store._data)
    assert len(keys) == 4
    assert all(k.startswith("{rg:gpt-4o-mini}:lat1:g") for k in keys)
    assert {k.rsplit(":", 2)[1] + ":" + k.rsplit(":", 2)[2] for k in keys} == {
        "eu:13",
        "eu:*",
        "*:13",
        "*:*",
    }


def test_query_cost_does_not_grow_with_history() -> None:
    p, _ = profiles(min_samples=1)
    rng = random.Random(1)
    for _ in range(20_000):
        p.record_attempt("d", "eu", T0, ttft_s=rng.lognormvariate(-0.5, 0.9))
    store = p.store
    assert isinstance(store, MemoryStore)
    assert all(len(fields) < 600 for fields in store._data.values())  # buckets, not samples


def test_answers_are_cached_briefly() -> None:
    clock = Clock(T0)
    p = LatencyProfiles(MemoryStore(), min_samples=1, clock=clock, cache_ttl_s=60)
    first = p.ttft_quantile("d", "eu", 13, 0.5, PRIOR)
    p.record_attempt("d", "eu", ttft_s=0.2)
    assert p.ttft_quantile("d", "eu", 13, 0.5, PRIOR) is first  # within the TTL
    assert p.ttft_quantile("d", "eu", 13, 0.9, PRIOR).level == "region_hour"  # other q: fresh
    p.cache_ttl_s = 0
    assert p.ttft_quantile("d", "eu", 13, 0.5, PRIOR).level == "region_hour"


def test_foreign_fields_in_a_shared_hash_are_ignored() -> None:
    store = MemoryStore()
    p = LatencyProfiles(store, min_samples=1, clock=Clock(T0), cache_ttl_s=0)
    p.record_attempt("d", "eu", ttft_s=0.3, outcome="won")
    for key in list(store._data):
        store.incr(key, {"tnot-a-number": 5.0, "x": 1.0, "": 2.0, "t12": math.inf, "c-3": -4.0})
    e = p.ttft_quantile("d", "eu", 13, 0.5, PRIOR)
    assert e.samples == pytest.approx(1.0) and e.value_s == pytest.approx(0.3, rel=0.011)
    assert p.outcomes("d")["won"] == pytest.approx(1.0)
