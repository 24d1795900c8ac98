"""Races across wire protocols: whichever upstream wins, the openai SDK gets valid chunks."""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI

from tests.stack import stack

KINDS = ("openai", "anthropic", "gemini", "ollama")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def servers_with_winner(winner: str) -> dict[str, dict[str, object]]:
    servers: dict[str, dict[str, object]] = {}
    for kind in KINDS:
        ttft = 5 if kind == winner else 3000
        model = {"ttft_ms": ttft, "itl_ms": 1, "tokens": 4, "text": f"answer from {kind}"}
        servers[kind] = {"kind": kind, "models": {f"{kind}-m": model}}
    return servers


def route() -> dict[str, dict[str, object]]:
    return {
        "chat": {
            "strategy": "race",
            "k": 4,
            "deployments": [f"{k}-m" for k in KINDS],
            "max_extra_load": 10,
        }
    }


@pytest.mark.parametrize("winner", KINDS)
async def test_text_race_across_protocols(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        client = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        raw = await client.chat.completions.with_raw_response.create(
            model="chat",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert raw.headers["x-gateway-deployment"] == f"{winner}-m"
        text, usage = [], None
        async for chunk in raw.parse():
            usage = chunk.usage or usage
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
        assert "".join(text) == f"answer from {winner}"
        assert usage is not None and usage.completion_tokens > 0
        losers = await s.log.wait_for(
            lambda rs: sum(r.outcome == "client_disconnect" for r in rs) == len(KINDS) - 1
        )
        assert {r.kind for r in losers if r.outcome == "client_disconnect"} == set(KINDS) - {winner}


@pytest.mark.parametrize("winner", KINDS)
async def test_tool_call_race_across_protocols(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        client = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        async with client.chat.completions.stream(
            model="chat",
            messages=[{"role": "user", "content": "what is the weather in Oslo?"}],
            tools=TOOLS,  # type: ignore[arg-type]
            tool_choice="required",
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert len(calls) == 1 and calls[0].function.name == "get_weather"
        assert calls[0].id
        assert isinstance(calls[0].function.parsed_arguments, dict) or calls[0].function.arguments


@pytest.mark.parametrize("kind", KINDS)
async def test_non_stream_each_protocol(kind: str) -> None:
    servers = {
        kind: {
            "kind": kind,
            "models": {"m": {"ttft_ms": 1, "itl_ms": 0, "tokens": 3, "text": "one two three"}},
        }
    }
    async with stack(servers) as s:
        client = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="x", max_retries=0)
        resp = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=50
        )
        assert resp.choices[0].message.content == "one two three"
        assert resp.usage is not None and resp.usage.completion_tokens == 3
