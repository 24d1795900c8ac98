"""Typed application and request state keys."""

from __future__ import annotations

from aiohttp import web

from gateway.config.model import KeyConfig
from gateway.runtime import Gateway
from gateway.server.live import LiveGateway

LIVE = web.AppKey("live", LiveGateway)  # the gateway that serves now; reloads swap it
# The gateway of the config a request started on (taken once, at its start): a reload
# never changes it under a request in flight.
GATEWAY = web.RequestKey("gateway", Gateway)
# Front doors' error shapes, first match wins (see middlewares.renderer_for).
ERROR_SHAPES = web.AppKey("error_shapes", list)
REQUEST_ID = web.RequestKey("request_id", str)
# The key's name (never the key itself), "anonymous" (auth off), or "admin" (the admin key,
# on /v1/feedback only).
KEY_ID = web.RequestKey("key_id", str)
KEY = web.RequestKey("key", KeyConfig)  # set when a gateway key authenticated the request
