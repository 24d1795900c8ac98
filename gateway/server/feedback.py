"""`POST /v1/feedback`: a user's rating of an answer, credited to the deployment that served it."""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY
from gateway.server.limits import body_timeout_s, read_body


async def feedback(request: web.Request) -> web.Response:
    try:
        limits = request[GATEWAY].config.limits
        body = orjson.loads(await read_body(request, limits.max_body_bytes, body_timeout_s(limits)))
    except orjson.JSONDecodeError:
        raise ApiError(
            400, "request body is not valid JSON", code="invalid_json", param="body"
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json", param="body")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise ApiError(
            400, "'request_id' is required (the x-request-id of the answer)", param="request_id"
        )
    rating = body.get("rating")
    if (
        isinstance(rating, bool)
        or not isinstance(rating, int | float)
        or not math.isfinite(rating)
        or not -1 <= rating <= 1
    ):
        raise ApiError(400, "'rating' must be a number between -1 and 1", param="rating")
    deployment = await request[GATEWAY].state.feedback.rate(request_id, float(rating))
    if deployment is None:
        raise ApiError(
            404, f"unknown request_id '{request_id[:80]}'", code="not_found", param="request_id"
        )
    return web.Response(
        body=orjson.dumps({"ok": True, "request_id": request_id, "deployment": deployment}),
        content_type="application/json",
    )
