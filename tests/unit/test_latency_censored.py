"""Kaplan-Meier on sketch bins: losers' censored samples keep a slow deployment honest."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.latency.censored import km_quantile, km_quantiles, km_survival
from gateway.latency.sketch import LogHistogram

MEDIAN = 0.6
SIGMA = 0.5


def race_loser_samples(n: int, seed: int) -> tuple[LogHistogram, LogHistogram, list[float]]:
    """TTFT X ~ lognormal; a competitor's draw Y cancels us at Y when Y < X (censored)."""
    rng = random.Random(seed)
    events, censored = LogHistogram(), LogHistogram()
    uncensored: list[float] = []
    for _ in range(n):
        x = rng.lognormvariate(math.log(MEDIAN), SIGMA)
        y = rng.lognormvariate(math.log(MEDIAN), SIGMA)
        if x <= y:
            events.add(x)
            uncensored.append(x)
        else:
            censored.add(y)
    return events, censored, uncensored


def test_km_recovers_the_truth_where_naive_estimate_is_far_off() -> None:
    events, censored, uncensored = race_loser_samples(20_000, seed=42)
    share = censored.count / (events.count + censored.count)
    assert 0.45 < share < 0.55  # about half the attempts lost the race

    km_p50 = km_quantile(events, censored, 0.5)
    assert km_p50 is not None
    assert abs(km_p50 - MEDIAN) / MEDIAN < 0.10

    naive_p50 = events.quantile(0.5)
    assert naive_p50 is not None
    assert abs(naive_p50 - MEDIAN) / MEDIAN > 0.15  # survivors only: looks much faster
    assert sorted(uncensored)[len(uncensored) // 2] == pytest.approx(naive_p50, rel=0.011)

    true_p90 = MEDIAN * math.exp(SIGMA * 1.2815515655446004)
    km_p90 = km_quantile(events, censored, 0.9)
    assert km_p90 is not None and abs(km_p90 - true_p90) / true_p90 < 0.10


def test_without_censoring_km_equals_the_plain_sketch_quantile() -> None:
    rng = random.Random(3)
    events = LogHistogram()
    for _ in range(5000):
        events.add(rng.lognormvariate(0.0, 0.8))
    empty = LogHistogram()
    for q in (0.01, 0.25, 0.5, 0.9, 0.99, 1.0):
        assert km_quantile(events, empty, q) == events.quantile(q)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-3, max_value=100.0), min_size=1, max_size=100),
    st.floats(min_value=0.01, max_value=1.0),
)
def test_km_matches_sketch_when_nothing_is_censored(xs: list[float], q: float) -> None:
    events = LogHistogram()
    for x in xs:
        events.add(x)
    assert km_quantile(events, LogHistogram(), q) == events.quantile(q)


def test_returns_none_when_censoring_hides_the_quantile() -> None:
    events, censored = LogHistogram(), LogHistogram()
    for _ in range(10):
        events.add(0.5)
    for _ in range(90):
        censored.add(1.0)  # 90 % never produced a token before being cancelled at 1 s
    assert km_quantile(events, censored, 0.1) == pytest.approx(0.5, rel=0.01)
    assert km_quantile(events, censored, 0.5) is None  # only "p50 > 1 s" is known
    assert km_quantiles(events, censored, [0.05, 0.5]) == [
        km_quantile(events, censored, 0.05),
        None,
    ]


def test_only_censored_never_reaches_any_quantile() -> None:
    censored = LogHistogram()
    censored.add(2.0, weight=100)
    assert km_quantile(LogHistogram(), censored, 0.01) is None
    assert km_survival(LogHistogram(), censored) == []


def test_censored_in_the_same_bucket_count_as_at_risk() -> None:
    """Convention: a sample censored in bucket i was still waiting at t_i."""
    events, censored = LogHistogram(), LogHistogram()
    events.add(1.0, weight=1)
    censored.add(1.0, weight=1)  # same bucket
    events.add(2.0, weight=2)
    curve = km_survival(events, censored)
    # bucket 1.0: d=1, n=4 (both the event and the censored one at risk) -> S = 3/4
    # bucket 2.0: d=2, n=2 -> S = 0
    assert [s for _, s in curve] == [pytest.approx(0.75), pytest.approx(0.0)]
    assert km_quantile(events, censored, 0.25) == pytest.approx(1.0, rel=0.01)
    assert km_quantile(events, censored, 0.26) == pytest.approx(2.0, rel=0.01)


def test_weighted_counts_scale_free() -> None:
    events, censored, _ = race_loser_samples(2000, seed=7)
    for q in (0.25, 0.5, 0.75):
        base = km_quantile(events, censored, q)
        assert km_quantile(events.scaled(1e-3), censored.scaled(1e-3), q) == base
        assert km_quantile(events.scaled(1e6), censored.scaled(1e6), q) == base


def test_rejects_bad_q_and_mismatched_grids() -> None:
    with pytest.raises(ValueError):
        km_quantile(LogHistogram(), LogHistogram(), 0.0)
    with pytest.raises(ValueError):
        km_quantile(LogHistogram(0.01), LogHistogram(0.02), 0.5)
