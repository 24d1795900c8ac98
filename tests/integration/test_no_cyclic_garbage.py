"""A finished request leaves no reference cycle of the gateway's own objects behind.

Cycles wait for the cyclic collector. Under load a young generation full of finished
races took tens of milliseconds to collect, and every stream and every loser's cut
waited for it (bench.loser_cut: a loser's tokens after the winner's first token went
from p99 6-8 to 0 once races stopped leaving cycles). With the collector off, whatever
a request leaves in a cycle stays until an explicit collection, which then finds it.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp

from tests.stack import Stack, no_gateway_tasks_left, stack

WINNER = {"ttft_ms": 5, "itl_ms": 1, "tokens": 20, "text": "the winner's answer"}
# Its first token comes after the winner's, with its stream under way: it is cut mid-read.
LOSER = {"ttft_ms": 40, "itl_ms": 1, "tokens": 200}
SERVERS = {
    "a": {"kind": "openai", "models": {"fast": WINNER}},
    "b": {"kind": "openai", "models": {"slow": LOSER}},
}
ROUTES = {
    "race": {"strategy": "race", "k": 2, "deployments": ["fast", "slow"]},
    "hedge": {
        "strategy": "hedge",
        "k": 2,
        "deployments": ["slow", "fast"],
        "hedge_delay_ms": 1,
        "hedge_min_ms": 1,
        "min_extra_per_s": 100,
    },
    "single": {"strategy": "fallback", "deployments": ["fast"]},
}


def _ours(obj: object) -> str | None:
    """The gateway object (not the simulator's) `obj` is, if it is one."""
    code = None
    if isinstance(obj, types.CoroutineType):
        code = obj.cr_code
    elif isinstance(obj, types.AsyncGeneratorType):
        code = obj.ag_code
    elif isinstance(obj, types.FrameType):
        code = obj.f_code
    if code is not None:
        path = code.co_filename
        ours = "/gateway/" in path and "/gateway/sim/" not in path
        return code.co_qualname if ours else None
    module = type(obj).__module__ or ""
    if module.startswith("gateway.") and not module.startswith("gateway.sim"):
        return type(obj).__qualname__
    return None


@contextmanager
def collector_off() -> Iterator[None]:
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_on:
            gc.enable()


def cyclic_garbage() -> list[str]:
    """Collect now; the gateway objects that only a reference cycle kept."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        found = [name for obj in gc.garbage if (name := _ours(obj)) is not None]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    return found


async def _stream(s: Stack, route: str) -> bytes:
    body = {"model": route, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            return await resp.read()


async def _finished(s: Stack, route: str, count: int) -> bool:
    metrics = s.gateway.metrics.render().decode()
    line = f'gateway_requests_total{{outcome="completed",route="{route}"}} {float(count)}'
    return line in metrics and await no_gateway_tasks_left()


async def _requests_leave_no_cycles(route: str) -> None:
    async with stack(SERVERS, ROUTES) as s:
        with collector_off():
            await _stream(s, route)  # warm: first connections, caches
            cyclic_garbage()
            for _ in range(3):
                raw = await _stream(s, route)
                assert raw.endswith(b"data: [DONE]\n\n")
            for _ in range(200):
                if await _finished(s, route, 4):
                    break
                await asyncio.sleep(0)
            assert await _finished(s, route, 4)
            assert cyclic_garbage() == []


async def test_a_race_with_a_loser_cut_mid_stream_leaves_no_cycles() -> None:
    await _requests_leave_no_cycles("race")


async def test_a_hedge_leaves_no_cycles() -> None:
    await _requests_leave_no_cycles("hedge")


async def test_a_single_attempt_leaves_no_cycles() -> None:
    await _requests_leave_no_cycles("single")
