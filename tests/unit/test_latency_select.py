"""Selection helpers: ranking by predicted latency with exploration; hedge delay clamp."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from gateway.latency import hedge_delay, rank

PREDICTED = {"a": 0.9, "b": 0.3, "c": 0.5, "d": 2.0, "e": 1.1}


def test_rank_orders_by_prediction_without_exploration() -> None:
    ranked = rank(list(PREDICTED), PREDICTED.__getitem__, 2, 0.0, random.Random(0))
    assert ranked == ["b", "c", "a", "e", "d"]


def test_rank_ties_keep_given_order_and_nan_goes_last() -> None:
    scores = {"x": 1.0, "y": math.nan, "z": 1.0, "w": 0.5}
    assert rank(["x", "y", "z", "w"], scores.__getitem__, 1, 0.0, random.Random(0)) == [
        "w",
        "x",
        "z",
        "y",
    ]


def test_exploration_swaps_one_outsider_into_the_top_k() -> None:
    rng = random.Random(7)
    runs = 4000
    explored: Counter[str] = Counter()
    for _ in range(runs):
        ranked = rank(list(PREDICTED), PREDICTED.__getitem__, 2, 0.1, rng)
        assert sorted(ranked) == sorted(PREDICTED)  # a permutation
        assert ranked[0] == "b"  # the best keeps its place when k > 1
        if ranked[1] != "c":
            explored[ranked[1]] += 1
            assert ranked[2:].count("c") == 1  # swapped out, not lost
    share = sum(explored.values()) / runs
    assert 0.07 < share < 0.13
    assert set(explored) == {"a", "d", "e"}  # every outsider gets its turn


def test_exploration_with_k1_and_small_lists() -> None:
    rng = random.Random(1)
    always = rank(list(PREDICTED), PREDICTED.__getitem__, 1, 1.0, rng)
    assert always[0] != "b"
    assert rank(["a"], PREDICTED.__getitem__, 1, 1.0, rng) == ["a"]
    assert rank(["a", "b"], PREDICTED.__getitem__, 5, 1.0, rng) == ["b", "a"]
    assert rank([], PREDICTED.__getitem__, 2, 0.5, rng) == []


def test_rank_validates() -> None:
    with pytest.raises(ValueError):
        rank(["a"], PREDICTED.__getitem__, 0, 0.0, random.Random())
    with pytest.raises(ValueError):
        rank(["a"], PREDICTED.__getitem__, 1, 1.5, random.Random())


def test_hedge_delay_clamps() -> None:
    assert hedge_delay(0.7, 0.05, 2.0) == 0.7
    assert hedge_delay(0.01, 0.05, 2.0) == 0.05
    assert hedge_delay(9.0, 0.05, 2.0) == 2.0
    assert hedge_delay(math.nan, 0.05, 2.0) == 2.0
    with pytest.raises(ValueError):
        hedge_delay(1.0, 2.0, 1.0)
