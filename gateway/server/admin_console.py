"""Admin JSON endpoints behind `admin.key` that the console reads (and anyone may script):

- `GET /admin/live?window=60`: per-second requests, errors, refusals, cost and waste of the
  last `window` seconds (1-300), TTFT p50/p95 per route and wins per deployment over them;
- `GET /admin/recent?limit=50`: the newest request records (no prompt or answer text);
- `GET /admin/costs`: spend per key and per deployment, today and this month (UTC), with
  the losers' share; this instance's view since it started;
- `GET /admin/upstreams`: per deployment, rate-limit use in the current window, pre-warm
  target, the provider pool's open connections, and catalogue facts where the config has
  them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import orjson
from aiohttp import web

from gateway.console.live import DEFAULT_HORIZON_S
from gateway.routing.ratelimit import deployment_limit
from gateway.server.admin import require_admin
from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY

# Model facts a deployment may carry from the model catalogue (absent without one).
CATALOGUE_FACTS = (
    "catalogue_id",
    "context_window",
    "max_output_tokens",
    "capabilities",
    "deprecated",
    "shutdown_date",
    "successor",
)


def _json(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400, f"{name} must be an integer from {low} to {high}", code="invalid_value", param=name
        )
    return value


async def live(request: web.Request) -> web.Response:
    require_admin(request)
    window = int_query(request, "window", 60, 1, DEFAULT_HORIZON_S)
    return _json(request[GATEWAY].console.live.snapshot(window))


async def recent(request: web.Request) -> web.Response:
    require_admin(request)
    buffer = request[GATEWAY].console.recent
    limit = int_query(request, "limit", 50, 1, buffer.capacity)
    return _json({"capacity": buffer.capacity, "records": buffer.latest(limit)})


async def costs(request: web.Request) -> web.Response:
    require_admin(request)
    gateway = request[GATEWAY]
    return _json(gateway.console.ledger.snapshot(gateway.config.deployments))


def catalogue_facts(deployment: object) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for name in CATALOGUE_FACTS:
        value = getattr(deployment, name, None)
        if value is None:
            continue
        if hasattr(value, "as_dict"):  # capabilities: only those the catalogue knows
            value = value.as_dict()
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        elif isinstance(value, dt.date):
            value = value.isoformat()
        facts[name] = value
    return facts


async def upstreams(request: web.Request) -> web.Response:
    require_admin(request)
    gateway = request[GATEWAY]
    limiter = gateway.state.limiter
    warm = gateway.prewarmer.last_targets if gateway.prewarmer is not None else {}
    out: dict[str, object] = {}
    for name, dep in gateway.config.deployments.items():
        limit = limiter.limit_for(deployment_limit(name))
        rate: dict[str, object] | None = None
        if limit is not None and (limit.rpm is not None or limit.tpm is not None):
            used = await limiter.used(deployment_limit(name))
            rate = {
                "rpm": limit.rpm,
                "tpm": limit.tpm,
                "used_requests": used[0] if used is not None else None,
                "used_tokens": used[1] if used is not None else None,
            }
        pool = gateway.pools.get(dep.provider)
        out[name] = {
            "provider": dep.provider,
            "rate_limit": rate,
            "prewarm_target": warm.get(name, 0),
            "pool_open_connections": pool.open_connections() if pool is not None else 0,
            "catalogue": catalogue_facts(dep),
        }
    return _json({"prewarm": gateway.prewarmer is not None, "deployments": out})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/live", live)
    app.router.add_get("/admin/recent", recent)
    app.router.add_get("/admin/costs", costs)
    app.router.add_get("/admin/upstreams", upstreams)
