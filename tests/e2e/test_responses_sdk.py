"""The official openai SDK's Responses client against the gateway, every provider kind of
the simulators as the race's winner: create (stream and not), the `responses.stream()`
helper, reasoning, tools with a second turn through previous_response_id, structured
output, stored responses, and refusals in the OpenAI envelope."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from pydantic import BaseModel

from tests.e2e.test_cross_protocol import KINDS, route, servers_with_winner
from tests.stack import FAST, stack

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def client(url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


def with_model(winner: str, **model: Any) -> dict[str, dict[str, Any]]:
    servers = servers_with_winner(winner)
    for kind, server in servers.items():
        server["models"][f"{kind}-m"].update(model)  # type: ignore[index]
    return servers


@pytest.mark.parametrize("winner", KINDS)
async def test_non_stream_create(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        raw = await client(s.url).responses.with_raw_response.create(
            model="chat", input="hi", instructions="be brief", max_output_tokens=50
        )
        assert raw.headers["x-gateway-deployment"] == f"{winner}-m"
        response = raw.parse()
        assert response.object == "response" and response.status == "completed"
        assert response.id.startswith("resp_") and response.instructions == "be brief"
        assert response.output_text == f"answer from {winner}"
        assert response.usage is not None and response.usage.output_tokens > 0
        assert response.usage.total_tokens == (
            response.usage.input_tokens + response.usage.output_tokens
        )
        losers = await s.log.wait_for(
            lambda rs: sum(r.outcome == "client_disconnect" for r in rs) == len(KINDS) - 1
        )
        assert {r.kind for r in losers if r.outcome == "client_disconnect"} == set(KINDS) - {winner}


@pytest.mark.parametrize("winner", KINDS)
async def test_stream_create(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        raw = await client(s.url).responses.with_raw_response.create(
            model="chat", input=[{"role": "user", "content": "hi"}], stream=True
        )
        assert raw.headers["x-gateway-deployment"] == f"{winner}-m"
        assert raw.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in raw.parse()]
        types = [event.type for event in events]
        assert types[:2] == ["response.created", "response.in_progress"]
        assert types[-1] == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == f"answer from {winner}"
        final = events[-1].response  # type: ignore[union-attr]
        assert final.output_text == text
        assert final.usage is not None and final.usage.output_tokens > 0


@pytest.mark.parametrize("winner", KINDS)
async def test_stream_helper_with_reasoning(winner: str) -> None:
    async with stack(with_model(winner, reasoning_tokens=3), route()) as s:
        async with client(s.url).responses.stream(
            model="chat", input="think first", reasoning={"effort": "low"}
        ) as stream:
            kinds = [event.type async for event in stream]
            final = await stream.get_final_response()
        assert final.output_text == f"answer from {winner}"
        reasoning = [item for item in final.output if item.type == "reasoning"]
        assert len(reasoning) == 1 and reasoning[0].content
        assert reasoning[0].content[0].text.strip()
        assert "response.reasoning_text.delta" in kinds
        assert final.output[-1].type == "message"  # reasoning first, then the answer
        assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens >= 0


@pytest.mark.parametrize("winner", KINDS)
async def test_tool_call_then_second_turn_via_previous_response_id(winner: str) -> None:
    async with stack(servers_with_winner(winner), route()) as s:
        oa = client(s.url)
        first = await oa.responses.create(
            model="chat",
            input="what is the weather in Oslo?",
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            store=True,
        )
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1 and calls[0].name == "get_weather"
        assert calls[0].call_id and calls[0].arguments.startswith("{")
        async with oa.responses.stream(
            model="chat",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "12C"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="none",
        ) as stream:
            second = await stream.get_final_response()
        assert second.output_text == f"answer from {winner}"
        assert second.previous_response_id == first.id
        # the upstream got the stored turn: the first input and the call came along
        assert second.usage is not None and first.usage is not None
        assert second.usage.input_tokens > first.usage.input_tokens
        if winner in ("openai", "ollama"):  # tool results have their own role there
            winners = [r for r in s.log.records if r.kind == winner]
            assert winners[-1].last_user_text == "what is the weather in Oslo?"


class Weather(BaseModel):
    city: str
    temp: int


@pytest.mark.parametrize("winner", KINDS)
async def test_structured_output(winner: str) -> None:
    servers = with_model(winner, text='{"city": "Oslo", "temp": 12}')
    deployments = {"anthropic-m": {"drop_params": True}}  # Anthropic has no response_format
    async with stack(servers, route(), deployments) as s:
        parsed = await client(s.url).responses.parse(
            model="chat", input="weather as JSON", text_format=Weather
        )
        assert parsed.output_parsed == Weather(city="Oslo", temp=12)
        winners = [r for r in s.log.records if r.kind == winner]
        assert winners[-1].outcome == "completed"


SERVERS = {"oa": {"kind": "openai", "models": {"m": {**FAST, "text": "one two three"}}}}


async def test_stored_response_get_delete_and_404s() -> None:
    async with stack(SERVERS) as s:
        oa = client(s.url)
        kept = await oa.responses.create(model="m", input="hi", store=True, metadata={"k": "v"})
        fetched = await oa.responses.retrieve(kept.id)
        assert fetched.id == kept.id and fetched.output_text == "one two three"
        assert fetched.metadata == {"k": "v"}
        not_kept = await oa.responses.create(model="m", input="hi")  # stateless by default
        with pytest.raises(openai.NotFoundError) as info:
            await oa.responses.retrieve(not_kept.id)
        assert info.value.body["code"] == "response_not_found"  # type: ignore[index]
        await oa.responses.delete(kept.id)
        with pytest.raises(openai.NotFoundError):
            await oa.responses.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError):
            await oa.responses.delete(kept.id)
        with pytest.raises(openai.NotFoundError) as info:
            await oa.responses.create(model="m", input="again", previous_response_id=kept.id)
        assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]


async def test_a_stored_response_belongs_to_its_key() -> None:
    async with stack(SERVERS, auth={"keys": ["key-a", "key-b"]}) as s:
        a = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="key-a", max_retries=0)
        b = AsyncOpenAI(base_url=f"{s.url}/v1", api_key="key-b", max_retries=0)
        kept = await a.responses.create(model="m", input="hi", store=True)
        assert (await a.responses.retrieve(kept.id)).id == kept.id
        with pytest.raises(openai.NotFoundError):
            await b.responses.retrieve(kept.id)
        with pytest.raises(openai.NotFoundError):
            await b.responses.create(model="m", input="x", previous_response_id=kept.id)


async def test_stored_turns_chain() -> None:
    """Three turns: each prepends everything before it, instructions are not inherited."""
    servers = {"oa": {"kind": "openai", "models": {"m": {**FAST, "echo": True}}}}
    async with stack(servers) as s:
        oa = client(s.url)
        one = await oa.responses.create(model="m", input="first", instructions="A", store=True)
        two = await oa.responses.create(
            model="m", input="second", previous_response_id=one.id, store=True
        )
        three = await oa.responses.create(model="m", input="third", previous_response_id=two.id)
        assert three.output_text == "third"
        assert three.instructions is None
        assert [r.last_user_text for r in s.log.records] == ["first", "second", "third"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": "hi", "background": True}, "background"),
        ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"model": "m", "input": "hi", "tools": [{"type": "code_interpreter"}]},
            "tools[0].type",
        ),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": [{"type": "computer_call", "id": "c"}]}, "input[0].type"),
        ({"model": "m", "input": "hi", "temperature": "hot"}, "temperature"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    async with stack(SERVERS) as s:
        with pytest.raises(openai.BadRequestError) as info:
            await client(s.url).post("/responses", cast_to=object, body=body)
        error = info.value.body
        assert isinstance(error, dict) and error["param"] == param
        assert error["type"] == "invalid_request_error" and error["message"]
        assert s.log.records == []  # nothing reached an upstream


async def test_unknown_model_and_oversize_body() -> None:
    async with stack(SERVERS, limits={"max_body_bytes": 2048}) as s:
        oa = client(s.url)
        with pytest.raises(openai.NotFoundError) as info:
            await oa.responses.create(model="nope", input="hi")
        assert info.value.body["code"] == "model_not_found"  # type: ignore[index]
        with pytest.raises(openai.APIStatusError) as big:
            await oa.responses.create(model="m", input="x" * 4096)
        assert big.value.status_code == 413


async def test_midstream_failure_is_response_failed() -> None:
    servers = {
        "oa": {
            "kind": "openai",
            "models": {"m": {"ttft_ms": 5, "itl_ms": 1, "tokens": 20, "midstream_error_rate": 1.0}},
        }
    }
    async with stack(servers) as s:
        stream = await client(s.url).responses.create(model="m", input="hi", stream=True)
        types = [event.type async for event in stream]
        assert types[:2] == ["response.created", "response.in_progress"]
        assert "response.output_text.delta" in types
        assert types[-2:] == ["error", "response.failed"]


async def test_item_references_resolve_against_stored_responses() -> None:
    """What the Vercel AI SDK sends by default: no `store`, earlier assistant turns as
    item_reference. With responses.store_by_default the references resolve."""
    async with stack(SERVERS, responses={"store_by_default": True}) as s:
        oa = client(s.url)
        first = await oa.responses.create(model="m", input="hi")
        assert first.model_dump()["store"] is True
        said = first.output[0].id
        follow = [{"role": "user", "content": "hi"}, {"type": "item_reference", "id": said}]
        follow.append({"role": "user", "content": "more"})
        with_ref = await oa.responses.create(model="m", input=follow)  # type: ignore[arg-type]
        without = await oa.responses.create(model="m", input=[follow[0], follow[2]])  # type: ignore[arg-type]
        assert with_ref.usage is not None and without.usage is not None
        assert with_ref.usage.input_tokens > without.usage.input_tokens  # the text came along


async def test_item_reference_without_a_stored_response_is_a_404() -> None:
    async with stack(SERVERS) as s:
        oa = client(s.url)
        first = await oa.responses.create(model="m", input="hi")  # stateless by default
        follow = [
            {"type": "item_reference", "id": first.output[0].id},
            {"role": "user", "content": "x"},
        ]
        with pytest.raises(openai.NotFoundError) as info:
            await oa.responses.create(model="m", input=follow)  # type: ignore[arg-type]
        assert info.value.body["code"] == "item_not_found"  # type: ignore[index]
        assert info.value.body["param"] == "input[0].id"  # type: ignore[index]
