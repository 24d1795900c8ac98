"""Stored responses across gateway instances: with `state.backend: redis`, a turn stored
through one gateway continues through another (previous_response_id), and a delete on one
is seen by the other. Needs Redis at $REDIS_URL; skipped when it does not answer."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI

from tests.redis_support import REDIS_URL, redis_with_prefix
from tests.stack import FAST, stack

SERVERS = {"oa": {"kind": "openai", "models": {"m": {**FAST, "echo": True}}}}


def client(url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)


async def test_a_conversation_moves_between_instances() -> None:
    async with redis_with_prefix("resp-gw") as (redis, prefix):
        state = {"backend": "redis", "url": REDIS_URL, "prefix": prefix}
        responses = {"store_ttl_s": 120}
        async with (
            stack(SERVERS, state=state, responses=responses) as a,
            stack(SERVERS, state=state, responses=responses) as b,
        ):
            first = await client(a.url).responses.create(
                model="m", input="first", instructions="be brief", store=True
            )
            second = await client(b.url).responses.create(
                model="m", input="second", previous_response_id=first.id, store=True
            )
            assert second.output_text == "second"
            assert second.usage is not None and first.usage is not None
            assert second.usage.input_tokens > first.usage.input_tokens  # history came along
            fetched = await client(a.url).responses.retrieve(second.id)
            assert fetched.previous_response_id == first.id
            ttl_ms = await redis.pttl(f"{prefix}:resp:{first.id}")
            assert 0 < ttl_ms <= 120_000
            await client(b.url).responses.delete(first.id)
            with pytest.raises(openai.NotFoundError):
                await client(a.url).responses.retrieve(first.id)


async def test_store_outage_is_a_503_for_the_next_turn() -> None:
    state = {"backend": "redis", "url": "redis://127.0.0.1:1/0", "prefix": "rg"}
    async with stack(SERVERS, state=state) as s:
        oa = client(s.url)
        answered = await oa.responses.create(model="m", input="hi", store=True)
        assert answered.output_text == "hi"  # the answer is not lost to the store
        with pytest.raises(openai.InternalServerError) as info:
            await oa.responses.create(model="m", input="x", previous_response_id=answered.id)
        assert info.value.status_code == 503
        assert info.value.body["code"] == "store_unavailable"  # type: ignore[index]
