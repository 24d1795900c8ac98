"""Two layers around every request: `entry_middleware` (the live gateway's snapshot, the
request id, error rendering) and, after CORS when it is on, `admission_middleware`
(JSON-only POST bodies, then authentication). Few layers on purpose: each is a coroutine
frame that every resumption of the request's task passes through.

Every error leaves as an OpenAI envelope, except on paths a front door claims for its own
protocol's error shape: a door adds an `ErrorShape` (a request predicate and a renderer) to
`app[ERROR_SHAPES]`, and errors are rendered with the first shape that matches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.pipeline import Caller
from gateway.record import Door
from gateway.server.admin import is_admin
from gateway.server.errors import ApiError, ErrorRenderer, error_response
from gateway.server.keys import ERROR_SHAPES, GATEWAY, KEY, KEY_ID, LIVE, REQUEST_ID

# The paths of the front doors whose requests go through the pipeline (and are recorded).
DOOR_PATHS: dict[str, Door] = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
    "/v1/embeddings": "embeddings",
}
FEEDBACK_PATH = "/v1/feedback"  # where the admin key is taken too (it may rate any request)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
log = structlog.get_logger("gateway")


def new_request_id() -> str:
    """128 random bits, hex (what uuid4().hex gives less six fixed bits, at a sixth of its
    cost: no UUID object per request)."""
    return "req_" + os.urandom(16).hex()


@web.middleware
async def entry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What every request gets first: the gateway that serves now, kept to the request's
    end whatever config reload happens meanwhile (server/live.py); a request id; and every
    error rendered in its door's shape."""
    snapshot = request.app[LIVE].acquire()
    try:
        request[GATEWAY] = snapshot.gateway
        given = request.headers.get("x-request-id", "")
        request[REQUEST_ID] = given if _SAFE_ID.match(given) else new_request_id()
        try:
            return await handler(request)
        except Exception as exc:
            return _failure_response(request, exc)
    finally:
        snapshot.release()


def renderer_for(request: web.Request) -> ErrorRenderer:
    """The error shape of the door that owns the request's path (OpenAI's by default)."""
    for shape in request.app.get(ERROR_SHAPES, ()):
        if shape.matches(request):
            return shape.render
    return error_response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The error rendering of `entry_middleware` alone (for apps without a live gateway)."""
    try:
        return await handler(request)
    except Exception as exc:
        return _failure_response(request, exc)


def _failure_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The error response for what a handler raised, in its door's shape; an HTTP
    exception below 400 (a redirect) is raised again. Called while `exc` is handled."""
    rid = request.get(REQUEST_ID, "")
    if isinstance(exc, ApiError):
        exc.headers.setdefault("x-request-id", rid)
        render = renderer_for(request)
        return render(exc.status, exc.message, exc.type, exc.code, exc.param, exc.headers)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
            exc.status
        )
        message = {
            404: f"unknown path: {request.path}",
            405: f"method {request.method} is not allowed on {request.path}",
            413: "request body is larger than the configured limit",
        }.get(exc.status, exc.reason)
        headers = {"x-request-id": rid}
        if exc.status == 405 and "Allow" in exc.headers:
            headers["allow"] = exc.headers["Allow"]
        render = renderer_for(request)
        return render(exc.status, message, "invalid_request_error", code, None, headers)
    log.exception("unhandled_error", request_id=rid, path=request.path)
    return renderer_for(request)(
        500,
        "internal gateway error",
        "server_error",
        "internal_error",
        None,
        {"x-request-id": rid},
    )


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A JSON body, then the caller's key, before anything is parsed or routed."""
    _require_json_body(request)
    _authenticate(request)
    return await handler(request)


def _require_json_body(request: web.Request) -> None:
    """A POST to /v1/ must say `Content-Type: application/json` (parameters allowed). A
    browser sends a `text/plain` or form body cross-site without a preflight; refusing it
    means no page can spend a race the user never asked for. The official SDKs always
    send application/json."""
    if request.method == "POST" and request.path.startswith("/v1/"):
        given = request.headers.get("Content-Type", "")
        if given.partition(";")[0].strip().lower() != "application/json":
            got = f"got {given[:100]!r}" if given else "none was sent"
            exc = ApiError(
                415,
                f"Content-Type must be application/json, {got}",
                "invalid_request_error",
                "unsupported_media_type",
            )
            _record_refusal(request, exc)
            raise exc


def _record_refusal(request: web.Request, exc: ApiError) -> None:
    """A model request refused before its door (no key, not JSON) is recorded like any other."""
    door = DOOR_PATHS.get(request.path)
    if door is not None:
        caller = Caller(request[REQUEST_ID], "anonymous", request.headers)
        request[GATEWAY].pipeline.refuse(caller, door, None, exc)


def _bearer(request: web.Request) -> str | None:
    """The key from `Authorization: Bearer` (OpenAI's SDKs) or `x-api-key` (Anthropic's)."""
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key")


def _authenticate(request: web.Request) -> None:
    """The caller's key (`KEY_ID`, and `KEY` when keys are configured) for /v1/ paths."""
    request[KEY_ID] = "anonymous"
    if not request.path.startswith("/v1/"):
        return
    gateway = request[GATEWAY]
    given = _bearer(request) or ""
    if request.path == FEEDBACK_PATH and given and is_admin(gateway.config, given):
        request[KEY_ID] = "admin"
        return
    keyring = gateway.keyring
    if keyring.enabled:
        key = keyring.authenticate(given)
        if key is not None:
            request[KEY_ID] = key.name
            request[KEY] = key
        else:
            exc = ApiError(
                401,
                "invalid or missing API key: send 'Authorization: Bearer <key>' or "
                "'x-api-key: <key>'",
                "invalid_request_error",
                "invalid_api_key",
            )
            _record_refusal(request, exc)
            raise exc
