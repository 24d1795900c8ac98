"""A finished request leaves no reference cycle of the gateway's own objects behind, on
every path: each front door, races, hedges, fallbacks, resumes, errors, timeouts and
clients that leave.

Cycles wait for the cyclic collector. Under load a young generation full of finished
races took tens of milliseconds to collect, and every stream and every loser's cut
waited for it (bench.loser_cut: a loser's tokens after the winner's first token went
from p99 6-8 to 3 once races stopped leaving cycles). With the collector off, whatever
a request leaves in a cycle stays until an explicit collection, which then finds it.
"""

from __future__ import annotations

import gc
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.stack import Recorded, Stack, no_gateway_tasks_left, stack

FAST = {"ttft_ms": 5, "itl_ms": 1, "tokens": 10}
EMBED = {"type": "embedding", "dimensions": 16, "ttft_ms": 1}
SERVERS = {
    "a": {
        "kind": "openai",
        "models": {
            "fast": FAST,
            "broken": {**FAST, "error_rate_500": 1.0},
            "limited": {**FAST, "error_rate_429": 1.0, "retry_after_s": 1},
            "slow": {**FAST, "ttft_ms": 150},
            "late": {**FAST, "ttft_ms": 300},
            "cutter": {**FAST, "cut_rate": 1.0, "tokens": 8},
            "midfail": {**FAST, "midstream_error_rate": 1.0},
            "staller": {**FAST, "stall_rate": 1.0, "stall_ms": 400},
            "long": {**FAST, "tokens": 500, "itl_ms": 2},
            # its first token after `fast`'s, with its stream under way: cut mid-read
            "trailing": {"ttft_ms": 40, "itl_ms": 1, "tokens": 200},
            "emb": EMBED,
        },
    },
    "an": {"kind": "anthropic", "models": {"claude": FAST}},
    "ge": {"kind": "gemini", "models": {"gem": FAST, "gemb": EMBED}},
    "ol": {"kind": "ollama", "models": {"llama": {**FAST, "ttft_ms": 20}}},
}
DEPLOYMENTS = {
    "late": {"ttft_timeout_s": 0.05},
    "staller": {"idle_timeout_s": 0.05},
    "emb": {"type": "embedding"},
    "gemb": {"type": "embedding"},
}
ROUTES: dict[str, dict[str, Any]] = {
    "single": {"strategy": "fallback", "deployments": ["fast"]},
    "race": {"strategy": "race", "k": 2, "deployments": ["fast", "trailing"]},
    "hedge": {
        "strategy": "hedge",
        "k": 2,
        "deployments": ["trailing", "fast"],
        "hedge_delay_ms": 1,
        "hedge_min_ms": 1,
        "min_extra_per_s": 100,
    },
    "after-500": {"strategy": "fallback", "deployments": ["broken", "fast"]},
    "after-429": {"strategy": "fallback", "deployments": ["limited", "fast"]},
    "after-ttft-timeout": {"strategy": "fallback", "deployments": ["late", "fast"]},
    "heartbeat": {"strategy": "fallback", "deployments": ["slow"], "heartbeat_after_s": 0.05},
    "resume": {"strategy": "fallback", "deployments": ["cutter", "claude"], "resume": True},
    "cut": {"strategy": "fallback", "deployments": ["cutter"]},
    "midstream-error": {"strategy": "fallback", "deployments": ["midfail"]},
    "stall": {"strategy": "fallback", "deployments": ["staller"]},
    "long-answer": {"strategy": "fallback", "deployments": ["long"]},
    "kinds": {"strategy": "race", "k": 3, "deployments": ["claude", "gem", "llama"]},
    "embed": {"strategy": "fallback", "deployments": ["emb", "gemb"]},
}
CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


@dataclass(frozen=True)
class Case:
    path: str
    body: dict[str, Any]
    leave_early: bool = False  # the client drops the connection after the first bytes
    headers: dict[str, str] = field(default_factory=dict)


def chat(route: str, stream: bool = True, leave_early: bool = False) -> Case:
    return Case(CHAT, {"model": route, "stream": stream, "messages": HI}, leave_early)


MESSAGES = {"anthropic-version": "2023-06-01"}
CASES = {
    "single": chat("single"),
    "single, not streamed": chat("single", stream=False),
    "race, loser cut mid-read": chat("race"),
    "race, not streamed": chat("race", stream=False),
    "hedge": chat("hedge"),
    "fallback after a 500": chat("after-500"),
    "fallback after a 429": chat("after-429"),
    "fallback after a first-token timeout": chat("after-ttft-timeout"),
    "heartbeat before the first token": chat("heartbeat"),
    "resume after a cut": chat("resume"),
    "cut mid-stream": chat("cut"),
    "error mid-stream": chat("midstream-error"),
    "idle stall": chat("stall"),
    "client leaves mid-stream": chat("long-answer", leave_early=True),
    "client leaves before the first token": chat("heartbeat", leave_early=True),
    "race of three wire kinds": chat("kinds"),
    "unknown model": chat("nope"),
    "invalid body": Case(CHAT, {"model": 3, "messages": HI}),
    "messages door": Case(
        "/v1/messages",
        {"model": "race", "max_tokens": 20, "stream": True, "messages": HI},
        headers=MESSAGES,
    ),
    "responses door": Case("/v1/responses", {"model": "race", "input": "hi", "stream": True}),
    "responses door, not streamed": Case("/v1/responses", {"model": "single", "input": "hi"}),
    "embeddings": Case("/v1/embeddings", {"model": "embed", "input": ["a", "b"]}),
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
        gc.collect()  # what was saved is free now, not found again next time
    return found


async def _send(s: Stack, case: Case) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(s.url + case.path, json=case.body, headers=case.headers) as resp:
            if case.leave_early:
                await resp.content.readany()
                resp.close()
            else:
                await resp.read()


@pytest.mark.parametrize("name", list(CASES))
async def test_a_finished_request_leaves_no_reference_cycle(name: str) -> None:
    case = CASES[name]
    async with stack(SERVERS, ROUTES, DEPLOYMENTS) as s:
        recorded = Recorded()
        s.gateway.sinks.append(recorded)
        with collector_off():
            await _send(s, case)  # warm: first connections, caches
            await recorded.wait(1)
            assert await no_gateway_tasks_left()
            cyclic_garbage()
            for _ in range(3):
                await _send(s, case)
            await recorded.wait(4)
            assert await no_gateway_tasks_left()
            assert cyclic_garbage() == []
