"""Errors aiohttp raises itself, before any middleware (a malformed request line, a header
over the limit), still leave as an OpenAI error envelope."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web

from gateway.compat_aiohttp import render_protocol_errors


def envelope_for(status: int) -> web.Response:
    """The OpenAI envelope for an error aiohttp detected while reading a request."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:  # a status the stdlib does not name
        reason = ""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {
        "error": {
            "message": f"{reason}: the request could not be read" if reason else "bad request",
            "type": kind,
            "param": None,
            "code": "malformed_request" if status < 500 else "internal_error",
        }
    }
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def use_envelope_errors(runner: web.AppRunner) -> None:
    """Call after `runner.setup()`: connections then answer aiohttp's own errors with
    `envelope_for` (see compat_aiohttp.render_protocol_errors)."""
    render_protocol_errors(runner, envelope_for)
