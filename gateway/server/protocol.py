"""Errors aiohttp raises itself, before any middleware (a malformed request line, a header
over the limit), still leave as an OpenAI error envelope."""

from __future__ import annotations

from http import HTTPStatus

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest


class EnvelopeRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)  # logs, closes
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        kind = "server_error" if status >= 500 else "invalid_request_error"
        body = {
            "error": {
                "message": f"{reason}: the request could not be read" if reason else "bad request",
                "type": kind,
                "param": None,
                "code": "malformed_request" if status < 500 else "internal_error",
            }
        }
        envelope = web.Response(
            status=status, body=orjson.dumps(body), content_type="application/json"
        )
        envelope.force_close()
        return envelope if response.status == status else response


class EnvelopeServer(web.Server):
    def __call__(self) -> RequestHandler:
        return EnvelopeRequestHandler(self, loop=self._loop, **self._kwargs)


def use_envelope_errors(runner: web.AppRunner) -> None:
    """Call after `runner.setup()`: connections then get the envelope-speaking handler."""
    server = runner.server
    if server is not None and type(server) is web.Server:
        server.__class__ = EnvelopeServer
