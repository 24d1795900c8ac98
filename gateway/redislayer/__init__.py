"""The Redis connection layer shared by all state (see layer.py)."""

from gateway.redislayer.client import RedisClient, make_client
from gateway.redislayer.guard import RedisGuard, RedisUnavailable, describe
from gateway.redislayer.keys import one_slot, slot_of, tagged
from gateway.redislayer.layer import RedisLayer, as_layer
from gateway.redislayer.settings import RedisSettings, redact_url

__all__ = [
    "RedisClient",
    "RedisGuard",
    "RedisLayer",
    "RedisSettings",
    "RedisUnavailable",
    "as_layer",
    "describe",
    "make_client",
    "one_slot",
    "redact_url",
    "slot_of",
    "tagged",
]
