"""aiohttp's server, seen from outside: the errors it answers itself (a malformed
request) and the connections it holds (a drain)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

ErrorRenderer = Callable[[int], web.StreamResponse]  # HTTP status -> the response to send


def render_protocol_errors(runner: web.AppRunner, render: ErrorRenderer) -> bool:
    """Have `render(status)` answer the errors aiohttp raises itself, before any middleware
    runs (a malformed request line, a header over the limits, a broken body framing).
    Call after `runner.setup()`; returns False when the runner's server is not aiohttp's
    plain `web.Server` (nothing is changed then).

    Relies on: `web.Server` being the connection protocol factory: `Server.__call__()`
    builds `web_protocol.RequestHandler(self, loop=self._loop, **self._kwargs)` for each
    connection (private `_loop`, `_kwargs`), and `RequestHandler.handle_error(request,
    status, exc, message)` renders those errors as plain text. There is no public hook
    (middlewares never see these requests), so the runner's server gets its class swapped
    for a subclass that builds a handler subclass overriding `handle_error`. aiohttp's own
    `handle_error` still runs first (it logs, and raises when a response is already under
    way); its answer is kept when it is not the error status asked for.
    """
    server = runner.server
    if server is None or type(server) is not web.Server:
        return False

    class RenderingRequestHandler(RequestHandler):
        def handle_error(
            self,
            request: BaseRequest,
            status: int = 500,
            exc: BaseException | None = None,
            message: str | None = None,
        ) -> web.StreamResponse:
            response = super().handle_error(request, status, exc, message)
            if response.status != status:
                return response
            rendered = render(status)
            rendered.force_close()  # as aiohttp's own error response: the connection is done
            return rendered

    class RenderingServer(web.Server):
        def __call__(self) -> RequestHandler:
            return RenderingRequestHandler(self, loop=self._loop, **self._kwargs)

    server.__class__ = RenderingServer
    return True


def open_connection_count(server: web.Server) -> int:
    """Connections the server holds open (idle keep-alive ones included).

    Relies on: `web.Server.connections` (undocumented; one `RequestHandler` per open
    connection). Used to log how many connections a shutdown starts with.
    """
    return len(server.connections)


def abort_connections(server: web.Server) -> int:
    """Abort every connection the server still holds open; returns how many were cut.

    Relies on: `web.Server.connections` (undocumented) and `RequestHandler.transport`
    (the asyncio transport, None once the connection is lost). `transport.abort()` makes
    aiohttp call `connection_lost`, which cancels the connection's handler (with
    `handler_cancellation=True`) as a client disconnect would. aiohttp's own shutdown
    timeout cancels handlers without waiting for them; this lets a graceful drain end
    in-flight streams first and then wait for their cleanup.
    """
    cut = 0
    for connection in list(server.connections):
        transport = connection.transport
        if transport is not None:
            transport.abort()
            cut += 1
    return cut


def malformed_http_status(exc: BaseException) -> int | None:
    """The status aiohttp answered a client's malformed HTTP with, when `exc` is its
    refusal (aiohttp logs it with a traceback that quotes the client's bytes); else None."""
    if isinstance(exc, HttpProcessingError) and isinstance(exc.code, int):
        return exc.code
    return None
