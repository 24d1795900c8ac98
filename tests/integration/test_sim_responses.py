"""The OpenAI simulator's `/v1/responses`: every event validates against the openai SDK's
types, the SDK's own client and stream helper read it, and faults look like the real API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.sim.config import parse_sim_config
from gateway.sim.server import SimCluster

FAST = {"ttft_ms": 5, "itl_ms": 0, "tokens": 4}
EVENT = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    models = {
        "fast": {**FAST, "text": "Hello there, world!"},
        "thinker": {**FAST, "reasoning_tokens": 2},
        "broken": {**FAST, "midstream_error_rate": 1.0},
    }
    config, problems = parse_sim_config(
        {"seed": 3, "servers": {"oa": {"kind": "openai", "models": models}}}
    )
    assert config is not None, problems
    async with SimCluster(config) as cluster:
        yield cluster


async def raw_events(sim: SimCluster, body: dict[str, Any]) -> list[Any]:
    url = sim.base_url("oa") + "/responses"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=body, headers={"authorization": "Bearer x"}) as resp,
    ):
        assert resp.status == 200
        data = await resp.read()
    events = []
    for block in data.split(b"\n\n")[:-1]:
        name, payload = block.split(b"\n")
        event = EVENT.validate_json(payload.removeprefix(b"data: "))
        assert name == b"event: " + event.type.encode()
        events.append(event)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


@pytest.mark.parametrize("model", ["fast", "thinker"])
async def test_text_stream_validates(sim: SimCluster, model: str) -> None:
    events = await raw_events(sim, {"model": model, "input": "hi", "stream": True})
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].response.output_text == text and text
    if model == "thinker":
        assert events[-1].response.output[0].type == "reasoning"
        assert events[-1].response.usage.output_tokens_details.reasoning_tokens == 2


async def test_tool_call_stream_validates(sim: SimCluster) -> None:
    body = {"model": "fast", "input": "weather?", "stream": True, "tools": [WEATHER]}
    events = await raw_events(sim, {**body, "tool_choice": "required"})
    final = events[-1].response
    assert final.output[0].type == "function_call" and final.output[0].name == "get_weather"
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert args == final.output[0].arguments == '{"city":"Oslo"}'


async def test_length_is_incomplete_and_failure_is_failed(sim: SimCluster) -> None:
    events = await raw_events(
        sim, {"model": "fast", "input": "hi", "stream": True, "max_output_tokens": 2}
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    events = await raw_events(sim, {"model": "broken", "input": "hi", "stream": True})
    assert events[-1].type == "response.failed"


async def test_official_sdk_against_the_simulator(sim: SimCluster) -> None:
    client = openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key="x", max_retries=0)
    response = await client.responses.create(model="fast", input="hi")
    Response.model_validate(response.model_dump())
    assert response.output_text == "Hello there, world!"
    async with client.responses.stream(model="thinker", input="hi") as stream:
        final = await stream.get_final_response()
    assert final.output_text and final.status == "completed"
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="nope", input="hi")
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.base_url("oa") + "/responses", json={"model": "fast", "input": "x"}) as r,
    ):
        assert r.status == 401  # no key: OpenAI's own 401
