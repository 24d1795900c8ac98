"""What a client may cost the HTTP server: header sizes, idle time, and time to send a body.

`runner_kwargs(limits)` are the keyword arguments for `web.AppRunner` (aiohttp hands
them to every connection's `RequestHandler`); `read_body` reads a request body with a
size limit and a deadline. asyncio has no worker per connection, but an unbounded
connection still holds a socket, buffers and a handler task; these bounds make a slow
or hostile client cost a fixed amount:

- request line and each header line: `max_line_size` / `max_field_size` bytes, at most
  `max_headers` headers (aiohttp answers 400 beyond them, before any handler runs);
- headers: aiohttp's keep-alive timer runs from the moment a connection opens and
  again after each response, and closes a connection that has not delivered a complete
  request head by then, so `keepalive_timeout` is also the deadline for sending headers;
- body: `read_body` gives up after `timeout_s` (408) and past `limit` bytes (413),
  counting decoded bytes, so a compressed body cannot expand past the limit either;
- after an error with an unread body, aiohttp drains it for at most `lingering_time`.

The values are module constants unless `LimitsConfig` has a field of the same meaning
(`max_header_bytes`, `max_headers`, `keepalive_timeout_s`, `body_timeout_s`), so a
config key can be added later without touching this module's callers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.config.model import LimitsConfig
from gateway.server.errors import ApiError

MAX_HEADER_BYTES = 8190  # the request line, and any one header line (aiohttp's default)
MAX_HEADERS = 100  # headers per request (aiohttp: 128)
# Idle keep-alive, and the deadline for a request head from connection open (aiohttp: 3630).
# Longer than the idle timeout of common load balancers (60 s), so that the balancer, not
# the gateway, closes an idle pooled connection and never races a request onto it.
KEEPALIVE_TIMEOUT_S = 75.0
BODY_TIMEOUT_S = 30.0  # a 4 MB body at 1 Mbit/s still arrives
LINGERING_TIME_S = 5.0  # draining an unread body after an error response (aiohttp: 10)


def _limit(limits: LimitsConfig, name: str, default: float) -> Any:
    value = getattr(limits, name, None)
    return default if value is None else value


def body_timeout_s(limits: LimitsConfig) -> float:
    return float(_limit(limits, "body_timeout_s", BODY_TIMEOUT_S))


def runner_kwargs(limits: LimitsConfig) -> dict[str, Any]:
    """Keyword arguments for `web.AppRunner(app, **runner_kwargs(limits), ...)`."""
    header_bytes = int(_limit(limits, "max_header_bytes", MAX_HEADER_BYTES))
    return {
        "max_line_size": header_bytes,
        "max_field_size": header_bytes,
        "max_headers": int(_limit(limits, "max_headers", MAX_HEADERS)),
        "keepalive_timeout": float(_limit(limits, "keepalive_timeout_s", KEEPALIVE_TIMEOUT_S)),
        "lingering_time": LINGERING_TIME_S,
    }


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body exceeds {limit} bytes",
        "invalid_request_error",
        "request_too_large",
        "body",
    )


async def read_body(request: web.BaseRequest, limit: int, timeout_s: float) -> bytes:
    """The whole request body, decoded (Content-Encoding), or an ApiError.

    413 when `Content-Length` or the bytes received pass `limit`; 408 when the body has
    not fully arrived within `timeout_s` seconds; 400 when it cannot be decoded (broken
    chunked framing, a corrupt gzip/deflate stream). Cancellation propagates.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        content = request.content
        if content.is_eof():  # the whole body came with the headers: no timer, no wait
            chunk = content.read_nowait()
            if len(chunk) > limit:
                raise _too_large(limit)
            return chunk
        async with asyncio.timeout(timeout_s):
            while chunk := await content.readany():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            f"the request body did not arrive within {timeout_s:g} seconds",
            "invalid_request_error",
            "request_timeout",
            "body",
        ) from None
    except web.RequestPayloadError as exc:
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        detail = getattr(cause, "message", None) or str(cause)
        detail = " ".join(str(detail).split())  # aiohttp may quote a few bytes: keep it short
        raise ApiError(
            400,
            f"the request body could not be read: {detail[:120]}",
            "invalid_request_error",
            "invalid_body",
            "body",
        ) from None
    return b"".join(chunks)
