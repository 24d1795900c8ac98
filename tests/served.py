"""An aiohttp app served on a free local port, for tests that need a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[tuple[web.AppRunner, str]]:
    """`app` on 127.0.0.1 and a free port: its runner and base URL, cleaned up after."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
