"""Typed application and request state keys."""

from __future__ import annotations

from aiohttp import web

from gateway.config.model import KeyConfig
from gateway.runtime import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
REQUEST_ID = web.RequestKey("request_id", str)
# The key's name (never the key itself), "anonymous" (auth off), or "admin" (the admin key,
# on /v1/feedback only).
KEY_ID = web.RequestKey("key_id", str)
KEY = web.RequestKey("key", KeyConfig)  # set when a gateway key authenticated the request
