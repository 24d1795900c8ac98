"""Admin API for the model lifecycle: automatic regression reports and quarantine.

- `GET /admin/regressions`: the policy, the last run per deployment (result, flags, cost,
  report files) and the deployments in quarantine.
- `GET /admin/regressions/{deployment}`: that deployment's last report, as JSON (the
  `race-gateway regress --json` document) or `?format=markdown`.
- `POST /admin/deployments/{deployment}/release`: take it out of quarantine.

The runs themselves are attached by the `serve` entry point (gateway/regress/auto.py);
this module sees them only through `Gateway.regressions`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway.server.admin import _json, require_admin
from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY

log = structlog.get_logger("gateway.regress")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/regressions", regressions)
    app.router.add_get("/admin/regressions/{deployment}", regression_report)
    app.router.add_post("/admin/deployments/{deployment}/release", release)


def _deployment(request: web.Request) -> str:
    name = request.match_info["deployment"]
    if name not in request[GATEWAY].config.deployments:
        raise ApiError(404, f"unknown deployment '{name}'", code="not_found", param="deployment")
    return name


async def regressions(request: web.Request) -> web.Response:
    require_admin(request)
    gateway = request[GATEWAY]
    view = gateway.regressions
    runs = {
        name: {k: v for k, v in run.items() if k not in ("report", "markdown")}
        for name, run in (view.runs().items() if view is not None else ())
    }
    return _json(
        {
            "enabled": view is not None,
            "policy": view.policy if view is not None else None,
            "suite": view.suite_path if view is not None else None,
            "runs": runs,
            "quarantined": gateway.quarantine.held(),
        }
    )


async def regression_report(request: web.Request) -> web.Response:
    require_admin(request)
    name = _deployment(request)
    view = request[GATEWAY].regressions
    run = view.runs().get(name) if view is not None else None
    if run is None or "report" not in run:
        raise ApiError(404, f"no regression report for '{name}' yet", code="not_found")
    if request.query.get("format") == "markdown":
        return web.Response(text=str(run["markdown"]), content_type="text/markdown")
    return _json(run["report"])


async def release(request: web.Request) -> web.Response:
    require_admin(request)
    name = _deployment(request)
    released = await request[GATEWAY].quarantine.release(name)
    log.info("quarantine_released", deployment=name, by="admin", was_quarantined=released)
    return _json({"deployment": name, "released": released})
