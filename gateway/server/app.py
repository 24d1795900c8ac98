"""The aiohttp application: routes, middlewares, lifecycle of the gateway core."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.config.model import Config
from gateway.runtime import Gateway
from gateway.server import handlers
from gateway.server.keys import AUTH_KEYS, GATEWAY
from gateway.server.middlewares import auth_middleware, error_middleware, request_id_middleware


def build_app(gateway: Gateway) -> web.Application:
    config = gateway.config
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, auth_middleware],
        client_max_size=config.limits.max_body_bytes,
    )
    app[GATEWAY] = gateway
    app[AUTH_KEYS] = tuple(key.reveal().encode() for key in config.auth.keys)
    handlers.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await gateway.start()
        yield
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def start_server(gateway: Gateway, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start serving; returns the runner and the base URL (port 0 picks a free port)."""
    runner = web.AppRunner(
        build_app(gateway), handler_cancellation=True, access_log=None, shutdown_timeout=10.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=2048, reuse_port=None)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound_port = sockets[0].getsockname()[1] if sockets else port
    return runner, f"http://{host}:{bound_port}"


async def wait_for_shutdown_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve(config: Config, host: str | None = None, port: int | None = None) -> None:
    gateway = Gateway(config)
    runner, url = await start_server(
        gateway, host or config.listen.host, port if port is not None else config.listen.port
    )
    print(f"race-gateway listening on {url}", flush=True)
    try:
        await wait_for_shutdown_signal()
    finally:
        await runner.cleanup()
