"""The official openai SDK pointed at the gateway (base_url override)."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI

from tests.stack import FAST, stack

TEXT = {**FAST, "text": "The quick brown fox"}
SERVERS = {
    "oa": {
        "kind": "openai",
        "models": {
            "m1": TEXT,
            "cutter": {"ttft_ms": 5, "itl_ms": 1, "tokens": 20, "cut_rate": 1.0},
            "limited": {**FAST, "error_rate_429": 1.0, "retry_after_s": 2},
            "tooler": {**FAST, "tool_call": "always"},
        },
    }
}
MSG = [{"role": "user", "content": "hi"}]


def client(url: str, key: str = "unused") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


async def test_streaming_text_and_usage() -> None:
    async with stack(SERVERS) as s:
        stream = await client(s.url).chat.completions.create(
            model="m1", messages=MSG, stream=True, stream_options={"include_usage": True}
        )
        text, usage, finish = [], None, None
        async for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
                finish = choice.finish_reason or finish
        assert "".join(text) == "The quick brown fox"
        assert finish == "stop"
        assert usage is not None and usage.completion_tokens == 4
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_non_streaming() -> None:
    async with stack(SERVERS) as s:
        resp = await client(s.url).chat.completions.create(model="m1", messages=MSG)
        assert resp.choices[0].message.content == "The quick brown fox"
        assert resp.choices[0].finish_reason == "stop"
        assert resp.usage is not None and resp.usage.completion_tokens == 4


async def test_stream_helper_accumulates() -> None:
    async with stack(SERVERS) as s:
        async with client(s.url).chat.completions.stream(model="m1", messages=MSG) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
        assert final.choices[0].message.content == "The quick brown fox"
        assert final.choices[0].message.role == "assistant"


async def test_streamed_tool_call_accumulates() -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    async with stack(SERVERS) as s:
        async with client(s.url).chat.completions.stream(
            model="tooler",
            messages=MSG,
            tools=tools,  # type: ignore[arg-type]
        ) as stream:
            async for _ in stream:
                pass
            final = await stream.get_final_completion()
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert (
            choice.message.tool_calls
            and choice.message.tool_calls[0].function.name == "get_weather"
        )


async def test_mid_stream_cut_raises_in_sdk() -> None:
    async with stack(SERVERS) as s:
        stream = await client(s.url).chat.completions.create(
            model="cutter", messages=MSG, stream=True
        )
        with pytest.raises(openai.APIError) as info:
            async for _ in stream:
                pass
        assert not isinstance(info.value, openai.APIStatusError)


async def test_rate_limit_error_class_and_status() -> None:
    async with stack(SERVERS) as s:
        with pytest.raises(openai.RateLimitError) as info:
            await client(s.url).chat.completions.create(model="limited", messages=MSG, stream=True)
        assert info.value.status_code == 429
        assert info.value.response.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("kwargs", "exc", "status", "param"),
    [
        ({"model": "nope", "messages": MSG}, openai.NotFoundError, 404, "model"),
        ({"model": "m1", "messages": []}, openai.BadRequestError, 400, "messages"),
        ({"model": "m1", "messages": "hello"}, openai.BadRequestError, 400, "messages"),
        (
            {"model": "m1", "messages": MSG, "temperature": 5},
            openai.BadRequestError,
            400,
            "temperature",
        ),
        (
            {"model": "m1", "messages": MSG, "max_tokens": "many"},
            openai.BadRequestError,
            400,
            "max_tokens",
        ),
    ],
)
async def test_bad_input_raises_status_error(
    kwargs: dict[str, object], exc: type[openai.APIStatusError], status: int, param: str
) -> None:
    async with stack(SERVERS) as s:
        with pytest.raises(exc) as info:
            await client(s.url).chat.completions.create(**kwargs)  # type: ignore[call-overload]
        assert info.value.status_code == status
        assert isinstance(info.value.body, dict) and info.value.body["param"] == param
        assert param in info.value.message


async def test_oversized_body_and_auth() -> None:
    async with stack(SERVERS, limits={"max_body_bytes": 2000}, auth={"keys": ["secret-key"]}) as s:
        with pytest.raises(openai.AuthenticationError):
            await client(s.url, "wrong").chat.completions.create(model="m1", messages=MSG)
        with pytest.raises(openai.APIStatusError) as info:
            await client(s.url, "secret-key").chat.completions.create(
                model="m1", messages=[{"role": "user", "content": "x" * 5000}]
            )
        assert info.value.status_code == 413
        ok = await client(s.url, "secret-key").chat.completions.create(model="m1", messages=MSG)
        assert ok.choices[0].message.content


async def test_models_list_and_retrieve() -> None:
    async with stack(SERVERS, {"chat": {"deployments": ["m1"]}}) as s:
        models = [m.id async for m in client(s.url).models.list()]
        assert models[0] == "chat" and "m1" in models
        assert (await client(s.url).models.retrieve("chat")).id == "chat"
        with pytest.raises(openai.NotFoundError):
            await client(s.url).models.retrieve("nope")
