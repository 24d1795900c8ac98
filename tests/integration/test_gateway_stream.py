"""The gateway over real sockets against the OpenAI-compatible simulator."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from tests.stack import FAST, stack

ONE = {"oa": {"kind": "openai", "models": {"m1": {**FAST, "text": "Hello there world"}}}}
BODY = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


def sse_payloads(raw: bytes) -> list[bytes]:
    events = raw.split(b"\n\n")
    assert events[-1] == b"", "stream must end with a blank line"
    out = []
    for event in events[:-1]:
        assert event.startswith(b"data: "), event
        assert b"\n" not in event, "one data line per event"
        out.append(event[6:])
    return out


async def test_stream_framing_matches_openai() -> None:
    async with stack(ONE) as s, aiohttp.ClientSession() as http:
        body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
        async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["x-gateway-deployment"] == "m1"
            assert resp.headers["x-request-id"]
            raw = await resp.read()
    payloads = sse_payloads(raw)
    assert payloads[-1] == b"[DONE]"
    chunks = [orjson.loads(p) for p in payloads[:-1]]
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert {c["created"] for c in chunks} == {chunks[0]["created"]}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "m1" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    roles = [c for c in chunks if c["choices"] and "role" in c["choices"][0]["delta"]]
    assert len(roles) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hello there world"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    async with stack(ONE) as s, aiohttp.ClientSession() as http:
        async with http.post(f"{s.url}/v1/chat/completions", json={**BODY, "stream": True}) as resp:
            chunks = [orjson.loads(p) for p in sse_payloads(await resp.read())[:-1]]
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_non_stream_answer_is_assembled() -> None:
    async with stack(ONE) as s, aiohttp.ClientSession() as http:
        async with http.post(f"{s.url}/v1/chat/completions", json=BODY) as resp:
            assert resp.status == 200
            assert resp.headers["x-gateway-deployment"] == "m1"
            body = await resp.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello there world"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize(
    ("payload", "status", "param"),
    [
        (b"{not json", 400, "body"),
        (b"[1, 2]", 400, "body"),
        (orjson.dumps({"model": "m1"}), 400, "messages"),
        (orjson.dumps({"model": "m1", "messages": []}), 400, "messages"),
        (orjson.dumps({"model": "m1", "messages": "hi"}), 400, "messages"),
        (orjson.dumps({"messages": [{"role": "user", "content": "x"}]}), 400, "model"),
        (orjson.dumps({**BODY, "stream": "yes"}), 400, "stream"),
        (orjson.dumps({**BODY, "temperature": 9}), 400, "temperature"),
        (
            orjson.dumps({"model": "m1", "messages": [{"role": "robot", "content": "x"}]}),
            400,
            "messages[0].role",
        ),
        (orjson.dumps({**BODY, "model": "nope"}), 404, "model"),
    ],
)
async def test_bad_input_gets_envelope(payload: bytes, status: int, param: str) -> None:
    async with stack(ONE) as s, aiohttp.ClientSession() as http:
        async with http.post(
            f"{s.url}/v1/chat/completions",
            data=payload,
            headers={"content-type": "application/json"},
        ) as resp:
            assert resp.status == status
            body = await resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param
    if status == 404:
        assert body["error"]["code"] == "model_not_found"
    assert s.log.records == [], "a rejected request never reaches an upstream"


async def test_body_too_large_method_and_path() -> None:
    async with stack(ONE, limits={"max_body_bytes": 1000}) as s, aiohttp.ClientSession() as http:
        big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
        async with http.post(f"{s.url}/v1/chat/completions", json=big) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "request_too_large"
        async with http.get(f"{s.url}/v1/chat/completions") as resp:
            assert resp.status == 405
            assert "error" in await resp.json()
        async with http.get(f"{s.url}/v1/nothing") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_models_and_health() -> None:
    routes = {"chat": {"strategy": "fallback", "deployments": ["m1"]}}
    async with stack(ONE, routes) as s, aiohttp.ClientSession() as http:
        async with http.get(f"{s.url}/v1/models") as resp:
            body = await resp.json()
        assert body["object"] == "list"
        assert [m["id"] for m in body["data"]] == ["chat", "m1"]
        async with http.get(f"{s.url}/healthz") as resp:
            assert resp.status == 200


async def test_auth_keys_required_when_configured() -> None:
    async with stack(ONE, auth={"keys": ["k-one", "k-two"]}) as s, aiohttp.ClientSession() as http:
        url = f"{s.url}/v1/chat/completions"
        async with http.post(url, json=BODY) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_api_key"
        async with http.post(url, json=BODY, headers={"authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.post(url, json=BODY, headers={"authorization": "Bearer k-two"}) as resp:
            assert resp.status == 200
        async with http.get(f"{s.url}/healthz") as resp:
            assert resp.status == 200  # only /v1/* is protected
