"""Shared state per backend: latency counters, rate limits, health sharing, stored responses.

`state.backend: memory` keeps everything in-process; `redis` shares it across
gateway instances. Either way the request path never waits on Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from gateway.access.runtime_keys import MemoryKeyStore, RedisKeyStore, RuntimeKeyStore
from gateway.config.model import Config
from gateway.latency.profile import LatencyProfiles
from gateway.latency.store import CounterStore, MemoryStore, RedisStore
from gateway.responses_store import MemoryResponseStore, RedisResponseStore, ResponseStore
from gateway.routing.feedback import FeedbackStore, MemoryFeedbackStore
from gateway.routing.feedback_redis import RedisFeedbackStore
from gateway.routing.health import HealthRegistry
from gateway.routing.ratelimit import (
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    deployment_limit,
    key_limit,
)
from gateway.routing.shared import SharedHealth
from gateway.routing.spend import MemorySpendTracker, RedisSpendTracker, SpendTracker
from gateway.routing.weights import WeightWorker, stats_from_snapshot


def rate_limits(config: Config) -> dict[str, Limit]:
    """Deployments' own limits, and the default per-key limit of unauthenticated callers
    (a key's limit comes with the key: `Admission`)."""
    limits = {
        deployment_limit(d.name): Limit(d.rpm, d.tpm)
        for d in config.deployments.values()
        if d.rpm is not None or d.tpm is not None
    }
    r = config.routing
    if r.key_rpm is not None or r.key_tpm is not None:
        limits[key_limit("anonymous")] = Limit(r.key_rpm, r.key_tpm)
    return limits


def keys_limited(config: Config) -> bool:
    """Whether any key may have a rate limit (so a Redis limiter is needed)."""
    r = config.routing
    return bool(r.key_rpm or r.key_tpm or config.auth.enabled)


class SharedState:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        state = config.state
        self.redis = state.backend == "redis"
        self.store: CounterStore = (
            RedisStore(state.url, prefix=state.prefix, cluster=state.cluster)
            if self.redis
            else MemoryStore(state.prefix)
        )
        self.profiles = LatencyProfiles(
            self.store,
            min_samples=config.latency.min_samples,
            half_life_s=config.latency.half_life_days * 86400.0,
            clock=clock,
        )
        h = config.health
        self.health = HealthRegistry(
            {d.name: d.error_budget for d in config.deployments.values()},
            window=h.window,
            min_requests=h.min_requests,
            cooldown_s=h.cooldown_s,
            probes=h.half_open_probes,
            probe_interval_s=h.probe_interval_s,
        )
        limits = rate_limits(config)
        self.limiter: RateLimiter = (
            RedisRateLimiter(state.url, limits, prefix=state.prefix)
            if self.redis and (limits or keys_limited(config))
            else MemoryRateLimiter(limits)
        )
        self.shared_health = (
            SharedHealth(self.health, state.url, prefix=state.prefix) if self.redis else None
        )
        window_s = config.routing.feedback_window_s
        self.feedback: FeedbackStore = (
            RedisFeedbackStore(state.url, prefix=state.prefix, window_s=window_s)
            if self.redis
            else MemoryFeedbackStore(window_s=window_s)
        )
        self.keys: RuntimeKeyStore = (
            RedisKeyStore(state.url, prefix=state.prefix, refresh_s=config.auth.refresh_s)
            if self.redis and config.auth.enabled
            else MemoryKeyStore()
        )
        self.spend: SpendTracker = (
            RedisSpendTracker(state.url, prefix=state.prefix)
            if self.redis
            else MemorySpendTracker()
        )
        stored = config.responses
        self.responses: ResponseStore = (
            RedisResponseStore(state.url, prefix=state.prefix, ttl_s=stored.store_ttl_s)
            if self.redis
            else MemoryResponseStore(
                stored.store_ttl_s, stored.max_stored, int(stored.max_stored_mb * 1024 * 1024)
            )
        )
        health = self.health
        self.weights = WeightWorker(
            dict(config.deployments),
            lambda: stats_from_snapshot(health.snapshot()),
            self.feedback.ratings,
            interval_s=config.routing.weights_interval_s,
            redis=state.url if self.redis else None,
            prefix=state.prefix,
        )

    def reusable_for(self, config: Config) -> bool:
        """Can a reload to `config` keep this state (and its Redis connections)? Yes while
        the backend section is the same and no Redis rate limiter has to appear."""
        if config.state != self.config.state:
            return False
        if self.redis and config.auth.enabled != self.config.auth.enabled:
            return False  # the runtime key store is Redis-backed only with auth on
        wants_redis_limiter = self.redis and bool(rate_limits(config) or keys_limited(config))
        return wants_redis_limiter == isinstance(self.limiter, RedisRateLimiter)

    def reconfigure(self, config: Config, fresh: Iterable[str] = ()) -> None:
        """Apply a reloaded config in place (`reusable_for(config)` is true): the state of
        kept deployments carries over; `fresh` ones (removed, or given a new identity)
        start again. Health settings that changed reset every breaker."""
        old, self.config = self.config, config
        fresh = set(fresh)
        if config.latency.half_life_days != old.latency.half_life_days:
            self.profiles = LatencyProfiles(
                self.store,
                min_samples=config.latency.min_samples,
                half_life_s=config.latency.half_life_days * 86400.0,
                clock=self.profiles.clock,
            )
        self.profiles.min_samples = config.latency.min_samples
        for name in fresh:
            self.profiles.forget(name)
        if config.health != old.health:
            h = config.health
            self.health.window, self.health.min_requests = h.window, h.min_requests
            self.health.cooldown_s, self.health.probes = h.cooldown_s, h.half_open_probes
            self.health.probe_interval_s = h.probe_interval_s
            fresh.update(self.health.names())
        budgets = {d.name: d.error_budget for d in config.deployments.values()}
        self.health.reconfigure(budgets, fresh)
        self.limiter.limits = rate_limits(config)
        self.feedback.window_s = config.routing.feedback_window_s
        self.weights.reconfigure(dict(config.deployments), fresh)
        self.weights.interval_s = max(config.routing.weights_interval_s, 0.001)
        stored = config.responses
        if isinstance(self.responses, MemoryResponseStore):
            self.responses.ttl_s = stored.store_ttl_s
            self.responses.max_stored = stored.max_stored
            self.responses.max_stored_bytes = int(stored.max_stored_mb * 1024 * 1024)
        elif isinstance(self.responses, RedisResponseStore):
            self.responses.ttl_ms = max(1, int(stored.store_ttl_s * 1000))

    @property
    def degraded(self) -> bool:
        """True while a Redis-backed component runs on its local view only."""
        parts = [self.limiter.degraded, self.feedback.degraded, self.spend.degraded]
        parts.append(self.keys.degraded)
        parts.append(self.weights.degraded)
        if self.shared_health is not None:
            parts.append(self.shared_health.degraded)
        if isinstance(self.store, RedisStore):
            parts.append(not self.store.healthy)
        return any(parts)

    async def start(self) -> None:
        await self.store.start()
        if self.shared_health is not None:
            await self.shared_health.start()
        await self.feedback.start()
        await self.spend.start()
        await self.weights.start()

    async def close(self) -> None:
        await self.weights.close()
        await self.spend.close()
        await self.feedback.close()
        if self.shared_health is not None:
            await self.shared_health.close()
        await self.limiter.close()
        await self.responses.close()
        await self.store.close()
