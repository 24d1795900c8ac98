"""`POST /v1/feedback`: a user's rating of an answer, credited to the deployment that served it.

Only the key that made the request (or the admin key) may rate it, once: a second rating
replaces the first; within `routing.feedback_window_s` of the request."""

from __future__ import annotations

import math

import orjson
from aiohttp import web

from gateway.routing.feedback import FeedbackWindowClosed
from gateway.server.errors import ApiError
from gateway.server.keys import GATEWAY, KEY_ID
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
    key_id = request[KEY_ID]
    store = request[GATEWAY].state.feedback
    try:  # only the key that made the request may rate it; the admin key may rate any
        deployment = await store.rate(
            request_id, float(rating), None if key_id == "admin" else key_id
        )
    except FeedbackWindowClosed:
        window_h = request[GATEWAY].config.routing.feedback_window_s / 3600
        raise ApiError(
            403,
            f"the feedback window for this request has closed ({window_h:g} h after it)",
            "permission_error",
            "feedback_window_closed",
            "request_id",
        ) from None
    if deployment is None:  # another key's request looks unknown too: ids are not disclosed
        raise ApiError(
            404, f"unknown request_id '{request_id[:80]}'", code="not_found", param="request_id"
        )
    return web.Response(
        body=orjson.dumps({"ok": True, "request_id": request_id, "deployment": deployment}),
        content_type="application/json",
    )
