"""In-memory fixed-window limiter and the x-ratelimit-* headers."""

from __future__ import annotations

import pytest

from gateway.routing.ratelimit import (
    Decision,
    Limit,
    MemoryRateLimiter,
    deployment_limit,
    go_duration,
    key_limit,
    ratelimit_headers,
)


class Clock:
    def __init__(self, now: float = 1_700_000_050.0) -> None:  # 10 s into a minute
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_memory_limiter_requests_per_window() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter({key_limit("k1"): Limit(rpm=3)}, clock=clock)
    decisions = [await limiter.check_and_take(key_limit("k1")) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.limit == 3 and refused.retry_after_s == pytest.approx(50)
    assert refused.reset_s == pytest.approx(50)
    clock.now += 50  # next window
    again = await limiter.check_and_take(key_limit("k1"))
    assert again.allowed and again.remaining == 2 and again.reset_s == pytest.approx(60)


async def test_memory_limiter_tokens_and_refusal_takes_nothing() -> None:
    limiter = MemoryRateLimiter({deployment_limit("d"): Limit(rpm=10, tpm=1000)}, clock=Clock())
    name = deployment_limit("d")
    assert (await limiter.check_and_take(name, tokens=700)).remaining_tokens == 300
    big = await limiter.check_and_take(name, tokens=400)
    assert not big.allowed and big.remaining_tokens == 300 and big.remaining == 9
    small = await limiter.check_and_take(name, tokens=300)
    assert small.allowed and small.remaining_tokens == 0 and small.remaining == 8


async def test_unlisted_names_are_unlimited() -> None:
    limiter = MemoryRateLimiter({}, clock=Clock())
    decision = await limiter.check_and_take("key:other", tokens=10**9)
    assert decision.allowed and decision.limit is None
    assert ratelimit_headers(decision) == {}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.02, "20ms"),
        (0.0201, "21ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.25, "59.25s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (90.5, "1m30.5s"),
        (3600, "1h0m0s"),
        (3723, "1h2m3s"),
    ],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_headers_for_a_refusal() -> None:
    decision = Decision(False, 6.2, 60, 0, 6.2, limit_tokens=1000, remaining_tokens=12)
    assert ratelimit_headers(decision) == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "6.2s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "12",
        "x-ratelimit-reset-tokens": "6.2s",
        "retry-after": "7",
    }
    allowed = Decision(True, None, 60, 59, 59.0)
    assert "retry-after" not in ratelimit_headers(allowed)


async def test_memory_limiter_reports_use_of_the_current_window_only() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter({deployment_limit("d"): Limit(rpm=5, tpm=100)}, clock=clock)
    assert await limiter.used(deployment_limit("d")) == (0, 0)
    await limiter.check_and_take(deployment_limit("d"), tokens=30)
    await limiter.check_and_take(deployment_limit("d"), tokens=90)  # refused: takes nothing
    assert await limiter.used(deployment_limit("d")) == (1, 30)
    clock.now += 50  # next window
    assert await limiter.used(deployment_limit("d")) == (0, 0)
