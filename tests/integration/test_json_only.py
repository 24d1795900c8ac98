"""415 for a POST under /v1/ whose Content-Type is not application/json: a page on another
site can send a `text/plain` or form body without a preflight; it must never start a race."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.stack import FAST, stack

SERVERS = {"a": {"kind": "openai", "models": {"m": {**FAST, "text": "Hello"}}}}
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
CHAT = "/v1/chat/completions"


async def post(url: str, content_type: str | None, data: bytes = BODY, **headers: str) -> Any:
    if content_type is not None:
        headers["content-type"] = content_type
    skip = () if content_type is not None else ("Content-Type",)
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=data, headers=headers, skip_auto_headers=skip) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/jsonx",
        "application/merge-patch+json",
        "json",
    ],
)
async def test_non_json_post_is_refused_before_anything_runs(content_type: str | None) -> None:
    async with stack(SERVERS) as s:
        status, body = await post(s.url + CHAT, content_type)
    assert status == 415
    assert body["error"]["code"] == "unsupported_media_type"
    assert body["error"]["type"] == "invalid_request_error"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "application/json" in body["error"]["message"]
    assert s.log.records == [], "a refused request never reaches an upstream"
    metrics = s.gateway.metrics.render().decode()
    assert 'rejected_requests_total{door="chat",reason="unsupported_media_type"} 1.0' in metrics


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_json_with_parameters_is_served(content_type: str) -> None:
    async with stack(SERVERS) as s:
        status, body = await post(s.url + CHAT, content_type)
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "Hello"


@pytest.mark.parametrize(
    "path", [CHAT, "/v1/feedback", "/v1/responses", "/v1/messages", "/v1/embeddings"]
)
async def test_every_post_under_v1_is_covered(path: str) -> None:
    async with stack(SERVERS) as s:
        status, body = await post(s.url + path, "text/plain")
    assert status == 415
    if path == "/v1/messages":  # the Messages door speaks Anthropic's error shape
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        assert "application/json" in body["error"]["message"]
    else:
        assert body["error"]["code"] == "unsupported_media_type"


async def test_refused_before_the_body_is_read_or_the_key_checked() -> None:
    async with stack(SERVERS, auth={"keys": ["k1"]}, limits={"max_body_bytes": 100}) as s:
        status, body = await post(s.url + CHAT, "text/plain", b"x" * 5000)
        assert status == 415, body  # not 413: the body was never read
        status, body = await post(s.url + CHAT, "text/plain", authorization="Bearer nope")
        assert status == 415, body
        status, body = await post(s.url + CHAT, "application/json", authorization="Bearer k1")
        assert status == 200, body


async def test_other_methods_and_paths_need_no_content_type() -> None:
    async with stack(SERVERS) as s, aiohttp.ClientSession() as http:
        async with http.get(s.url + "/v1/models") as resp:
            assert resp.status == 200
        async with http.post(
            s.url + "/healthz", data=b"x", headers={"content-type": "text/plain"}
        ) as resp:
            assert resp.status == 405  # outside /v1/: the router's answer, not a 415
