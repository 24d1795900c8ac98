"""`POST /v1/embeddings` with the official openai SDK, each provider kind serving: single,
batch, base64 (the SDK's default) and float, dimensions, fallback, accounting, the PII
policy, refusals, and /v1/models."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import numpy as np
import openai
import pytest
from openai import AsyncOpenAI

from gateway.sim.wire_embed import vector
from tests.stack import FAST, stack

EMBED = {"type": "embedding", "dimensions": 32, "ttft_ms": 2}
SERVERS: dict[str, Any] = {
    "oa": {"kind": "openai", "models": {"te": EMBED, "m1": FAST}},
    "ge": {"kind": "gemini", "models": {"gem": EMBED}},
    "ol": {"kind": "ollama", "models": {"nomic": EMBED}},
    "bad": {"kind": "openai", "models": {"down": {**EMBED, "error_rate_500": 1.0}}},
}
PRICE = {"input": 0.5}
DEPLOYMENTS = {
    name: {"type": "embedding", "price": PRICE} for name in ("te", "gem", "nomic", "down")
}
ROUTES = {
    "vectors": {"strategy": "fallback", "deployments": ["down", "te"]},
    "weighted": {"strategy": "weighted", "deployments": ["gem", "nomic"]},
}
KINDS = [
    pytest.param("te", id="openai"),
    pytest.param("gem", id="gemini"),
    pytest.param("nomic", id="ollama"),
]


def client(url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def embedding_stack(**gateway: Any) -> Any:
    return stack(SERVERS, ROUTES, DEPLOYMENTS, **gateway)


@pytest.mark.parametrize("model", KINDS)
async def test_single_input_with_the_sdk_default_base64(model: str) -> None:
    async with embedding_stack() as s:
        resp = await client(s.url).embeddings.create(model=model, input="hello world")
        assert resp.object == "list" and resp.model == model
        (item,) = resp.data
        assert item.index == 0 and item.embedding == vector("hello world", 32)
        assert resp.usage.prompt_tokens == resp.usage.total_tokens > 0


@pytest.mark.parametrize("model", KINDS)
async def test_batch_keeps_order_in_floats(model: str) -> None:
    texts = ["first", "second text", "third, longer text"]
    async with embedding_stack() as s:
        resp = await client(s.url).embeddings.create(
            model=model, input=texts, encoding_format="float", dimensions=8
        )
        assert [d.index for d in resp.data] == [0, 1, 2]
        assert [d.embedding for d in resp.data] == [vector(t, 8) for t in texts]


@pytest.mark.parametrize("model", KINDS)
async def test_explicit_base64_is_little_endian_float32(model: str) -> None:
    async with embedding_stack() as s:
        resp = await client(s.url).embeddings.create(
            model=model, input=["a", "b"], encoding_format="base64"
        )
        for item, text in zip(resp.data, ["a", "b"], strict=True):
            raw = base64.b64decode(item.embedding)  # type: ignore[arg-type]  # the SDK leaves it
            assert np.frombuffer(raw, "<f4").tolist() == vector(text, 32)


async def test_token_arrays_reach_openai_family_upstreams() -> None:
    async with embedding_stack() as s:
        resp = await client(s.url).embeddings.create(model="te", input=[[1, 2, 3], [4]])
        assert resp.data[0].embedding == vector("tokens:1,2,3", 32)
        assert resp.usage.prompt_tokens == 4
        with pytest.raises(openai.BadRequestError) as info:
            await client(s.url).embeddings.create(model="gem", input=[[1, 2, 3]])
        assert info.value.code == "unsupported_parameter"


async def test_fallback_after_a_failure_is_invisible_and_accounted() -> None:
    async with embedding_stack() as s:
        raw = await client(s.url).embeddings.with_raw_response.create(
            model="vectors", input=["one two three four five six seven eight"]
        )
        assert raw.headers["x-gateway-deployment"] == "te"
        resp = raw.parse()
        assert resp.data[0].embedding == vector("one two three four five six seven eight", 32)
        records = {r.model: r for r in s.log.records}
        assert records["down"].status == 500 and records["te"].outcome == "completed"
        tokens = resp.usage.prompt_tokens
        assert tokens == 10  # the sim's count: ceil(39 / 4)
        assert s.gateway.spend_by_deployment["te"] == pytest.approx(tokens * 0.5 / 1e6)
        metrics = s.gateway.metrics.render().decode()
        assert 'gateway_upstream_attempts_total{deployment="down",outcome="failed"} 1.0' in metrics
        assert 'gateway_race_wins_total{deployment="te"} 1.0' in metrics


async def test_weighted_route_serves_from_one_of_its_deployments() -> None:
    async with embedding_stack() as s:
        raw = await client(s.url).embeddings.with_raw_response.create(model="weighted", input="x")
        assert raw.headers["x-gateway-deployment"] in ("gem", "nomic")
        assert raw.parse().data[0].embedding == vector("x", 32)


async def test_gemini_batches_of_100_are_rejoined_in_order() -> None:
    texts = [f"text {i}" for i in range(150)]
    async with embedding_stack() as s:
        resp = await client(s.url).embeddings.create(model="gem", input=texts)
        assert [d.embedding for d in resp.data] == [vector(t, 32) for t in texts]
        assert len(s.records("gem")) == 2


async def test_every_candidate_failing_is_the_upstream_error() -> None:
    async with embedding_stack() as s:
        with pytest.raises(openai.InternalServerError):
            await client(s.url).embeddings.create(model="down", input="x")


async def test_bad_requests_are_400s_in_the_openai_envelope() -> None:
    async with embedding_stack() as s:
        sdk = client(s.url)
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.embeddings.create(model="te", input="")
        assert info.value.param == "input"
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.embeddings.create(model="te", input=["ok", ""])
        assert info.value.param == "input[1]"
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.embeddings.create(model="m1", input="x")
        assert info.value.code == "model_not_supported"
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(
                model="vectors", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.code == "model_not_supported"
        with pytest.raises(openai.NotFoundError):
            await sdk.embeddings.create(model="nope", input="x")


async def test_pii_policy_redacts_and_blocks_embedding_input() -> None:
    governance = {"pii": {"email": "redact", "card": "block"}}
    async with embedding_stack(governance=governance) as s:
        sdk = client(s.url)
        await sdk.embeddings.create(model="te", input=["mail jane.doe@example.com please"])
        (record,) = s.records("te")
        assert record.last_user_text == "mail <EMAIL_1> please"
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.embeddings.create(model="te", input=["card 4111 1111 1111 1111"])
        assert info.value.code == "pii_detected"
        assert len(s.records("te")) == 1, "a blocked request never leaves the gateway"


async def test_models_list_the_type_of_each_route() -> None:
    async with embedding_stack() as s:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{s.url}/v1/models") as resp:
                listed = {m["id"]: m["type"] for m in (await resp.json())["data"]}
            async with http.get(f"{s.url}/v1/models/vectors") as resp:
                assert (await resp.json())["type"] == "embedding"
        assert listed["vectors"] == listed["te"] == listed["weighted"] == "embedding"
        assert listed["m1"] == "chat"
        models = await client(s.url).models.list()
        assert {m.id for m in models.data} >= {"vectors", "weighted", "te", "m1"}


async def test_failures_trip_the_breaker_like_chat() -> None:
    async with embedding_stack(health={"window": 4, "min_requests": 2}) as s:
        sdk = client(s.url)
        for _ in range(4):
            await sdk.embeddings.create(model="vectors", input="x")
        down = s.records("down")
        assert 2 <= len(down) < 4, "the open breaker keeps the failing deployment out"
        assert len(s.records("te")) == 4
