"""Admin API behind `admin.key`: latency profiles and deployment health. Never shows secrets."""

from __future__ import annotations

import asyncio
import hmac

import orjson
from aiohttp import web

from gateway.config.model import Config
from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY, LIVE

QUANTILES = (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99))


def is_admin(config: Config, given: str) -> bool:
    key = config.admin.key
    return key is not None and hmac.compare_digest(given.encode(), key.reveal().encode())


def require_admin(request: web.Request) -> None:
    config = request[GATEWAY].config
    if config.admin.key is None:
        raise ApiError(
            403, "the admin API is disabled: set admin.key", "permission_error", "admin_disabled"
        )
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not is_admin(config, given):
        raise ApiError(
            401, "invalid or missing admin key", "invalid_request_error", "invalid_api_key"
        )


def _json(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


async def profiles(request: web.Request) -> web.Response:
    """Per deployment x region x hour: TTFT p50/p90/p99, samples, censored share, level, and
    whether the estimate is borrowed from other regions (with the region's own samples);
    `by_quantile` has those per quantile (p50 may come from a finer level than p99)."""
    require_admin(request)
    gateway = request[GATEWAY]
    config = gateway.config
    only_dep = request.query.get("deployment")
    only_region = request.query.get("region")
    if only_dep is not None and only_dep not in config.deployments:
        raise ApiError(
            404, f"unknown deployment '{only_dep}'", code="not_found", param="deployment"
        )
    if only_region is not None and only_region not in config.latency.regions:
        raise ApiError(404, f"unknown region '{only_region}'", code="not_found", param="region")
    deployments = [only_dep] if only_dep else list(config.deployments)
    regions = [only_region] if only_region else list(config.latency.regions)
    store = gateway.state.profiles
    out: dict[str, object] = {}
    for name in deployments:
        prior = config.deployments[name].prior
        prior_t = (prior.ttft_p50_ms, prior.ttft_p95_ms)
        per_region: dict[str, list[dict[str, object]]] = {}
        for region in regions:
            rows = []
            for hour in range(24):
                row: dict[str, object] = {"hour": hour}
                by_quantile: dict[str, dict[str, object]] = {}
                for label, q in QUANTILES:
                    estimate = store.ttft_quantile(name, region, hour, q, prior_t)
                    row[label] = round(estimate.value_s * 1000, 1)
                    detail: dict[str, object] = {
                        "level": estimate.level,
                        "samples": round(estimate.samples, 2),
                        "censored_share": round(estimate.censored_share, 3),
                        "borrowed": estimate.borrowed,  # other regions' samples, as a prior
                        "own_samples": round(estimate.own_samples, 2),
                    }
                    row.update(detail)  # these top-level fields: the last quantile's (p99)
                    by_quantile[label] = detail  # each quantile backs off on its own
                row["by_quantile"] = by_quantile
                rows.append(row)
            per_region[region] = rows
        out[name] = per_region
        await asyncio.sleep(0)  # let requests through between deployments
    return _json({"deployments": out})


async def deployments(request: web.Request) -> web.Response:
    """Breaker state, health score, error rate, TTFT percentiles, weight and spend; per route,
    its extra-load budget (share, floor, use, refusals)."""
    require_admin(request)
    gateway = request[GATEWAY]
    health = gateway.state.health.snapshot()
    weights = gateway.weights()
    out = {}
    for name, dep in gateway.config.deployments.items():
        item = dict(health.get(name, {}))
        item.update(
            {
                "provider": dep.provider,
                "model": dep.model,
                "region": dep.region,
                "local": dep.local,
                "weight": weights.get(name, dep.weight),
                "spend_usd": round(gateway.spend_by_deployment.get(name, 0.0), 6),
                "model_version": gateway.versions.get(name),
            }
        )
        out[name] = item
    routes = {
        route.name: {
            "strategy": route.strategy,
            "k": route.k,
            "heartbeat_after_s": route.heartbeat_after_s,
            "resume": route.resume,
            "max_resumes": route.max_resumes,
            "extra_load_budget": gateway.pipeline.budgets[route.name].snapshot(),
        }
        for route in gateway.routes.routes()
        if not route.direct
    }
    return _json({"deployments": out, "routes": routes, "state_degraded": gateway.state.degraded})


async def reload(request: web.Request) -> web.Response:
    """`POST /admin/reload`: reload the config file. 200 with what changed (or
    `unchanged`); 400 listing every problem of an invalid file (the old config serves on);
    409 when there is no file to reload or the new config could not be started."""
    require_admin(request)
    result = await request.app[LIVE].reload("admin")
    if result.ok:
        return _json(result.to_json())
    if result.result == "invalid":
        status, code = 400, "invalid_config"
        message = f"the config is invalid ({len(result.problems)} problem(s)), the old one serves"
    else:
        status, code = 409, "reload_failed"
        message = "the config could not be reloaded, the old one serves"
    error = {
        "message": message + ": " + "; ".join(result.problems),
        "type": "invalid_request_error",
        "param": None,
        "code": code,
        "problems": list(result.problems),
        "config_hash": result.version,
    }
    return web.Response(
        status=status, body=orjson.dumps({"error": error}), content_type="application/json"
    )
