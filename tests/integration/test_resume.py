"""Resume on a backup over real sockets: simulated upstreams cut the winner mid-stream, and
backups (DeepSeek prefix completion over the OpenAI sim, Anthropic prefill) continue the
answer; the sims' texts depend on the prompt only, so each answer's exact text is known."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from openai import AsyncOpenAI

from gateway.sim.plan import prompt_words
from tests.stack import Stack, stack

WORDS = 24
FAST = {"ttft_ms": 1, "itl_ms": 0, "tokens": WORDS, "text_from_prompt": True}
CUTTING = {**FAST, "cut_rate": 0.2, "midstream_error_rate": 0.1}  # 30 % of winners cut
SERVERS: dict[str, dict[str, Any]] = {
    "prim": {"kind": "openai", "models": {"primary": CUTTING}},
    # a backup that also fails before its first token now and then: the next one takes over
    "ds": {"kind": "openai", "models": {"ds-backup": {**FAST, "error_rate_500": 0.3}}},
    "an": {"kind": "anthropic", "models": {"claude-backup": FAST}},
}
KINDS = {"ds": "deepseek"}
# Breakers never open and the primary stays first: the scenario is the same all along.
DEPLOYMENTS = {
    "primary": {"error_budget": 1.0, "prior": {"ttft_p50_ms": 1, "ttft_p95_ms": 2}},
    "ds-backup": {"error_budget": 1.0, "prior": {"ttft_p50_ms": 500, "ttft_p95_ms": 900}},
    "claude-backup": {"error_budget": 1.0, "prior": {"ttft_p50_ms": 600, "ttft_p95_ms": 900}},
}
MEMBERS = ["primary", "ds-backup", "claude-backup"]


def expected(prompt: str) -> str:
    return "".join(prompt_words(prompt, WORDS))


def read_sse(raw: bytes) -> dict[str, Any]:
    """What an SSE client got: text, role deltas, finish reasons, errors, usage."""
    out: dict[str, Any] = {"text": "", "roles": 0, "finishes": [], "errors": [], "usage": None}
    for event in raw.split(b"\n\n"):
        if not event.startswith(b"data: {"):
            continue
        chunk = orjson.loads(event[6:])
        if "error" in chunk:
            out["errors"].append(chunk["error"])
            continue
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            out["roles"] += "role" in delta
            out["text"] += delta.get("content") or ""
            if choice.get("finish_reason"):
                out["finishes"].append(choice["finish_reason"])
    return out


async def ask(
    http: aiohttp.ClientSession, url: str, prompt: str, route: str = "chat", **extra: Any
) -> dict[str, Any]:
    body = {
        "model": route,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **extra,
    }
    async with http.post(f"{url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        return read_sse(await resp.read())


async def ask_many(s: Stack, prompts: list[str], route: str) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:

        async def one(prompt: str) -> dict[str, Any]:
            async with gate:
                return await ask(http, s.url, prompt, route)

        return await asyncio.gather(*(one(p) for p in prompts))


def metric(s: Stack, line: str) -> float:
    for row in s.gateway.metrics.render().decode().splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


async def test_a_thousand_answers_with_30_percent_cut_winners_all_arrive_whole() -> None:
    routes = {"chat": {"strategy": "fallback", "deployments": MEMBERS, "resume": True}}
    async with stack(SERVERS, routes, DEPLOYMENTS, provider_kinds=KINDS) as s:
        prompts = [f"question {i}" for i in range(1000)]
        answers = await ask_many(s, prompts, "chat")
        for prompt, got in zip(prompts, answers, strict=True):
            assert got["errors"] == [], prompt
            assert got["text"] == expected(prompt), prompt
            assert got["roles"] == 1 and got["finishes"] == ["stop"], prompt
        cut = [r for r in s.records("primary") if r.outcome in ("cut", "midstream_error")]
        assert 200 < len(cut) < 400  # the 30 % really happened
        continued = [r for r in s.log.records if r.continued_from is not None]
        assert {r.model for r in continued} == {"ds-backup", "claude-backup"}
        assert all(r.path == "/beta/chat/completions" for r in s.records("ds-backup"))
        for record in continued:  # each asked to go on from exactly what the client had
            assert expected(record.last_user_text).startswith(record.continued_from or "")
        resumed = 'gateway_resumes_total{outcome="resumed",route="chat"}'
        assert metric(s, resumed) == len(cut)


async def test_the_same_cuts_without_resume_are_in_stream_errors() -> None:
    routes = {"chat": {"strategy": "fallback", "deployments": MEMBERS}}
    async with stack(SERVERS, routes, DEPLOYMENTS, provider_kinds=KINDS) as s:
        prompts = [f"question {i}" for i in range(300)]
        answers = await ask_many(s, prompts, "chat")
        failed = [(p, a) for p, a in zip(prompts, answers, strict=True) if a["errors"]]
        cut = [r for r in s.records("primary") if r.outcome in ("cut", "midstream_error")]
        assert len(failed) == len(cut) > 0
        for prompt, got in failed:  # a truncated answer and an error, as before
            assert expected(prompt).startswith(got["text"]) and got["text"] != expected(prompt)
            assert got["finishes"] == []
        assert not [r for r in s.log.records if r.continued_from is not None]
        assert not [r for r in s.log.records if r.model != "primary"]


async def test_a_cut_inside_a_tool_call_is_not_resumed() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                    "required": ["city", "unit"],
                },
            },
        }
    ]
    servers = {
        **SERVERS,
        "prim": {
            "kind": "openai",
            "models": {"primary": {**FAST, "tool_call": "always", "cut_rate": 1.0}},
        },
    }
    routes = {"chat": {"strategy": "fallback", "deployments": MEMBERS, "resume": True}}
    async with stack(servers, routes, DEPLOYMENTS, provider_kinds=KINDS) as s:
        async with aiohttp.ClientSession() as http:
            got = await ask(http, s.url, "weather in Oslo?", tools=tools)
        assert len(got["errors"]) == 1 and got["finishes"] == []
        assert [r.model for r in s.log.records] == ["primary"]


async def test_the_openai_sdk_reads_answers_resumed_by_anthropic_prefill() -> None:
    servers = {
        "prim": {"kind": "openai", "models": {"primary": {**FAST, "cut_rate": 1.0}}},
        "an": SERVERS["an"],
    }
    routes = {
        "chat": {
            "strategy": "fallback",
            "deployments": ["primary", "claude-backup"],
            "resume": True,
        }
    }
    async with stack(servers, routes, DEPLOYMENTS) as s:
        client = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="unused", max_retries=0)
        for i in range(10):
            prompt = f"sdk question {i}"
            stream = await client.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
            text, finish, usage = [], [], None
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    text.append(choice.delta.content or "")
                    if choice.finish_reason:
                        finish.append(choice.finish_reason)
            assert "".join(text) == expected(prompt) and finish == ["stop"]
            assert usage is not None and usage.completion_tokens >= WORDS
        await client.close()
        assert len([r for r in s.records("claude-backup") if r.outcome == "completed"]) == 10


async def test_a_non_streaming_answer_is_resumed_too() -> None:
    servers = {
        "prim": {"kind": "openai", "models": {"primary": {**FAST, "cut_rate": 1.0}}},
        "ds": {"kind": "openai", "models": {"ds-backup": FAST}},
    }
    routes = {
        "chat": {"strategy": "fallback", "deployments": ["primary", "ds-backup"], "resume": True}
    }
    async with stack(servers, routes, DEPLOYMENTS, provider_kinds=KINDS) as s:
        body = {"model": "chat", "messages": [{"role": "user", "content": "whole, please"}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200
                answer = await resp.json()
        choice = answer["choices"][0]
        assert choice["message"]["content"] == expected("whole, please")
        assert choice["finish_reason"] == "stop"
        usage = answer["usage"]
        assert usage["completion_tokens"] == WORDS  # the cut part plus the continuation
