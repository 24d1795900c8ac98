"""Admin API for the model lifecycle: automatic regression reports and quarantine.

- `GET /admin/regressions`: the policy, the last run per deployment (result, flags, cost,
  report files) and the deployments in quarantine.
- `GET /admin/regressions/{deployment}`: that deployment's last report, as JSON (the
  `race-gateway regress --json` document) or `?format=markdown`.
- `POST /admin/deployments/{deployment}/release`: take it out of quarantine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.regress.auto import AutoRegress
from gateway.regress.report import to_markdown
from gateway.regress.suite import SuiteError
from gateway.runtime import Gateway
from gateway.server.admin import _json, require_admin
from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY

AUTO_REGRESS = web.AppKey("auto_regress", AutoRegress)
log = structlog.get_logger("gateway.regress")


def install(app: web.Application, gateway: Gateway) -> None:
    """Routes, and the automatic runs when the config has `auto_regress` (an invalid suite
    is logged and leaves them off: serving traffic matters more; check-config fails on it)."""
    app.router.add_get("/admin/regressions", regressions)
    app.router.add_get("/admin/regressions/{deployment}", regression_report)
    app.router.add_post("/admin/deployments/{deployment}/release", release)
    cfg = gateway.config.auto_regress
    if cfg is None:
        return
    try:
        auto = AutoRegress(gateway, cfg)
    except (SuiteError, OSError) as exc:
        log.error("auto_regress_disabled", suite=cfg.suite, error=str(exc))
        return
    app[AUTO_REGRESS] = auto

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        await auto.close()

    app.cleanup_ctx.append(lifecycle)


def _deployment(request: web.Request) -> str:
    name = request.match_info["deployment"]
    if name not in request.app[GATEWAY].config.deployments:
        raise ApiError(404, f"unknown deployment '{name}'", code="not_found", param="deployment")
    return name


async def regressions(request: web.Request) -> web.Response:
    require_admin(request)
    gateway = request.app[GATEWAY]
    auto = request.app.get(AUTO_REGRESS)
    runs = {
        name: {k: v for k, v in run.items() if k != "report"}
        for name, run in (auto.reports.items() if auto is not None else ())
    }
    return _json(
        {
            "enabled": auto is not None,
            "policy": auto.cfg.policy if auto is not None else None,
            "suite": auto.cfg.suite if auto is not None else None,
            "runs": runs,
            "quarantined": gateway.quarantine.held(),
        }
    )


async def regression_report(request: web.Request) -> web.Response:
    require_admin(request)
    name = _deployment(request)
    auto = request.app.get(AUTO_REGRESS)
    run = auto.reports.get(name) if auto is not None else None
    if run is None or "report" not in run:
        raise ApiError(404, f"no regression report for '{name}' yet", code="not_found")
    if request.query.get("format") == "markdown":
        return web.Response(text=to_markdown(run["report"]), content_type="text/markdown")
    return _json(run["report"])


async def release(request: web.Request) -> web.Response:
    require_admin(request)
    name = _deployment(request)
    released = await request.app[GATEWAY].quarantine.release(name)
    log.info("quarantine_released", deployment=name, by="admin", was_quarantined=released)
    return _json({"deployment": name, "released": released})
