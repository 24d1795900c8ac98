"""The Messages door over real sockets: every error on its paths in Anthropic's shape and
status (auth, bad input, unknown model or path, oversize, rate limit, overload, mid-stream
failure), x-api-key auth, count_tokens, and Anthropic's models list."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropic
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

from tests.gateways import inside_one_minute
from tests.stack import FAST, stack

ONE = {"a": {"kind": "anthropic", "models": {"m": FAST}}}
VERSION = {"anthropic-version": "2023-06-01"}
BODY = {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
ERROR = TypeAdapter(ErrorResponse)


async def post(
    url: str, body: Any, headers: dict[str, str] | None = None, path: str = "/v1/messages"
) -> tuple[int, dict[str, str], Any]:
    async with aiohttp.ClientSession() as http:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        headers = {"content-type": "application/json", **(headers or {})}
        async with http.post(url + path, headers=headers, **kwargs) as resp:
            headers = {k.lower(): v for k, v in resp.headers.items()}
            return resp.status, headers, await resp.json(content_type=None)


def anthropic_error(body: Any, type_: str) -> str:
    """Assert Anthropic's error shape (the SDK's own model) and the type; the message."""
    ERROR.validate_python(body)
    assert set(body) == {"type", "error"} and body["type"] == "error"
    assert body["error"]["type"] == type_
    message: str = body["error"]["message"]
    return message


async def test_x_api_key_or_bearer_and_401_in_anthropic_shape() -> None:
    async with stack(ONE, auth={"keys": ["k-one"]}) as s:
        status, _, body = await post(s.url, BODY, VERSION)
        assert status == 401
        assert "x-api-key" in anthropic_error(body, "authentication_error")
        status, _, body = await post(s.url, BODY, {**VERSION, "x-api-key": "wrong"})
        assert status == 401
        status, _, body = await post(s.url, BODY, {**VERSION, "x-api-key": "k-one"})
        assert status == 200 and body["type"] == "message"
        status, _, body = await post(s.url, BODY, {**VERSION, "authorization": "Bearer k-one"})
        assert status == 200
        # the OpenAI door keeps its envelope, and takes x-api-key too
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        status, _, body = await post(s.url, chat, path="/v1/chat/completions")
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
        status, _, body = await post(s.url, chat, {"x-api-key": "k-one"}, "/v1/chat/completions")
        assert status == 200 and body["object"] == "chat.completion"
        async with AsyncAnthropic(base_url=s.url, api_key="bad", max_retries=0) as client:
            with pytest.raises(anthropic.AuthenticationError):
                await client.messages.create(**BODY)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "headers", "status", "type_"),
    [
        (BODY, {}, 400, "invalid_request_error"),  # no anthropic-version
        ({**BODY, "max_tokens": None}, VERSION, 400, "invalid_request_error"),
        ({**BODY, "messages": "hi"}, VERSION, 400, "invalid_request_error"),
        (
            {**BODY, "messages": [{"role": "user", "content": [{"type": "document"}]}]},
            VERSION,
            400,
            "invalid_request_error",
        ),
        ({**BODY, "tools": [{"type": "web_search_20250305", "name": "w"}]}, VERSION, 400, None),
        (b"{not json", VERSION, 400, "invalid_request_error"),
        ({**BODY, "model": "nope"}, VERSION, 404, "not_found_error"),
    ],
)
async def test_bad_input_in_anthropic_shape(
    body: Any, headers: dict[str, str], status: int, type_: str | None
) -> None:
    async with stack(ONE) as s:
        got, _, answer = await post(s.url, body, headers)
        assert got == status
        anthropic_error(answer, type_ or "invalid_request_error")
        assert s.log.records == [], "a refused request never reaches an upstream"


async def test_a_body_that_is_not_json_is_415_in_anthropic_shape() -> None:
    async with stack(ONE) as s:
        status, _, body = await post(s.url, b"hi", {**VERSION, "content-type": "text/plain"})
        assert status == 415
        assert "application/json" in anthropic_error(body, "invalid_request_error")


async def test_oversize_unknown_path_and_method_in_anthropic_shape() -> None:
    async with stack(ONE, limits={"max_body_bytes": 1000}) as s:
        big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
        status, _, body = await post(s.url, big, VERSION)
        assert status == 413
        anthropic_error(body, "invalid_request_error")
        status, _, body = await post(s.url, BODY, VERSION, "/v1/messages/nope")
        assert status == 404
        anthropic_error(body, "not_found_error")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{s.url}/v1/messages") as resp:
                assert resp.status == 405
                anthropic_error(await resp.json(), "invalid_request_error")
            async with http.get(f"{s.url}/v1/nothing") as resp:  # elsewhere: OpenAI's envelope
                assert resp.status == 404 and "error" in await resp.json()
        async with AsyncAnthropic(base_url=s.url, api_key="x", max_retries=0) as client:
            with pytest.raises(anthropic.RequestTooLargeError):
                await client.messages.create(**big)  # type: ignore[arg-type]


async def test_rate_limit_is_429_rate_limit_error() -> None:
    async with stack(ONE, auth={"keys": ["k1"]}, routing={"key_rpm": 1}) as s:
        await inside_one_minute(5)  # the counts below are of one window
        headers = {**VERSION, "x-api-key": "k1"}
        assert (await post(s.url, BODY, headers))[0] == 200
        status, got_headers, body = await post(s.url, BODY, headers)
        assert status == 429 and "retry-after" in got_headers
        anthropic_error(body, "rate_limit_error")


async def test_overload_before_the_first_token_is_529() -> None:
    busy = {"a": {"kind": "anthropic", "models": {"m": {**FAST, "error_rate_529": 1.0}}}}
    async with stack(busy) as s:
        async with AsyncAnthropic(base_url=s.url, api_key="x", max_retries=0) as client:
            with pytest.raises(anthropic.OverloadedError) as info:
                await client.messages.create(**BODY)  # type: ignore[arg-type]
            assert info.value.status_code == 529
            anthropic_error(info.value.body, "overloaded_error")
            with pytest.raises(anthropic.OverloadedError):  # streaming too: before the headers
                async with client.messages.stream(**BODY) as stream:  # type: ignore[arg-type]
                    await stream.get_final_message()


async def test_failure_after_the_first_token_is_an_error_event() -> None:
    broken = {"o": {"kind": "openai", "models": {"m": {**FAST, "midstream_error_rate": 1.0}}}}
    async with stack(broken) as s:
        async with AsyncAnthropic(base_url=s.url, api_key="x", max_retries=0) as client:
            text: list[str] = []
            with pytest.raises(anthropic.APIStatusError) as info:
                async with client.messages.stream(**BODY) as stream:  # type: ignore[arg-type]
                    async for chunk in stream.text_stream:
                        text.append(chunk)
            assert text, "the error came after output"
            assert info.value.status_code == 200  # the stream had started: Anthropic's behaviour
            assert info.value.body["type"] == "error"  # type: ignore[index]


async def test_count_tokens_is_an_estimate() -> None:
    async with stack(ONE) as s:
        async with AsyncAnthropic(base_url=s.url, api_key="x", max_retries=0) as client:
            small = await client.messages.count_tokens(
                model="m", messages=[{"role": "user", "content": "hi"}]
            )
            large = await client.messages.count_tokens(
                model="m", messages=[{"role": "user", "content": "word " * 400}]
            )
            assert 0 < small.input_tokens < large.input_tokens
            with pytest.raises(anthropic.NotFoundError):
                await client.messages.count_tokens(
                    model="nope", messages=[{"role": "user", "content": "hi"}]
                )
            assert s.log.records == [], "counting never calls an upstream"


async def test_models_in_anthropic_shape_with_anthropic_version() -> None:
    servers = {"a": {"kind": "anthropic", "models": {"m1": FAST, "m2": FAST}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["m1", "m2"]}}
    async with stack(servers, routes) as s:
        async with AsyncAnthropic(base_url=s.url, api_key="x", max_retries=0) as client:
            ids = [model.id async for model in client.models.list(limit=2)]  # paginates
            assert ids == ["chat", "m1", "m2"]
            page = await client.models.list(limit=2)
            assert page.has_more and page.first_id == "chat" and page.last_id == "m1"
            model = await client.models.retrieve("m2")
            assert model.type == "model" and model.display_name == "m2"
            with pytest.raises(anthropic.NotFoundError) as info:
                await client.models.retrieve("nope")
            anthropic_error(info.value.body, "not_found_error")
            async with aiohttp.ClientSession() as http:  # without the header: OpenAI's list
                async with http.get(f"{s.url}/v1/models") as resp:
                    assert (await resp.json())["object"] == "list"
