"""The aiohttp application: routes, middlewares, lifecycle of the gateway core; serving and
graceful shutdown of one process (one worker of `serve --workers N`, see server/workers.py).

Shutdown (SIGTERM or SIGINT), as `drain` does it around aiohttp's `AppRunner.cleanup()`
(aiohttp 3.14: sites stop, `Server.pre_shutdown` closes idle connections,
`Server.shutdown(shutdown_timeout)` waits for each in-flight handler, then the app's
cleanup contexts run):
1. the listening socket is closed at once: new connections are refused (with N workers
   on one SO_REUSEPORT port, the kernel sends them to workers still listening);
2. idle keep-alive connections are closed; a connection with a request in flight is
   marked to close after it, and its handler runs on untouched: an SSE stream keeps
   streaming and ends with `data: [DONE]` as usual;
3. when the grace period ends, connections still open are aborted, which cancels their
   handlers (handler_cancellation) like a client disconnect: upstream attempts are
   cancelled and accounted, the request is logged. aiohttp's own `shutdown_timeout`
   (grace + CUT_MARGIN_S) is only a backstop: on its expiry aiohttp cancels the handler
   without waiting for it, so its accounting could run after the gateway closed;
4. the app is cleaned up: `Gateway.close()` stops background work and closes pools.
A second signal during the grace period cuts the streams still open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import stat
import time
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.compat_aiohttp import abort_connections, open_connection_count
from gateway.config.model import Config
from gateway.runtime import Gateway
from gateway.server import admin_regress, handlers
from gateway.server.cors import CorsPolicy, cors_middleware
from gateway.server.keys import LIVE
from gateway.server.limits import runner_kwargs
from gateway.server.live import LiveGateway
from gateway.server.middlewares import (
    admission_middleware,
    entry_middleware,
)
from gateway.server.protocol import use_envelope_errors
from gateway.server.reloading import ReloadTriggers

log = structlog.get_logger("gateway.server")

DEFAULT_GRACE_S = 30.0
CUT_MARGIN_S = 5.0  # aiohttp's shutdown_timeout beyond the grace period: a backstop only
WORKER_HEADER = "x-gateway-worker"  # pid of the worker that answered (serve --workers N > 1)


class ListenError(Exception):
    """The server could not bind its listening socket (address in use, permission, ...)."""


def build_app(
    gateway: Gateway,
    config_path: str | None = None,
    setup: Callable[[Gateway], object] | None = None,
) -> web.Application:
    """The app serving `gateway`; with `config_path` (the file it was loaded from) it can
    reload that file (`POST /admin/reload`, and SIGHUP / --watch under `serve`)."""
    config = gateway.config
    live = LiveGateway(gateway, config_path, setup)
    cors = CorsPolicy(config.cors) if config.cors.enabled else None
    middlewares: list[Middleware] = [entry_middleware]
    if cors is not None:  # a preflight carries no key: answered before authentication
        middlewares.append(cors_middleware(cors))
    middlewares.append(admission_middleware)
    app = web.Application(middlewares=middlewares, client_max_size=config.limits.max_body_bytes)
    if cors is not None:  # every /v1/ response, streams and errors included
        app.on_response_prepare.append(cors.add_headers)
    app[LIVE] = live
    handlers.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await gateway.start()
        yield
        await live.close()  # the gateway serving by then, and any still draining

    app.cleanup_ctx.append(lifecycle)
    admin_regress.add_routes(app)
    return app


async def start_server(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    reuse_port: bool = False,
    shutdown_timeout_s: float = 10.0,
    worker_header: bool = False,
    config_path: str | None = None,
    setup: Callable[[Gateway], object] | None = None,
) -> tuple[web.AppRunner, str]:
    """Start serving; returns the runner and the base URL (port 0 picks a free port).

    `reuse_port` sets SO_REUSEPORT so that several worker processes can listen on one
    port; `shutdown_timeout_s` is how long `runner.cleanup()` waits for in-flight handlers;
    `worker_header` tags every response with `x-gateway-worker: <pid>`; `config_path`
    is the file `POST /admin/reload` reads.
    """
    app = build_app(gateway, config_path, setup)
    if worker_header:
        pid = str(os.getpid())

        async def tag_worker(request: web.BaseRequest, response: web.StreamResponse) -> None:
            response.headers[WORKER_HEADER] = pid

        app.on_response_prepare.append(tag_worker)
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout_s,
        **runner_kwargs(gateway.config.limits),
    )
    await runner.setup()
    use_envelope_errors(runner)
    site = web.TCPSite(runner, host, port, backlog=2048, reuse_port=reuse_port or None)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()  # runs Gateway.close(): no background task left behind
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    addresses = runner.addresses  # (host, port, ...) of each listening socket
    bound_port = addresses[0][1] if addresses else port
    return runner, f"http://{host}:{bound_port}"


class ShutdownSignals:
    """SIGINT/SIGTERM handlers: the first asks for a graceful stop, the next for a forced one."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.force = asyncio.Event()
        self._installed: list[signal.Signals] = []

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._received, sig)
                self._installed.append(sig)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self._installed:
            loop.remove_signal_handler(sig)
        self._installed.clear()

    def _received(self, sig: signal.Signals) -> None:
        if self.stop.is_set():
            if not self.force.is_set():
                log.warning("shutdown_forced", signal=sig.name)
            self.force.set()
        else:
            log.info("shutdown_signal", signal=sig.name)
            self.stop.set()


async def wait_for_shutdown_signal() -> None:
    signals = ShutdownSignals()
    signals.install()
    try:
        await signals.stop.wait()
    finally:
        signals.remove()


async def drain(runner: web.AppRunner, grace_s: float, force: asyncio.Event | None = None) -> None:
    """Stop accepting now, give requests in flight `grace_s` to finish, cancel the rest, then
    clean the app up (Gateway.close). `force`, once set, cuts the open connections at once."""
    server = runner.server
    started = time.monotonic()
    open_connections = open_connection_count(server) if server is not None else 0
    log.info("shutdown_started", open_connections=open_connections, grace_s=grace_s)

    async def cut_after_grace() -> None:
        if force is None:
            await asyncio.sleep(grace_s)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(force.wait(), grace_s)
        if server is None:
            return
        cut = abort_connections(server)  # each handler is cancelled, then finishes
        if cut:
            log.warning(
                "shutdown_cut_streams",
                connections=cut,
                after_s=round(time.monotonic() - started, 3),
            )

    cutter = asyncio.create_task(cut_after_grace())
    try:
        await runner.cleanup()
    finally:
        cutter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cutter
    log.info("shutdown_done", took_s=round(time.monotonic() - started, 3))


async def _watch_parent(stop: asyncio.Event) -> None:
    """A worker's stdin is a pipe whose other end only its supervisor holds: EOF there means
    the supervisor is gone (even by SIGKILL), so the worker drains and exits."""
    if not stat.S_ISFIFO(os.fstat(0).st_mode):
        return  # started by hand: nothing to watch
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", closefd=False)
    )
    try:
        while await reader.read(4096):
            pass
    finally:
        transport.close()
    log.warning("supervisor_gone")
    stop.set()


async def serve(
    config: Config,
    host: str | None = None,
    port: int | None = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    worker: str | None = None,
    config_path: str | None = None,
    watch_s: float | None = None,
    setup: Callable[[Gateway], object] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT, then drain (see the module docstring).

    `worker` ("i/N") marks a worker process of `serve --workers N`: it listens with
    SO_REUSEPORT, tags responses with its pid and stops when its supervisor goes away.
    With `config_path`, SIGHUP reloads that file (server/live.py), and so does a change
    of it when `watch_s` (the polling interval) is set.
    """
    if worker is not None:  # every log line of a worker says which one it is
        structlog.contextvars.bind_contextvars(worker=worker, pid=os.getpid())
    signals = ShutdownSignals()
    signals.install()  # before the server starts: an early SIGTERM still drains
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # SIGHUP must not kill it
        loop.add_signal_handler(signal.SIGHUP, log.info, "reload_signal_ignored_while_starting")
    try:
        gateway = Gateway(config)
        if setup is not None:  # the entry point attaches services (automatic regressions)
            setup(gateway)
        runner, url = await start_server(
            gateway,
            host or config.listen.host,
            port if port is not None else config.listen.port,
            reuse_port=worker is not None,
            shutdown_timeout_s=grace_s + CUT_MARGIN_S,
            worker_header=worker is not None,
            config_path=config_path,
            setup=setup,
        )
        reloads = ReloadTriggers(runner.app[LIVE])
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGHUP)
        if config_path is not None:
            reloads.install(watch_s)
        # Long-lived start-up objects leave the collector's view, and young-generation
        # collections run less often: full collections were pausing streams for 10-20 ms.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        if worker is None:
            print(f"race-gateway listening on {url}", flush=True)
        else:
            print(f"race-gateway worker {worker} pid {os.getpid()} listening on {url}", flush=True)
        watcher = asyncio.create_task(_watch_parent(signals.stop)) if worker is not None else None
        try:
            await signals.stop.wait()
        finally:
            if watcher is not None:
                watcher.cancel()
            await reloads.remove()
            await drain(runner, grace_s, signals.force)
    finally:
        signals.remove()
