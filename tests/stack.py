"""Test harness: simulated providers + an in-process gateway on real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config import parse_config
from gateway.record import RequestRecord
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.log import SimLog, SimRecord
from gateway.sim.server import SimCluster

FAST = {"ttft_ms": 5, "itl_ms": 0, "tokens": 5}


@dataclass
class Stack:
    sim: SimCluster
    gateway: Gateway
    runner: web.AppRunner
    url: str

    @property
    def log(self) -> SimLog:
        return self.sim.log

    def records(self, model: str) -> list[SimRecord]:
        return [r for r in self.sim.log.records if r.model == model]


def build_configs(
    servers: dict[str, dict[str, Any]],
    routes: dict[str, dict[str, Any]] | None = None,
    deployments: dict[str, dict[str, Any]] | None = None,
    **gateway: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    sim = {"seed": 7, "servers": servers}
    deps: dict[str, Any] = {}
    for server_name, server in servers.items():
        for model in server["models"]:
            deps[model] = {
                "provider": server_name,
                "model": model,
                **(deployments or {}).get(model, {}),
            }
    return sim, {"deployments": deps, "routes": routes or {}, **gateway}


@asynccontextmanager
async def stack(
    servers: dict[str, dict[str, Any]],
    routes: dict[str, dict[str, Any]] | None = None,
    deployments: dict[str, dict[str, Any]] | None = None,
    provider_kinds: dict[str, str] | None = None,
    provider_options: dict[str, dict[str, Any]] | None = None,
    **gateway: Any,
) -> AsyncIterator[Stack]:
    # Pre-warming is off unless a test asks for it: idle warm connections would blur
    # the connection accounting most tests assert on.
    latency = dict(gateway.pop("latency", {}))
    latency.setdefault("prewarm", {"enabled": False})
    # Tests name deployments as `model` (most stacks have no routes): allow it unless a test
    # is about direct access itself.
    routing = dict(gateway.pop("routing", {}))
    routing.setdefault("allow_direct_deployments", True)
    sim_data, gw_data = build_configs(
        servers, routes, deployments, latency=latency, routing=routing, **gateway
    )
    sim_config, problems = parse_sim_config(sim_data)
    assert sim_config is not None, problems
    cluster = SimCluster(sim_config)
    await cluster.start()
    try:
        gw_data["providers"] = {
            name: {
                "kind": (provider_kinds or {}).get(name, server["kind"]),
                "base_url": cluster.base_url(name),
                "api_key": "sim-key",
                **({"http2": True} if server.get("http2") else {}),
                # a server on TLS: its own certificate is the provider's trust anchor
                **({"tls_ca_file": server["tls_cert"]} if server.get("tls_cert") else {}),
                **(provider_options or {}).get(name, {}),
            }
            for name, server in servers.items()
        }
        config = parse_config(gw_data, env={})
        gw = Gateway(config)
        runner, url = await start_server(gw, "127.0.0.1", 0)
        try:
            yield Stack(cluster, gw, runner, url)
        finally:
            await runner.cleanup()
    finally:
        await cluster.stop()


async def no_gateway_tasks_left() -> bool:
    """True once only the current task (and sim server tasks) remain; used after a request."""
    for _ in range(50):
        others = [
            t
            for t in asyncio.all_tasks()
            if t is not asyncio.current_task() and t.get_name().startswith("attempt:")
        ]
        if not others:
            return True
        await asyncio.sleep(0)
    return False


class Recorded:
    """A record sink to append to `gateway.sinks` (the pipeline's own list): how many
    requests have been recorded so far (a handler records its request after the client
    has read the answer)."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = asyncio.Event()

    def record(self, rec: RequestRecord) -> None:
        self.count += 1
        self.changed.set()

    async def wait(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.count < count:
                self.changed.clear()
                await self.changed.wait()
