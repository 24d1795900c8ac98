"""The Messages door with the official anthropic SDK, each provider kind as the winner:
`messages.create`, `messages.stream` with text, a tool-use round trip and thinking."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic import AsyncAnthropic

from tests.stack import stack

KINDS = ("openai", "anthropic", "gemini", "ollama")
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def servers_with_winner(winner: str, **model: Any) -> dict[str, dict[str, Any]]:
    servers: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        ttft = 5 if kind == winner else 3000
        config = {"ttft_ms": ttft, "itl_ms": 1, "tokens": 4, "text": f"answer from {kind}"}
        servers[kind] = {"kind": kind, "models": {f"{kind}-m": {**config, **model}}}
    return servers


def route() -> dict[str, dict[str, Any]]:
    return {
        "chat": {
            "strategy": "race",
            "k": 4,
            "deployments": [f"{k}-m" for k in KINDS],
            "max_extra_load": 10,
        }
    }


def client(url: str) -> AsyncAnthropic:
    return AsyncAnthropic(base_url=url, api_key="x", max_retries=0)


@pytest.mark.parametrize("winner", KINDS)
async def test_stream_text(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        async with (
            client(s.url) as anthropic,
            anthropic.messages.stream(
                model="chat",
                max_tokens=100,
                system=[
                    {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}
                ],
                messages=[{"role": "user", "content": "hi"}],
            ) as stream,
        ):
            assert stream.response.headers["x-gateway-deployment"] == f"{winner}-m"
            text = [t async for t in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(text) == f"answer from {winner}"
        assert final.id.startswith("msg_") and final.model == "chat"
        assert [b.type for b in final.content] == ["text"]
        assert final.stop_reason == "end_turn"
        assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
        losers = await s.log.wait_for(
            lambda rs: sum(r.outcome == "client_disconnect" for r in rs) == len(KINDS) - 1
        )
        assert {r.kind for r in losers if r.outcome == "client_disconnect"} == set(KINDS) - {winner}


@pytest.mark.parametrize("winner", KINDS)
async def test_create_non_stream(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        async with client(s.url) as anthropic:
            message = await anthropic.messages.create(
                model="chat",
                max_tokens=100,
                messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                stop_sequences=["never"],
                extra_body={"temperature": 0.5, "top_k": 5},  # this SDK no longer names them
                metadata={"user_id": "u-1"},
            )
        assert message.type == "message" and message.role == "assistant"
        assert message.content[0].type == "text"
        assert message.content[0].text == f"answer from {winner}"
        assert message.stop_reason == "end_turn"
        assert message.usage.output_tokens == 3  # one per word of the sim's text


@pytest.mark.parametrize("winner", KINDS)
async def test_tool_use_round_trip(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        async with client(s.url) as anthropic:
            await tool_round_trip(anthropic)


async def tool_round_trip(anthropic: AsyncAnthropic) -> None:
    """Turn one asks for the tool; turn two answers with its result."""
    question = {"role": "user", "content": "How is it in Oslo today?"}
    async with anthropic.messages.stream(
        model="chat",
        max_tokens=200,
        messages=[question],  # type: ignore[list-item]
        tools=TOOLS,
        tool_choice={"type": "any"},
    ) as stream:
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    calls = [b for b in first.content if b.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert calls[0].input == {"city": "Oslo"} and calls[0].id
    second = await anthropic.messages.create(
        model="chat",
        max_tokens=200,
        tools=TOOLS,
        messages=[
            question,  # type: ignore[list-item]
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": calls[0].id, "content": "sunny"}
                ],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text


@pytest.mark.parametrize("winner", KINDS)
async def test_thinking(winner: str) -> None:
    async with stack(servers_with_winner(winner, reasoning_tokens=3), route()) as s:
        async with (
            client(s.url) as anthropic,
            anthropic.messages.stream(
                model="chat",
                max_tokens=2048,
                thinking={"type": "enabled", "budget_tokens": 1024},
                messages=[{"role": "user", "content": "think first"}],
            ) as stream,
        ):
            kinds = [e.type async for e in stream]
            final = await stream.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "text"]
        assert final.content[0].thinking.strip()  # type: ignore[union-attr]
        assert final.content[1].text == f"answer from {winner}"  # type: ignore[union-attr]
        # Anthropic signs its thinking (so it can be sent back); the others have no signature
        assert bool(final.content[0].signature) == (winner == "anthropic")  # type: ignore[union-attr]
        assert "thinking" in kinds and "text" in kinds


@pytest.mark.parametrize("winner", KINDS)
async def test_thinking_tool_loop(winner: str) -> None:
    """Thinking with tools over two turns: the assistant turn (thinking, signed only when
    Anthropic won it, and the tool call) goes back as the SDK returned it."""
    async with (
        stack(servers_with_winner(winner, reasoning_tokens=2), route()) as s,
        client(s.url) as anthropic,
    ):
        question = {"role": "user", "content": "What is the weather in Oslo?"}
        thinking: Any = {"type": "enabled", "budget_tokens": 1024}
        first = await anthropic.messages.create(
            model="chat", max_tokens=2048, thinking=thinking, tools=TOOLS, messages=[question]
        )
        assert [b.type for b in first.content] == ["thinking", "tool_use"]
        call = first.content[1]
        assert call.type == "tool_use"
        second = await anthropic.messages.create(
            model="chat",
            max_tokens=2048,
            thinking=thinking,
            tools=TOOLS,
            tool_choice={"type": "none"},
            messages=[
                question,  # type: ignore[list-item]
                {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "5C"}],
                },
            ],
        )
        assert second.stop_reason == "end_turn" and second.content[-1].type == "text"


@pytest.mark.parametrize("winner", ["anthropic", "openai"])
async def test_a_coding_agent_shaped_request(winner: str) -> None:
    """What coding agents send: the beta endpoint (`?beta=true`, anthropic-beta), cached
    system blocks and tools, metadata, context editing, a tool loop in the history."""
    cache: Any = {"type": "ephemeral"}
    async with (
        stack(servers_with_winner(winner), route()) as s,
        client(s.url) as anthropic,
        anthropic.beta.messages.stream(
            model="chat",
            max_tokens=1000,
            betas=["interleaved-thinking-2025-05-14", "context-management-2025-06-27"],
            system=[
                {"type": "text", "text": "You are a coding agent."},
                {"type": "text", "text": "Repository notes.", "cache_control": cache},
            ],
            tools=[{**TOOLS[0], "cache_control": cache, "eager_input_streaming": True}],
            metadata={"user_id": "user_abc_account_def_session_ghi"},
            messages=[
                {"role": "user", "content": "How is it in Oslo?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "5C"},
                        {"type": "text", "text": "Thanks, summarise.", "cache_control": cache},
                    ],
                },
            ],
            extra_body={"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
        ) as stream,
    ):
        final = await stream.get_final_message()
    assert final.content[-1].type == "text"
    assert final.content[-1].text == f"answer from {winner}"  # type: ignore[union-attr]
