"""Weights from success rate, TTFT, cost and ratings: the pure formula and the local worker."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway.config.model import DeploymentConfig, PriceConfig
from gateway.routing.feedback import MemoryFeedbackStore
from gateway.routing.weights import (
    DeploymentStats,
    WeightParams,
    WeightWorker,
    base_weights,
    compute_weights,
    stats_from_snapshot,
)

UNREACHABLE = "redis://127.0.0.1:1/0"
HEALTHY = DeploymentStats(success_rate=1.0, ttft_p50_s=0.5, samples=100)


def dep(
    name: str, weight: float = 1.0, price_in: float = 1.0, price_out: float = 1.0
) -> DeploymentConfig:
    return DeploymentConfig(
        name=name, provider="p", model="m", weight=weight, price=PriceConfig(price_in, price_out)
    )


def two(**kwargs: float) -> dict[str, DeploymentConfig]:
    return {"a": dep("a", **kwargs), "b": dep("b")}


def test_equal_deployments_share_equally_and_sum_to_one() -> None:
    deps = {name: dep(name) for name in "abc"}
    weights = compute_weights(deps, dict.fromkeys(deps, HEALTHY), {})
    assert weights == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_failing_deployment_gets_about_nothing() -> None:
    failing = DeploymentStats(success_rate=0.0, ttft_p50_s=None, samples=100)
    weights = compute_weights(two(), {"a": failing, "b": HEALTHY}, {})
    assert weights["a"] < 0.01 and sum(weights.values()) == pytest.approx(1.0)
    pure = compute_weights(two(), {"a": failing, "b": HEALTHY}, {}, WeightParams(min_share=0))
    assert pure["a"] < 1e-6
    # half failing: 0.5 ** 4 of the other's share (priors aside)
    half = DeploymentStats(success_rate=0.5, ttft_p50_s=0.5, samples=1000)
    weights = compute_weights(two(), {"a": half, "b": HEALTHY}, {})
    assert weights["a"] / weights["b"] == pytest.approx(0.5**4, rel=0.01)


def test_few_samples_are_shrunk_toward_healthy() -> None:
    one_failure = DeploymentStats(success_rate=0.0, ttft_p50_s=None, samples=1)
    weights = compute_weights(two(), {"a": one_failure, "b": HEALTHY}, {})
    assert 0.1 < weights["a"] < 0.5
    unknown = compute_weights(two(), {"b": HEALTHY}, {})  # no stats at all: healthy
    assert unknown["a"] == pytest.approx(0.5)


def test_faster_gets_more_with_a_square_root() -> None:
    fast = DeploymentStats(1.0, 0.25, 100)
    slow = DeploymentStats(1.0, 1.0, 100)
    weights = compute_weights(two(), {"a": fast, "b": slow}, {})
    assert weights["a"] / weights["b"] == pytest.approx(2.0)  # 4x faster -> 2x
    no_ttft = DeploymentStats(1.0, None, 100)
    weights = compute_weights(two(), {"a": no_ttft, "b": slow}, {})
    assert weights["a"] == pytest.approx(0.5)  # unknown TTFT is neither rewarded nor punished


def test_cheaper_gets_more_with_a_fourth_root() -> None:
    deps = {"a": dep("a", price_in=0.1, price_out=0.1), "b": dep("b", price_in=1.6, price_out=1.6)}
    weights = compute_weights(deps, {}, {})
    assert weights["a"] / weights["b"] == pytest.approx(2.0)  # 16x cheaper -> 2x
    free = {"a": dep("a", price_in=0, price_out=0), "b": dep("b")}
    weights = compute_weights(free, {}, {})
    assert weights["a"] / weights["b"] == pytest.approx(16**0.25)  # clamped
    unpriced = {"a": dep("a", price_in=0, price_out=0), "b": dep("b", price_in=0, price_out=0)}
    assert compute_weights(unpriced, {}, {}) == pytest.approx({"a": 0.5, "b": 0.5})


def test_ratings_move_weights_with_shrinkage() -> None:
    stats = {"a": HEALTHY, "b": HEALTHY}
    few = compute_weights(two(), stats, {"a": (1.0, 1.0)})
    many = compute_weights(two(), stats, {"a": (1.0, 1000.0)})
    bad = compute_weights(two(), stats, {"a": (-1.0, 1000.0)})
    assert 0.5 < few["a"] < 0.52  # one rating barely moves it
    assert many["a"] / many["b"] == pytest.approx(1.5, rel=0.01)  # up to +50 %
    assert bad["a"] / bad["b"] == pytest.approx(0.5, rel=0.01)  # down to -50 %
    assert few["a"] < many["a"]


def test_base_weight_scales_and_zero_disables() -> None:
    deps = {"a": dep("a", weight=3.0), "b": dep("b", weight=1.0), "off": dep("off", weight=0.0)}
    weights = compute_weights(deps, {}, {})
    assert weights == pytest.approx({"a": 0.75, "b": 0.25, "off": 0.0})
    assert base_weights(deps) == pytest.approx({"a": 0.75, "b": 0.25, "off": 0.0})
    assert compute_weights({"x": dep("x", weight=0)}, {}, {}) == {"x": 1.0}
    assert compute_weights({}, {}, {}) == {}


def test_everything_failing_falls_back_to_base_weights() -> None:
    dead = DeploymentStats(0.0, None, 100)
    deps = {"a": dep("a", weight=3.0), "b": dep("b")}
    params = WeightParams(success_prior_n=0)
    assert compute_weights(deps, {"a": dead, "b": dead}, {}, params) == pytest.approx(
        {"a": 0.75, "b": 0.25}
    )


def test_stats_from_health_snapshot() -> None:
    snapshot: dict[str, dict[str, Any]] = {
        "a": {"error_rate": 0.25, "ttft_p50_s": 0.4, "window": 40},
        "b": {"error_rate": 0.0, "ttft_p50_s": None, "window": 0},
    }
    assert stats_from_snapshot(snapshot) == {
        "a": DeploymentStats(0.75, 0.4, 40),
        "b": DeploymentStats(1.0, None, 0),
    }


async def test_local_worker_recomputes_each_interval_and_follows_feedback() -> None:
    now = [0.0]
    feedback = MemoryFeedbackStore()
    worker = WeightWorker(
        two(),
        stats=lambda: {"a": HEALTHY, "b": HEALTHY},
        ratings=feedback.ratings,
        interval_s=60,
        clock=lambda: now[0],
    )
    seen: list[dict[str, float]] = []
    worker.add_listener(seen.append)
    assert worker.weights() == {"a": 0.5, "b": 0.5}  # base weights before any computation
    await worker.tick()
    assert worker.computations == 1
    for i in range(50):
        feedback.remember(f"r{i}", "a")
        await feedback.rate(f"r{i}", 1.0)
    await worker.tick()  # not due yet
    assert worker.computations == 1 and worker.weights()["a"] == pytest.approx(0.5)
    now[0] += 60
    await worker.tick()
    assert worker.computations == 2 and worker.weights()["a"] > 0.55
    assert seen and seen[-1] == worker.weights()
    assert not worker.degraded


async def test_background_task_starts_and_closes() -> None:
    worker = WeightWorker(two(), stats=dict, ratings=dict, interval_s=0.05)
    await worker.start()
    deadline = time.monotonic() + 2
    while worker.computations < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await worker.close()
    done = worker.computations
    await asyncio.sleep(0.1)
    assert worker.computations == done  # the task is gone


async def test_redis_unreachable_computes_locally_and_is_degraded() -> None:
    now = [0.0]
    failing = DeploymentStats(0.0, None, 100)
    worker = WeightWorker(
        two(),
        stats=lambda: {"a": failing, "b": HEALTHY},
        ratings=dict,
        interval_s=60,
        redis=UNREACHABLE,
        prefix="test-w-down",
        op_timeout_s=0.3,
        clock=lambda: now[0],
    )
    try:
        started = time.monotonic()
        await worker.tick()
        assert time.monotonic() - started < 1.0
        assert worker.degraded and worker.outage.outages == 1
        assert worker.computations == 1 and worker.weights()["a"] < 0.01
        await worker.tick()  # still down, not due: no new computation, no new warning
        assert worker.computations == 1 and worker.outage.outages == 1
        now[0] += 60
        await worker.tick()
        assert worker.computations == 2
    finally:
        await worker.close()


class CancelSwallowingRedis:
    """Like redis-py when its command is cancelled: raises ConnectionError instead, or
    returns as if nothing happened."""

    def __init__(self, disguise: bool) -> None:
        self.disguise = disguise
        self.blocked = asyncio.Event()

    async def set(self, *args: Any, **kwargs: Any) -> bool:
        self.blocked.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if self.disguise:
                raise ConnectionError("Connection closed by server.") from None
        return False

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {}

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None


@pytest.mark.parametrize("disguise", [True, False])
async def test_close_stops_a_worker_whose_redis_call_swallows_the_cancellation(
    disguise: bool,
) -> None:
    """A cancellation turned into ConnectionError (or swallowed) must not pass for an
    outage or a normal return: the loop would carry on and close() would wait forever."""
    fake = CancelSwallowingRedis(disguise)
    worker = WeightWorker(
        two(),
        stats=lambda: {},
        ratings=dict,
        interval_s=60,
        redis=fake,
        poll_s=0.01,  # type: ignore[arg-type]
    )
    await worker.start()
    await asyncio.wait_for(fake.blocked.wait(), 5)
    async with asyncio.timeout(5):
        await worker.close()
    assert not worker.degraded
