"""Feedback in memory: request ids remembered (bounded), ratings as decayed sums."""

from __future__ import annotations

import pytest

from gateway.record import RequestRecord
from gateway.routing.feedback import (
    MAX_REQUESTS,
    DecayedSum,
    FeedbackStore,
    FeedbackWindowClosed,
    MemoryFeedbackStore,
)
from gateway.sinks import FeedbackSink
from gateway.streaming.accounting import AttemptRecord, RaceRecord

DAY = 86_400.0


def record(request_id: str, winner: str | None) -> RaceRecord:
    attempts = [AttemptRecord("cheap", 0.0, outcome="won" if winner else "failed")]
    return RaceRecord(request_id, "chat", "race", attempts=attempts, winner=winner)


async def test_remember_then_rate_returns_the_deployment() -> None:
    store: FeedbackStore = MemoryFeedbackStore(wall_clock=lambda: 1_000.0)
    store.remember("req-1", "cheap", "chat")
    store.remember("req-2", "premium", "chat")
    store.remember("req-3", "premium", "chat")
    assert await store.rate("req-1", 1.0) == "cheap"
    assert await store.rate("req-2", -0.5) == "premium"
    assert await store.rate("req-3", 0.5) == "premium"
    assert store.ratings() == {"cheap": (1.0, 1.0), "premium": (0.0, 2.0)}
    assert not store.degraded


async def test_a_second_rating_replaces_the_first() -> None:
    now = [1_000.0]
    store = MemoryFeedbackStore(half_life_s=DAY, wall_clock=lambda: now[0])
    store.remember("req-1", "cheap", "chat", "team-a")
    store.remember("req-2", "cheap", "chat", "team-a")
    assert await store.rate("req-1", -1.0, "team-a") == "cheap"
    assert await store.rate("req-2", 1.0, "team-a") == "cheap"
    now[0] += 3600
    for _ in range(5):  # rating again and again moves nothing further
        assert await store.rate("req-1", 1.0, "team-a") == "cheap"
    mean, count = store.ratings()["cheap"]
    assert mean == pytest.approx(1.0) and count == pytest.approx(2.0, rel=0.05)


async def test_only_the_key_that_asked_may_rate_and_the_admin_may_rate_any() -> None:
    store = MemoryFeedbackStore(wall_clock=lambda: 1_000.0)
    store.remember("req-1", "cheap", "chat", "team-a")
    assert await store.rate("req-1", 1.0, "team-b") is None  # like an unknown id
    assert store.ratings() == {}
    assert await store.rate("req-1", 1.0, None) == "cheap"  # None: the admin key
    assert await store.rate("req-1", 0.5, "team-a") == "cheap"
    assert store.ratings() == {"cheap": (0.5, 1.0)}


async def test_another_key_reusing_a_request_id_does_not_take_it_over() -> None:
    store = MemoryFeedbackStore(wall_clock=lambda: 1_000.0)
    store.remember("req-1", "cheap", "chat", "team-a")
    store.remember("req-1", "premium", "chat", "team-b")  # client-chosen x-request-id
    assert await store.rate("req-1", 1.0, "team-b") is None
    assert await store.rate("req-1", 1.0, "team-a") == "cheap"
    store.remember("req-1", "premium", "chat", "team-a")  # its own id again: the newest
    assert await store.rate("req-1", 1.0, "team-a") == "premium"


async def test_rating_is_refused_after_the_window() -> None:
    now = [1_000.0]
    store = MemoryFeedbackStore(window_s=60.0, wall_clock=lambda: now[0])
    store.remember("req-1", "cheap", "chat", "k")
    now[0] += 60.0
    assert await store.rate("req-1", 1.0, "k") == "cheap"  # the last second of the window
    now[0] += 0.5
    with pytest.raises(FeedbackWindowClosed):
        await store.rate("req-1", 1.0, "k")
    with pytest.raises(FeedbackWindowClosed):
        await store.rate("req-1", 1.0, None)  # the admin key too


async def test_the_feedback_sink_remembers_the_winner_and_the_key() -> None:
    store = MemoryFeedbackStore()
    sink = FeedbackSink(store)
    won = RequestRecord("won", "chat", "team-a", "chat", route="chat", race=record("won", "cheap"))
    lost = RequestRecord("lost", "chat", "team-a", "chat", route="chat", race=record("lost", None))
    sink.record(won)
    sink.record(lost)
    sink.record(RequestRecord("refused", "chat", "team-a", "chat", outcome="rejected"))
    served = store.lookup("won")
    assert served is not None and served.deployment == "cheap" and served.route == "chat"
    assert served.key_id == "team-a"
    assert await store.rate("won", 0.2, "team-a") == "cheap"
    assert await store.rate("lost", 0.2) is None
    assert await store.rate("refused", 0.2) is None


async def test_memory_is_bounded_oldest_forgotten_first() -> None:
    assert MAX_REQUESTS == 100_000
    assert MemoryFeedbackStore()._requests.max_requests == 100_000
    store = MemoryFeedbackStore(max_requests=3)
    for i in range(5):
        store.remember(f"r{i}", f"d{i}")
    assert len(store) == 3
    assert await store.rate("r0", 1.0) is None
    assert await store.rate("r1", 1.0) is None
    assert await store.rate("r4", 1.0) == "d4"
    store.remember("r2", "d2")  # remembered again: now the newest
    store.remember("r5", "d5")
    assert await store.rate("r2", 1.0) == "d2"
    assert await store.rate("r3", 1.0) is None


async def test_ratings_decay_with_the_half_life() -> None:
    now = [1_000_000.0]
    store = MemoryFeedbackStore(half_life_s=DAY, wall_clock=lambda: now[0])
    store.remember("a", "cheap")
    store.remember("b", "cheap")
    await store.rate("a", 1.0)
    now[0] += DAY
    mean, count = store.ratings()["cheap"]
    assert mean == pytest.approx(1.0) and count == pytest.approx(0.5)
    await store.rate("b", -1.0)  # the old rating weighs half as much as the new one
    mean, count = store.ratings()["cheap"]
    assert mean == pytest.approx((0.5 - 1.0) / 1.5) and count == pytest.approx(1.5)


def test_decayed_sum_late_rating_and_merge() -> None:
    d = DecayedSum()
    d.add(1.0, 100.0, 10.0)
    d.add(-1.0, 90.0, 10.0)  # ten seconds older: half weight, time stays
    assert (d.s, d.n, d.t) == (pytest.approx(0.5), pytest.approx(1.5), 100.0)
    other = DecayedSum(1.0, 1.0, 110.0)
    merged = d.merge(other, 10.0)
    assert merged.t == 110.0
    assert merged.s == pytest.approx(0.25 + 1.0) and merged.n == pytest.approx(0.75 + 1.0)
    assert DecayedSum().at(5.0, 10.0) == (0.0, 0.0)
