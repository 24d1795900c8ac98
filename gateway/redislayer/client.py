"""The one Redis client per gateway process, for the topology in `RedisSettings`.

Single node and Sentinel clients do not retry (a retried script could take a rate limit
twice; the caller owns time budgets and falls back to its local view). The Cluster client
retries briefly: MOVED/ASK redirections and a master failover are the client's business,
and every write we send there is either idempotent or carries a batch id.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff

from gateway.redislayer.settings import RedisSettings

RedisClient = Redis | RedisCluster


def client_options(settings: RedisSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.connect_timeout_s,
        "socket_timeout": settings.socket_timeout_s,
    }
    if settings.username is not None:
        options["username"] = settings.username
    if settings.password is not None:
        options["password"] = settings.password
    if settings.tls and settings.tls_ca_file:
        options["ssl_ca_certs"] = settings.tls_ca_file
    return options


def make_client(settings: RedisSettings) -> RedisClient:
    """A client that connects lazily (so a gateway starts while Redis is away)."""
    options = client_options(settings)
    if settings.topology == "cluster":
        return RedisCluster.from_url(
            settings.url,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 3),
            require_full_coverage=False,  # keep serving the slots that have a master
            **options,
        )
    options["retry"] = Retry(NoBackoff(), 0)
    if settings.topology == "sentinel":
        sentinel_options = {
            "socket_connect_timeout": settings.connect_timeout_s,
            "socket_timeout": settings.socket_timeout_s,
        }
        if settings.tls:
            options["ssl"] = True
        sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_options, **options)
        assert settings.sentinel_master is not None  # RedisSettings.from_config checked it
        return sentinel.master_for(settings.sentinel_master, db=settings.db)
    return Redis.from_url(settings.url, **options)
