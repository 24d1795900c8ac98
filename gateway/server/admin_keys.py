"""Admin API for gateway keys and spend (behind `admin.key`; secrets are never shown but once).

- `POST /admin/keys` makes a runtime key from a JSON body with the fields of an `auth.keys`
  object but `key` (name, routes, rpm, tpm, budget_usd, pii, data_residency,
  allow_direct_deployments, metadata), validated by the same rules. It answers 201 with the
  secret, the only time it is shown: the state backend keeps its SHA-256 only.
- `GET /admin/keys` lists config and runtime keys without secrets.
- `DELETE /admin/keys/{id}` revokes a runtime key on every instance (within ~auth.refresh_s).
- `GET /admin/spend?key=&period=day|month` answers spend per key and per deployment for the
  current UTC day or month, from the state backend (Redis: shared and kept across restarts).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import replace

import orjson
import structlog
from aiohttp import web

from gateway.access.keyring import NameTaken
from gateway.access.runtime_keys import StoreUnavailable
from gateway.config.keys import KEY_NAME, describe, digest_of, name_problem, runtime_key
from gateway.config.validate import Context, Reader
from gateway.routing.spend import PERIODS, Period, deployment_subject, utc_day, utc_month
from gateway.server.admin import require_admin
from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY
from gateway.server.limits import body_timeout_s, read_body

audit = structlog.get_logger("gateway.audit")
SECRET_PREFIX = "rgk-"  # a runtime key's secret starts with it (easy to find in a leak scan)


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


async def _body(request: web.Request) -> dict[str, object]:
    limits = request[GATEWAY].config.limits
    raw = await read_body(request, limits.max_body_bytes, body_timeout_s(limits))
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return body


async def create_key(request: web.Request) -> web.Response:
    require_admin(request)
    gateway = request[GATEWAY]
    config = gateway.config
    if not config.auth.enabled:
        raise ApiError(
            409,
            "auth is off: add an `auth` section to the config (keys: [] is enough with "
            "admin.key set) so that runtime keys are required",
            "invalid_request_error",
            "auth_disabled",
        )
    body = await _body(request)
    name = body.pop("name", None)
    if name is None:
        name = "rk-" + uuid.uuid4().hex[:10]
    elif (problem := name_problem(name)) is not None:
        raise ApiError(400, f"name: {problem}", code="invalid_key", param="name")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    ctx = Context({})
    targets = [*config.routes, *config.deployments]
    key = runtime_key(
        Reader(ctx, "", body), str(name), digest_of(secret), targets, config.latency.regions
    )
    if ctx.problems:
        raise ApiError(400, "; ".join(ctx.problems), code="invalid_key")
    key = replace(key, created_at=round(time.time(), 3))
    try:
        await gateway.keyring.create(key)
    except NameTaken:
        raise ApiError(
            409, f"a key named '{name}' exists already", code="key_exists", param="name"
        ) from None
    except StoreUnavailable:
        raise ApiError(
            503, "the state backend did not answer; try again", "server_error", "state_unavailable"
        ) from None
    audit.info("key_created", key=key.name, routes=key.routes, metadata=key.metadata)
    return _json({**describe(key), "key": secret}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    require_admin(request)
    keyring = request[GATEWAY].keyring
    return _json({"keys": [describe(k) for k in keyring.keys()], "auth": keyring.enabled})


async def revoke_key(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["id"]
    keyring = request[GATEWAY].keyring
    key = keyring.get(name)
    if key is not None and not key.runtime:
        raise ApiError(
            409,
            f"'{name}' is defined in the config file: remove it there (and reload)",
            code="config_key",
        )
    try:
        revoked = await keyring.revoke(name)
    except StoreUnavailable:
        raise ApiError(
            503, "the state backend did not answer; try again", "server_error", "state_unavailable"
        ) from None
    if not revoked:
        raise ApiError(404, f"no runtime key '{name[:80]}'", code="not_found")
    audit.info("key_revoked", key=name)
    return _json({"id": name, "revoked": True})


async def spend(request: web.Request) -> web.Response:
    require_admin(request)
    gateway = request[GATEWAY]
    period = request.query.get("period", "day")
    if period not in PERIODS:
        raise ApiError(400, "period must be day or month", param="period")
    p: Period = "day" if period == "day" else "month"
    only = request.query.get("key")
    tracker = gateway.state.spend
    if only is not None:
        if not KEY_NAME.match(only) and only not in ("anonymous", "regress"):
            raise ApiError(400, "key must be a key id", param="key")
        keys = [only]
    else:
        keys = [k.name for k in gateway.keyring.keys()] or ["anonymous"]
    out: dict[str, object] = {
        "period": period,
        "start": utc_day(time.time()) if p == "day" else utc_month(time.time()),
        "keys": {k: round(await tracker.spent(k, p), 8) for k in keys},
    }
    if only is None:
        out["deployments"] = {
            d: round(await tracker.spent(deployment_subject(d), p), 8)
            for d in gateway.config.deployments
        }
    return _json(out)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/admin/keys", create_key)
    app.router.add_get("/admin/keys", list_keys)
    app.router.add_delete("/admin/keys/{id}", revoke_key)
    app.router.add_get("/admin/spend", spend)
