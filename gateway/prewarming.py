"""Pre-warming wired to this gateway: the profiles predict, the upstream pools open.

`latency/prewarm.py` decides which deployments to keep warm for which region and hour;
this module gives it the profile predictions and a `warm` that opens idle keep-alive
connections through each provider's pool (one cheap GET per connection wanted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from gateway.config.model import Config
from gateway.latency.prewarm import PreWarmer
from gateway.latency.profile import LatencyProfiles
from gateway.upstreams import Upstreams


def make_prewarmer(
    config: Config,
    profiles: LatencyProfiles,
    upstreams: Upstreams,
    clock: Callable[[], float] = time.time,
) -> PreWarmer | None:
    lat = config.latency
    if not lat.prewarm.enabled or lat.prewarm.connections <= 0 or not config.deployments:
        return None
    deployments = config.deployments

    def predict(name: str, region: str, hour: int) -> float:
        prior = deployments[name].prior
        estimate = profiles.ttft_quantile(
            name, region, hour, 0.5, (prior.ttft_p50_ms, prior.ttft_p95_ms)
        )
        return estimate.value_s

    async def warm(targets: dict[str, int]) -> None:
        per_provider: dict[str, int] = {}
        for name, connections in targets.items():
            provider = deployments[name].provider
            per_provider[provider] = per_provider.get(provider, 0) + connections
        jobs: list[Awaitable[bool]] = []
        for provider_name, wanted in per_provider.items():
            request = upstreams.providers[provider_name].warmup_request()
            if request is None:
                continue
            pool = upstreams.pools[provider_name]
            cap = max(1, config.providers[provider_name].max_connections // 2)
            if pool.http2:
                cap = 1  # one connection carries every concurrent request
            jobs.extend(pool.warm(request) for _ in range(min(wanted, cap)))
        await asyncio.gather(*jobs, return_exceptions=True)

    keepalive = min((p.keepalive_s for p in config.providers.values()), default=30.0)
    top_n = max((r.k for r in config.routes.values()), default=1)
    return PreWarmer(
        deployments=list(deployments),
        predict=predict,
        warm=warm,
        top_n=top_n,
        connections=lat.prewarm.connections,
        interval_s=max(1.0, keepalive / 2),
        default_region=lat.default_region,
        clock=clock,
    )
