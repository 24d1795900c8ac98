"""A cluster of simulated providers on 127.0.0.1, one aiohttp server per configured server
(HTTP/1.1, or with `http2: true` the same app behind an HTTP/2 listener: h2serve.py;
over TLS with `tls_cert`/`tls_key`).

async with SimCluster(config) as sim:
    client = AsyncOpenAI(base_url=sim.base_url("openai-sim"), api_key="x")
    ...
    await sim.log.wait_for(lambda recs: len(recs) == 1)
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from gateway.sim.app import SimShared, make_app, reconfigure
from gateway.sim.config import SimConfig, SimModelConfig, SimServerConfig, load_sim_config
from gateway.sim.h2serve import H2Server
from gateway.sim.log import SimLog
from gateway.sim.tls_delay import DelayedTls
from gateway.value_class import value_class

SHUTDOWN_TIMEOUT_S = 1.0
# a provider's accept queue does not overflow at a few hundred new connections a second (a
# race's every loser is one); aiohttp's default backlog of 128 did here, and a dropped SYN
# waits a second for its retry
BACKLOG = 2048


@value_class
class SimServerInfo:
    name: str
    kind: str
    host: str
    port: int
    base_url: str
    models: tuple[str, ...]
    http2: bool = False  # speaks only HTTP/2 (h2c with prior knowledge, or h2 by ALPN)
    tls: bool = False


def _base_url(kind: str, host: str, port: int, tls: bool = False) -> str:
    root = f"{'https' if tls else 'http'}://{host}:{port}"
    return root + "/v1" if kind == "openai" else root


def _ssl_context(server: SimServerConfig) -> ssl.SSLContext | None:
    """The server side of TLS from the PEM files; ALPN offers only the one protocol served."""
    if server.tls_cert is None or server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.tls_cert, server.tls_key)
    context.set_alpn_protocols(["h2"] if server.http2 else ["http/1.1"])
    return context


class SimCluster:
    """Start/stop every simulated server of a config; all share one `SimLog`.

    `clock` (epoch seconds, default `time.time`) is what models' `hourly_multipliers`
    read the UTC hour from: a benchmark can walk it through a simulated day. `region`
    is the client region models' `region_multipliers` apply to (the gateway does not
    tell upstreams where its client is, so a benchmark sets it per step).
    """

    def __init__(
        self,
        config: SimConfig,
        log: SimLog | None = None,
        *,
        clock: Callable[[], float] = time.time,
        region: str | None = None,
    ) -> None:
        self.config = config
        self.log = log if log is not None else SimLog(config.log_token_times)
        self.servers: dict[str, SimServerInfo] = {}
        self._shared = SimShared(seed=config.seed, log=self.log, clock=clock, region=region)
        self._runners: list[web.AppRunner] = []
        self._h2_servers: list[H2Server] = []
        self._listeners: list[asyncio.Server] = []
        self._delayed: list[DelayedTls] = []

    @property
    def clock(self) -> Callable[[], float]:
        return self._shared.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._shared.clock = clock

    @property
    def region(self) -> str | None:
        return self._shared.region

    @region.setter
    def region(self, region: str | None) -> None:
        self._shared.region = region

    async def start(self) -> None:
        if self._runners:
            raise RuntimeError("SimCluster already started")
        try:
            for name, server in self.config.servers.items():
                await self._start_one(name, server)
        except BaseException:
            await self.stop()
            raise

    async def _start_one(self, name: str, server: SimServerConfig) -> None:
        app = make_app(name, server, self._shared)
        runner = web.AppRunner(
            app,
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        self._runners.append(runner)
        context = _ssl_context(server)
        app_server = runner.server
        assert app_server is not None
        tracker = self.log.connections  # told of each accept: handshakes run from there
        if server.http2:  # the same app, behind an HTTP/2 listener instead of aiohttp's
            h2 = H2Server(app_server, on_accept=tracker.accepted)
            self._h2_servers.append(h2)
            await h2.start(self.config.host, server.port, ssl_context=context, backlog=BACKLOG)
            port = h2.port
        else:

            def accept() -> asyncio.Protocol:
                protocol = app_server()  # aiohttp's low-level server is a protocol factory
                tracker.accepted(protocol)
                return protocol

            if context is not None and server.handshake_ms > 0:  # the TLS handshake pays it
                delayed = DelayedTls(context, server.handshake_ms / 1000, accept)
                self._delayed.append(delayed)
                await delayed.start(self.config.host, server.port, BACKLOG)
                port = delayed.port
            else:
                listener = await asyncio.get_running_loop().create_server(
                    accept, self.config.host, server.port, ssl=context, backlog=BACKLOG
                )
                self._listeners.append(listener)
                port = int(listener.sockets[0].getsockname()[1])
        self.servers[name] = SimServerInfo(
            name=name,
            kind=server.kind,
            host=self.config.host,
            port=port,
            base_url=_base_url(server.kind, self.config.host, port, server.tls),
            models=tuple(server.models),
            http2=server.http2,
            tls=server.tls,
        )

    async def stop(self) -> None:
        h2_servers, self._h2_servers = self._h2_servers, []
        for h2 in reversed(h2_servers):
            await h2.close()
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.close()
        delayed, self._delayed = self._delayed, []
        for handshakes in delayed:
            await handshakes.close()
        runners, self._runners = self._runners, []
        for runner in reversed(runners):
            await runner.cleanup()  # closes the connections its server made
        for listener in listeners:
            await listener.wait_closed()
        self.servers = {}

    def base_url(self, server_name: str) -> str:
        try:
            return self.servers[server_name].base_url
        except KeyError:
            raise KeyError(f"no running sim server named {server_name!r}") from None

    def configure(self, server: str, model: str, **changes: Any) -> None:
        """Change a simulated model's behaviour while it runs (see app.reconfigure)."""
        reconfigure(self.config.servers[server], model, changes)

    def reset(self) -> None:
        """Clear the log and the per-model request counters (the draws start over)."""
        self._shared.reset()

    async def __aenter__(self) -> SimCluster:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


async def run_sim(config_path: str) -> None:
    """Run the simulated servers of a YAML file until SIGINT/SIGTERM."""
    config = await asyncio.to_thread(load_sim_config, Path(config_path))
    await serve_until_signal(config)


async def serve_until_signal(config: SimConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not on this platform / thread
            pass
    try:
        async with SimCluster(config) as cluster:
            for info in cluster.servers.values():
                models = ", ".join(info.models)
                h2 = " (HTTP/2)" if info.http2 else ""
                print(
                    f"{info.name:<16} {info.kind:<10} {info.base_url}{h2}  models: {models}",
                    flush=True,
                )
            await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def default_demo_sim_config(seed: int = 42) -> SimConfig:
    """Providers shaped on the published TTFT figures (latency-data.md)."""
    return SimConfig(
        seed=seed,
        servers={
            "openai-sim": SimServerConfig(
                kind="openai",
                handshake_ms=120.0,
                models={
                    "gpt-4o-mini-sim": SimModelConfig(
                        ttft_p50_ms=645.0, ttft_p95_ms=1094.0, itl_ms=9.5, tokens=60
                    ),
                    "deepseek-sim": SimModelConfig(
                        ttft_p50_ms=1068.0,
                        ttft_p95_ms=3017.0,
                        itl_ms=38.0,
                        tokens=60,
                        keepalive_ms=200.0,
                        reasoning_tokens=20,
                        error_rate_503=0.0004,
                    ),
                    "text-embedding-sim": SimModelConfig(
                        type="embedding", dimensions=1536, ttft_p50_ms=180.0, ttft_p95_ms=420.0
                    ),
                },
            ),
            "anthropic-sim": SimServerConfig(
                kind="anthropic",
                handshake_ms=150.0,
                models={
                    "claude-haiku-sim": SimModelConfig(
                        ttft_p50_ms=731.0, ttft_p95_ms=1106.0, itl_ms=17.0, tokens=60
                    ),
                },
            ),
            "gemini-sim": SimServerConfig(
                kind="gemini",
                handshake_ms=100.0,
                models={
                    # p95/p50 = 4.2 is a mixture: a narrower body plus 6 % stragglers x6
                    # (overall p50 ~560 ms, p95 ~2.3 s)
                    "gemini-flash-sim": SimModelConfig(
                        ttft_p50_ms=540.0,
                        ttft_p95_ms=1150.0,
                        straggler_fraction=0.06,
                        straggler_multiplier=6.0,
                        itl_ms=7.3,
                        tokens=60,
                    ),
                    "gemini-embedding-sim": SimModelConfig(
                        type="embedding", dimensions=768, ttft_p50_ms=150.0, ttft_p95_ms=380.0
                    ),
                },
            ),
            "ollama-sim": SimServerConfig(
                kind="ollama",
                models={
                    "llama-local-sim": SimModelConfig(
                        ttft_p50_ms=761.0,
                        ttft_p95_ms=2221.0,
                        itl_ms=21.0,
                        tokens=60,
                        error_rate_500=0.0002,
                    ),
                    "nomic-embed-sim": SimModelConfig(
                        type="embedding", dimensions=768, ttft_p50_ms=60.0, ttft_p95_ms=200.0
                    ),
                },
            ),
        },
    )
