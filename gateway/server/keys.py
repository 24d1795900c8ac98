"""Typed application and request state keys."""

from __future__ import annotations

from aiohttp import web

from gateway.runtime import Gateway
from gateway.server.live import LiveGateway

LIVE = web.AppKey("live", LiveGateway)  # the gateway that serves now; reloads swap it
# The gateway and keys of the config a request started on (taken once, at its start):
# a reload never changes them under a request in flight.
GATEWAY = web.RequestKey("gateway", Gateway)
AUTH_KEYS = web.RequestKey("auth_keys", tuple)
REQUEST_ID = web.RequestKey("request_id", str)
KEY_ID = web.RequestKey("key_id", str)  # "key-N" (never the key itself) or "anonymous"
