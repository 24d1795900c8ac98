"""A hung Redis costs nothing (issue 16, item 6): a private redis-server is frozen with
SIGSTOP in the middle of a steady load on a gateway with per-key and per-deployment
limits and a budget. No request fails; the Redis breaker opens and remembers the outage
(later requests do not try Redis at all); after SIGCONT a probe closes it and the
`gateway_state_degraded` gauge goes back to 0 under traffic; and spend is exact: the
batch that timed out while Redis was frozen (and that Redis applied when it woke up) is
resent and counted once. Timing (TTFT before/during) is a bench claim:
bench/redis_freeze.py."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.gateways import fleet, spread
from tests.redis_servers import MISSING_REASON, REDIS_BINARIES, redis_node

pytestmark = pytest.mark.skipif(not REDIS_BINARIES, reason=MISSING_REASON)

FAST = {"ttft_ms": 2, "itl_ms": 0, "tokens": 3}
PRICED = {"price": {"input": 1.0, "output": 2.0}, "rpm": 1_000_000}


async def degraded_gauge(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("gateway_state_degraded"))
    return float(line.split()[-1])


async def test_frozen_redis_fails_no_request_and_spend_stays_exact() -> None:
    with redis_node() as node:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        state = {
            "backend": "redis",
            "url": f"redis://127.0.0.1:{node.port}/0",
            "prefix": prefix,
            "probe_interval_s": 0.1,
        }
        async with (
            fleet(
                1,
                {"a": FAST},
                state,
                deployments={"a": PRICED},
                routing={"key_rpm": 1_000_000, "key_daily_budget_usd": 1_000_000.0},
            ) as f,
            aiohttp.ClientSession() as http,
        ):
            gw = f.gateways[0]
            layer = gw.state.redis_layer
            assert layer is not None
            before = await spread(http, f.urls, total=40, concurrency=4)
            assert await degraded_gauge(http, f.urls[0]) == 0.0

            spend = gw.state.spend
            await spend.flush()  # type: ignore[attr-defined]  # leaves a connection idle
            spend.add("anonymous", 0.5)
            node.freeze()
            # sent on that connection; Redis applies it when it wakes up, the reply is lost
            await spend.flush()  # type: ignore[attr-defined]
            assert spend._unsent  # type: ignore[attr-defined]  # no reply: kept for resending
            frozen = await spread(http, f.urls, total=120, concurrency=4)
            assert layer.degraded and layer.guard.outages == 1
            assert await degraded_gauge(http, f.urls[0]) == 1.0
            skipped = layer.guard.skipped
            assert skipped > 0  # the outage is remembered: requests do not try Redis
            stats = layer.stats()  # what /admin/deployments shows as state_redis
            assert stats["degraded"] and stats["answered_locally"] == skipped

            node.thaw()
            after: list[int] = []
            deadline = time.monotonic() + 10
            while layer.degraded:  # steady traffic while a probe finds Redis again
                assert time.monotonic() < deadline, "the breaker never closed"
                after += await spread(http, f.urls, total=4, concurrency=2)
            after += await spread(http, f.urls, total=20, concurrency=4)
            assert await degraded_gauge(http, f.urls[0]) == 0.0
            assert layer.guard.outages == 1

            statuses = before + frozen + after
            assert statuses == [200] * len(statuses)  # 0 failed requests

            for _ in range(3):  # the batch lost in the freeze is resent: counted once
                await spend.flush()  # type: ignore[attr-defined]
            local = sum(gw.spend.by_deployment.values()) + 0.5
            client = Redis(host="127.0.0.1", port=node.port)
            try:
                shared = float(await client.get(spend.key("anonymous", spend._now().day)))  # type: ignore[attr-defined]
            finally:
                await client.aclose()
            assert spend.resent >= 1  # type: ignore[attr-defined]
            assert shared == pytest.approx(local, rel=1e-3)  # within 0.1 %
