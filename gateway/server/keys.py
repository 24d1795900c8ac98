"""Typed application and request state keys."""

from __future__ import annotations

from aiohttp import web

from gateway.runtime import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
AUTH_KEYS = web.AppKey("auth_keys", tuple)
# Front doors' error shapes, first match wins (see middlewares.renderer_for).
ERROR_SHAPES = web.AppKey("error_shapes", list)
REQUEST_ID = web.RequestKey("request_id", str)
KEY_ID = web.RequestKey("key_id", str)  # "key-N" (never the key itself) or "anonymous"
