"""Typed application and request state keys."""

from __future__ import annotations

from aiohttp import web

from gateway.runtime import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
AUTH_KEYS = web.AppKey("auth_keys", tuple)
REQUEST_ID = web.RequestKey("request_id", str)
KEY_ID = web.RequestKey("key_id", str)  # "key-N" (never the key itself) or "anonymous"
