"""Latency profiles: TTFT / inter-token sketches per (deployment, region, hour), shared
through memory or Redis, with censoring-aware quantiles, decay and back-off."""

from gateway.latency.censored import km_quantile, km_quantiles, km_survival
from gateway.latency.clock import hour_of, to_epoch
from gateway.latency.profile import (
    ANY,
    GENERATION_HALF_LIVES,
    OUTCOMES,
    Estimate,
    Histograms,
    LatencyProfiles,
    Level,
    Outcome,
    prior_quantile,
)
from gateway.latency.select import hedge_delay, rank
from gateway.latency.sketch import LogHistogram
from gateway.latency.store import CounterStore, MemoryStore, RedisStore, tagged_key

__all__ = [
    "ANY",
    "GENERATION_HALF_LIVES",
    "OUTCOMES",
    "CounterStore",
    "Estimate",
    "Histograms",
    "LatencyProfiles",
    "Level",
    "LogHistogram",
    "MemoryStore",
    "Outcome",
    "RedisStore",
    "hedge_delay",
    "hour_of",
    "km_quantile",
    "km_quantiles",
    "km_survival",
    "prior_quantile",
    "rank",
    "tagged_key",
    "to_epoch",
]
