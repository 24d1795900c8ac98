"""Several in-process gateways sharing one state backend and one simulator: what several
gateway instances behind a load balancer look like, on real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from gateway.config import parse_config
from gateway.runtime import Gateway
from gateway.server.app import start_server
from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster

MSG = [{"role": "user", "content": "hi"}]


@dataclass
class Fleet:
    sim: SimCluster
    gateways: list[Gateway]
    runners: list[web.AppRunner]
    urls: list[str]


@asynccontextmanager
async def fleet(
    instances: int,
    models: dict[str, dict[str, Any]],
    state: dict[str, Any],
    deployments: dict[str, dict[str, Any]] | None = None,
    **gateway: Any,
) -> AsyncIterator[Fleet]:
    """`instances` gateways on one `state:` backend, one OpenAI-kind simulator; route
    `chat` races nothing (fallback over the models in order)."""
    sim_config, problems = parse_sim_config(
        {"seed": 7, "servers": {"sim": {"kind": "openai", "models": models}}}
    )
    assert sim_config is not None, problems
    sim = SimCluster(sim_config)
    await sim.start()
    runners: list[web.AppRunner] = []
    try:
        data = {
            "logging": {"level": "warning", "format": "json"},
            "state": state,
            "latency": {"prewarm": {"enabled": False}},
            "providers": {
                "sim": {"kind": "openai", "base_url": sim.base_url("sim"), "api_key": "sim-key"}
            },
            "deployments": {
                name: {"provider": "sim", "model": name, **(deployments or {}).get(name, {})}
                for name in models
            },
            "routes": {"chat": {"strategy": "fallback", "deployments": list(models)}},
            **gateway,
        }
        gateways, urls = [], []
        for _ in range(instances):
            gw = Gateway(parse_config(data, env={}))
            runner, url = await start_server(gw, "127.0.0.1", 0)
            gateways.append(gw)
            runners.append(runner)
            urls.append(url)
        yield Fleet(sim, gateways, runners, urls)
    finally:
        for runner in runners:
            await runner.cleanup()
        await sim.stop()


async def chat(http: aiohttp.ClientSession, url: str, model: str = "chat") -> int:
    body = {"model": model, "messages": MSG, "stream": True}
    async with http.post(f"{url}/v1/chat/completions", json=body) as resp:
        await resp.read()
        return resp.status


async def inside_one_minute(seconds: float) -> None:
    """Rate limits count in windows aligned to the wall-clock minute (routing/ratelimit.py):
    when fewer than `seconds` are left of this one, wait for the next to begin, so that
    what a test counts against one window is not split across two."""
    left = 60.0 - time.time() % 60.0
    if left < seconds:
        await asyncio.sleep(left + 0.05)


async def spread(
    http: aiohttp.ClientSession, urls: Sequence[str], total: int, concurrency: int
) -> list[int]:
    """`total` chat requests, round robin over `urls`, `concurrency` at a time."""
    statuses: list[int] = []
    queue = list(range(total))

    async def client() -> None:
        while queue:
            i = queue.pop()
            statuses.append(await chat(http, urls[i % len(urls)]))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses
