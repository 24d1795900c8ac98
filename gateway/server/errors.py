"""OpenAI error envelopes `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import orjson
from aiohttp import web

from gateway.rejection import Rejected
from gateway.streaming.events import UpstreamError
from gateway.value_class import value_class

MAX_RETRY_AFTER_S = 86400  # a longer (or non-finite) upstream delay is shown as one day


ApiError = Rejected  # the name the server layer has always used


class ErrorRenderer(Protocol):
    """`(status, message, type_, code, param, headers) -> web.Response` in one protocol's
    error shape; `error_response` (below) is OpenAI's."""

    def __call__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response: ...


@value_class
class ErrorShape:
    """A front door's claim on the errors of the requests it `matches` (see middlewares)."""

    matches: Callable[[web.Request], bool]
    render: ErrorRenderer


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def api_error_response(error: ApiError) -> web.Response:
    return error_response(
        error.status, error.message, error.type, error.code, error.param, error.headers
    )


def upstream_error_response(error: UpstreamError, headers: dict[str, str]) -> web.Response:
    """All attempts failed before any output: a real HTTP error, never a 200."""
    status = error.status if 400 <= error.status <= 599 else 502
    if status == 529:
        status = 503
    out = dict(headers)
    delay = error.retry_after_s
    if isinstance(delay, int | float) and not math.isnan(delay) and delay > 0:
        # math.ceil(inf) raises OverflowError: never let a bad upstream value make this a 500.
        out["retry-after"] = str(max(1, math.ceil(min(delay, MAX_RETRY_AFTER_S))))
    if not error.retryable:
        out["x-should-retry"] = "false"
    type_ = error.type or ("server_error" if status >= 500 else "invalid_request_error")
    return error_response(status, error.message, type_, error.code, error.param, out)
