"""Simulated providers over real sockets: exact framing, official SDKs, faults, the log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest

from gateway.sim.config import SimConfig, parse_sim_config
from gateway.sim.log import SimRecord
from gateway.sim.server import SimCluster

FAST = {"ttft_ms": 5, "itl_ms": 0, "tokens": 4}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
OPENAI_HEADERS = {"authorization": "Bearer x"}
ANTHROPIC_HEADERS = {"x-api-key": "x", "anthropic-version": "2023-06-01"}
GEMINI_HEADERS = {"x-goog-api-key": "x"}


def make_config(servers: dict[str, Any], seed: int = 7) -> SimConfig:
    config, problems = parse_sim_config({"seed": seed, "servers": servers})
    assert config is not None, problems
    return config


def cluster_config() -> SimConfig:
    return make_config(
        {
            "oa": {
                "kind": "openai",
                "handshake_ms": 5,
                "models": {
                    "fast": FAST,
                    "thinker": {**FAST, "reasoning_tokens": 2, "keepalive_ms": 1, "ttft_ms": 20},
                    "limited": {**FAST, "error_rate_429": 1.0, "retry_after_s": 3},
                    "broken": {**FAST, "midstream_error_rate": 1.0},
                    "cutter": {**FAST, "cut_rate": 1.0, "tokens": 6},
                    "slow": {**FAST, "ttft_ms": 30000},
                    "slow_held": {**FAST, "ttft_ms": 30000, "headers_at_first_token": True},
                    "staller": {**FAST, "stall_rate": 1.0, "stall_ms": 1},
                    "fixed": {**FAST, "text": "Hello there, world!", "model_version": "fixed-2025"},
                    "episode": {
                        **FAST,
                        "degraded": {"enter_rate": 1, "exit_rate": 0, "error_rate_429": 1},
                    },
                },
            },
            "an": {
                "kind": "anthropic",
                "models": {
                    "claude": {**FAST, "reasoning_tokens": 2},
                    "busy": {**FAST, "error_rate_529": 1.0},
                    "cutter": {**FAST, "cut_rate": 1.0},
                },
            },
            "ge": {
                "kind": "gemini",
                "models": {"flash": FAST, "limited": {**FAST, "error_rate_429": 1.0}},
            },
            "ol": {
                "kind": "ollama",
                "models": {"llama": FAST, "busy": {**FAST, "error_rate_503": 1}},
            },
        }
    )


@pytest.fixture
async def sim() -> AsyncIterator[SimCluster]:
    async with SimCluster(cluster_config()) as cluster:
        yield cluster


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def openai_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]
) -> tuple[int, Mapping[str, str], bytes]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(url, data=data, headers=headers) as resp:
        return resp.status, resp.headers.copy(), await resp.read()


def sse_payloads(raw: bytes) -> list[str]:
    assert raw.endswith(b"\n\n")
    return [event.removeprefix("data: ") for event in raw.decode().split("\n\n")[:-1]]


def only(records: list[SimRecord], **match: Any) -> SimRecord:
    found = [r for r in records if all(getattr(r, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, records)
    return found[0]


# --- exact framing over a real socket --------------------------------------------


async def test_openai_stream_framing(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    body = openai_body("fast", stream=True, stream_options={"include_usage": True})
    status, headers, raw = await post(http, url, body, OPENAI_HEADERS)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert raw.endswith(b"data: [DONE]\n\n")
    events = raw.decode().split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)  # no event:/id:/comments
    chunks = [json.loads(p) for p in sse_payloads(raw)[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert {c["created"] for c in chunks} == {chunks[0]["created"]}
    text = [c["choices"][0]["delta"]["content"] for c in chunks[1:5]]
    assert len(text) == 4 and all(text)
    finish, usage = chunks[5], chunks[6]
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(c["usage"] is None for c in chunks[:-1])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 4
    assert len(chunks) == 7


async def test_openai_keepalive_and_reasoning(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    _, _, raw = await post(http, url, openai_body("thinker", stream=True), OPENAI_HEADERS)
    events = raw.decode().split("\n\n")[:-1]
    assert events[0].startswith("data: ")  # the role chunk goes out at once
    assert events[1] == ": keep-alive"  # then comments while waiting for the first token
    first = json.loads(events[0].removeprefix("data: "))["choices"][0]["delta"]
    assert first == {"role": "assistant", "content": None, "reasoning_content": ""}
    data = [json.loads(e.removeprefix("data: ")) for e in events if e.startswith("data: {")]
    deltas = [d["choices"][0]["delta"] for d in data[1:] if d["choices"]]
    assert [bool(d.get("reasoning_content")) for d in deltas[:3]] == [True, True, False]
    assert "usage" not in data[0]  # include_usage not requested


async def test_anthropic_event_order(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("an") + "/v1/messages"
    body = {
        "model": "claude",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    status, headers, raw = await post(http, url, body, ANTHROPIC_HEADERS)
    assert status == 200 and headers["request-id"].startswith("req_")
    names = []
    for event in raw.decode().split("\n\n")[:-1]:
        event_line, data_line = event.split("\n")
        name = event_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
        names.append(name)
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",  # signature_delta
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


async def test_gemini_sse_framing(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("ge") + "/v1beta/models/flash:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, _, raw = await post(http, url, body, GEMINI_HEADERS)
    assert status == 200
    assert raw.endswith(b"\r\n\r\n") and b"[DONE]" not in raw
    events = raw.split(b"\r\n\r\n")[:-1]
    assert all(e.startswith(b"data: {") and b"\n" not in e for e in events)
    chunks = [json.loads(e[6:]) for e in events]
    assert all("usageMetadata" in c for c in chunks)
    assert [c["usageMetadata"]["candidatesTokenCount"] for c in chunks] == [1, 2, 3, 4, 4]
    assert "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_gemini_non_stream_and_json_array(
    sim: SimCluster, http: aiohttp.ClientSession
) -> None:
    base = sim.base_url("ge") + "/v1beta/models/flash"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, _, raw = await post(http, base + ":generateContent", body, GEMINI_HEADERS)
    assert status == 200
    candidate = json.loads(raw)["candidates"][0]
    assert candidate["finishReason"] == "STOP" and candidate["content"]["parts"][0]["text"]
    _, _, raw = await post(http, base + ":streamGenerateContent", body, GEMINI_HEADERS)
    assert len(json.loads(raw)) == 5  # one JSON array of chunks without alt=sse


async def test_ollama_ndjson(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("ol") + "/api/chat"
    body = {"model": "llama", "messages": [{"role": "user", "content": "hi"}]}
    status, headers, raw = await post(http, url, body, {})
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in raw.decode().split("\n")[:-1]]
    assert [line["done"] for line in lines] == [False] * 4 + [True]
    last = lines[-1]
    assert last["done_reason"] == "stop" and last["eval_count"] == 4
    assert last["message"] == {"role": "assistant", "content": ""}
    _, _, raw = await post(http, url, {**body, "stream": False, "options": {"num_predict": 2}}, {})
    whole = json.loads(raw)
    assert whole["done"] is True and whole["done_reason"] == "length" and whole["eval_count"] == 2


# --- official SDKs -------------------------------------------------------------------


async def test_openai_sdk_stream_and_non_stream(sim: SimCluster) -> None:
    client = openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key="x", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model="fixed",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, usage = "", None, None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
        assert text == "Hello there, world!" and finish == "stop"
        assert usage is not None and usage.completion_tokens == 3
        done = await client.chat.completions.create(
            model="fixed", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert done.choices[0].message.content == "Hello there,"
        assert done.choices[0].finish_reason == "length"
        assert done.model == "fixed-2025"


async def test_openai_sdk_stream_helper_tool_call(sim: SimCluster) -> None:
    client = openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key="x", max_retries=0)
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": WEATHER_TOOL["input_schema"]},
        }
    ]
    async with (
        client,
        client.chat.completions.stream(
            model="fast",
            messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
            tools=tools,
        ) as stream,
    ):
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}


async def test_anthropic_sdk_stream_accumulates(sim: SimCluster) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url("an"), api_key="x", max_retries=0)
    async with (
        client,
        client.messages.stream(
            model="claude", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        text = "".join([t async for t in stream.text_stream])
        message = await stream.get_final_message()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[1].type == "text" and message.content[1].text == text
    assert len(text.split()) == 4
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 6


async def test_anthropic_sdk_tool_call(sim: SimCluster) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url("an"), api_key="x", max_retries=0)
    async with (
        client,
        client.messages.stream(
            model="claude",
            max_tokens=100,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Oslo?"}],
        ) as stream,
    ):
        message = await stream.get_final_message()
    tool = message.content[-1]
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == {"city": "Oslo"} and tool.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    async with anthropic.AsyncAnthropic(
        base_url=sim.base_url("an"), api_key="x", max_retries=0
    ) as client:
        whole = await client.messages.create(
            model="claude", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
    assert whole.content[-1].type == "text" and whole.stop_reason == "end_turn"


# --- errors ---------------------------------------------------------------------------


async def test_openai_sdk_rate_limit(sim: SimCluster) -> None:
    client = openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key="x", max_retries=0)
    async with client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="limited", messages=[{"role": "user", "content": "hi"}]
            )
        assert info.value.code == "rate_limit_exceeded"
        assert info.value.response.headers["retry-after"] == "3"
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "hi"}]
            )
    assert [r.outcome for r in sim.log.records] == ["error_429", "error_404"]


async def test_openai_sdk_midstream_error(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    client = openai.AsyncOpenAI(base_url=sim.base_url("oa"), api_key="x", max_retries=0)
    async with client:
        stream = await client.chat.completions.create(
            model="broken", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="server had an error"):
            async for _ in stream:
                pass
    url = sim.base_url("oa") + "/chat/completions"
    _, _, raw = await post(http, url, openai_body("broken", stream=True), OPENAI_HEADERS)
    payloads = sse_payloads(raw)
    assert json.loads(payloads[-2])["error"]["type"] == "server_error"
    assert payloads[-1] == "[DONE]"
    assert {r.outcome for r in sim.log.records} == {"midstream_error"}


async def test_anthropic_sdk_overloaded(sim: SimCluster) -> None:
    client = anthropic.AsyncAnthropic(base_url=sim.base_url("an"), api_key="x", max_retries=0)
    async with client:
        with pytest.raises(anthropic.InternalServerError) as info:
            await client.messages.create(
                model="busy", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert info.value.status_code == 529
    assert isinstance(info.value, anthropic.OverloadedError)
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": info.value.response.headers["request-id"],
    }


async def test_provider_error_shapes(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    an = sim.base_url("an") + "/v1/messages"
    msgs = [{"role": "user", "content": "hi"}]
    status, _, raw = await post(http, an, {"model": "claude", "messages": msgs}, ANTHROPIC_HEADERS)
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, raw = await post(
        http, an, {"model": "claude", "max_tokens": 5, "messages": msgs}, {}
    )
    assert status == 401 and json.loads(raw)["error"]["type"] == "authentication_error"
    status, _, raw = await post(
        http, an, {"model": "x", "max_tokens": 5, "messages": msgs}, ANTHROPIC_HEADERS
    )
    assert status == 404 and json.loads(raw)["error"]["type"] == "not_found_error"

    oa = sim.base_url("oa") + "/chat/completions"
    status, _, raw = await post(http, oa, b"{not json", OPENAI_HEADERS)
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, _, raw = await post(http, oa, openai_body("fast"), {})
    assert status == 401 and json.loads(raw)["error"]["code"] is None

    ge = sim.base_url("ge") + "/v1beta/models/limited:generateContent"
    gbody = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    status, _, raw = await post(http, ge, gbody, GEMINI_HEADERS)
    error = json.loads(raw)["error"]
    assert status == 429 and error["status"] == "RESOURCE_EXHAUSTED" and error["code"] == 429
    retry = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    status, _, raw = await post(http, ge, gbody, {})
    assert status == 403 and json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"
    status, _, raw = await post(
        http, sim.base_url("ge") + "/v1beta/models/x:generateContent", gbody, GEMINI_HEADERS
    )
    assert status == 404 and json.loads(raw)["error"]["status"] == "NOT_FOUND"

    ol = sim.base_url("ol") + "/api/chat"
    status, _, raw = await post(http, ol, {"model": "busy", "messages": msgs}, {})
    assert status == 503 and isinstance(json.loads(raw)["error"], str)
    status, _, raw = await post(http, ol, {"model": "nope", "messages": msgs}, {})
    assert status == 404 and json.loads(raw) == {
        "error": 'model "nope" not found, try pulling it first'
    }


# --- faults, disconnects, connections, the log ----------------------------------------


async def test_client_disconnect_during_ttft_wait(sim: SimCluster) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            url, json=openai_body("slow", stream=True), headers=OPENAI_HEADERS
        )
        assert resp.status == 200  # headers go out at once; the first token is 30 s away
        first = await resp.content.readuntil(b"\n\n")
        assert first.startswith(b"data: ")
        resp.close()  # drop the connection while the server waits for the first token
    records = await sim.log.wait_for(
        lambda recs: any(r.outcome == "client_disconnect" for r in recs), timeout=10
    )
    record = only(records, model="slow")
    assert record.outcome == "client_disconnect"
    assert record.first_token is None and record.tokens_sent == 0
    assert record.disconnect is not None and record.end is not None
    assert record.planned_ttft_ms == 30000


async def test_connection_reuse_pays_handshake_once(sim: SimCluster) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(url, json=openai_body("fast"), headers=OPENAI_HEADERS) as resp:
                assert resp.status == 200
                await resp.read()
    first, second = sim.log.records
    assert first.connection_id == second.connection_id
    assert (first.new_connection, second.new_connection) == (True, False)
    assert (first.handshake_ms, second.handshake_ms) == (5.0, 0.0)
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=openai_body("fast"), headers=OPENAI_HEADERS) as resp:
            await resp.read()
    third = sim.log.records[2]
    assert third.new_connection and third.connection_id != first.connection_id


async def raw_chat(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> bytes:
    """One non-streamed chat request on a raw connection, read to the server's close."""
    body = orjson.dumps(openai_body("fast"))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
        b"Authorization: Bearer x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (port, len(body), body)
    )
    answer = await reader.read()
    writer.close()
    return answer


async def test_the_handshake_runs_from_the_accept(sim: SimCluster) -> None:
    """A connection opened ahead of its first request (a client replacing one in the
    background) has paid the modelled handshake by then, as a TLS handshake would have;
    one whose request comes at once waits for what is left of it."""
    port = sim.servers["oa"].port
    ahead = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.sleep(0.02)  # the handshake (5 ms) runs out meanwhile
    assert (await raw_chat(*ahead, port)).startswith(b"HTTP/1.1 200")
    at_once = await asyncio.open_connection("127.0.0.1", port)
    assert (await raw_chat(*at_once, port)).startswith(b"HTTP/1.1 200")
    first, second = sim.log.records
    assert first.new_connection and second.new_connection
    assert (first.handshake_ms, second.handshake_ms) == (5.0, 5.0)
    assert first.handshake_wait_ms == 0.0
    assert 0.0 < second.handshake_wait_ms <= 5.0


async def test_cut_ends_without_terminator(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(
            url, json=openai_body("cutter", stream=True), headers=OPENAI_HEADERS
        ) as resp:
            assert resp.status == 200
            async for data in resp.content.iter_any():
                received += data
    assert b"[DONE]" not in received and b'finish_reason":"stop' not in received
    record = (await sim.log.wait_for(lambda recs: recs[-1].end is not None))[-1]
    assert record.outcome == "cut" and 1 <= record.tokens_sent < 6

    client = anthropic.AsyncAnthropic(base_url=sim.base_url("an"), api_key="x", max_retries=0)
    async with client:
        # the SDK does not wrap transport errors raised while iterating a stream
        with pytest.raises(Exception, match="incomplete chunked read"):
            async with client.messages.stream(
                model="cutter", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                await stream.get_final_message()


async def test_degraded_state_errors(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    for _ in range(2):
        status, headers, _ = await post(http, url, openai_body("episode"), OPENAI_HEADERS)
        assert status == 429 and headers["retry-after"] == "1"
    assert [(r.degraded, r.outcome) for r in sim.log.records] == [(True, "error_429")] * 2


async def test_stall_is_logged(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    status, _, raw = await post(http, url, openai_body("staller", stream=True), OPENAI_HEADERS)
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
    assert sim.log.records[0].stalled and sim.log.records[0].outcome == "completed"


async def test_log_and_reset_endpoints(sim: SimCluster, http: aiohttp.ClientSession) -> None:
    url = sim.base_url("oa") + "/chat/completions"
    await post(http, url, openai_body("fast", stream=True), OPENAI_HEADERS)
    root = sim.base_url("ol")  # any server shows the shared log
    async with http.get(root + "/_sim/log") as resp:
        records = await resp.json()
    assert len(records) == 1
    rec = records[0]
    assert rec["outcome"] == "completed" and rec["server"] == "oa" and rec["tokens_sent"] == 4
    assert rec["arrival"] <= rec["headers_sent"] <= rec["first_token"] <= rec["end"]
    assert rec["planned_ttft_ms"] == 5 and rec["request_n"] == 0
    async with http.post(root + "/_sim/reset") as resp:
        assert resp.status == 200
    assert sim.log.records == []
    await post(http, url, openai_body("fast"), OPENAI_HEADERS)
    assert sim.log.records[0].request_n == 0  # the draws start over


async def test_same_seed_same_draws() -> None:
    servers = {
        "o": {
            "kind": "openai",
            "models": {"m": {"ttft_p50_ms": 2, "ttft_p95_ms": 6, "itl_ms": 0, "tokens": 2}},
        }
    }
    seen = []
    for _ in range(2):
        async with (
            SimCluster(make_config(servers, seed=3)) as cluster,
            aiohttp.ClientSession() as session,
        ):
            texts = []
            for _ in range(3):
                async with session.post(
                    cluster.base_url("o") + "/chat/completions",
                    json=openai_body("m"),
                    headers=OPENAI_HEADERS,
                ) as resp:
                    texts.append((await resp.json())["choices"][0]["message"]["content"])
            seen.append(([r.planned_ttft_ms for r in cluster.log.records], texts))
    assert seen[0] == seen[1]
    assert len(set(seen[0][0])) == 3


async def test_ttft_follows_the_clock_hour_and_the_region() -> None:
    """`hourly_multipliers` read the cluster's (injectable) clock; `region_multipliers` the
    cluster's current region, a request's x-sim-region header, or POST /_sim/region."""
    hourly = [1.0] * 24
    hourly[9] = 3.0
    servers = {
        "o": {
            "kind": "openai",
            "models": {
                "m": {**FAST, "hourly_multipliers": hourly, "region_multipliers": {"apac": 2}},
                "plain": FAST,
            },
        }
    }
    now = [8 * 3600.0 + 1800]  # 08:30 UTC, 1970-01-01
    async with (
        SimCluster(make_config(servers), clock=lambda: now[0]) as cluster,
        aiohttp.ClientSession() as session,
    ):
        url = cluster.base_url("o") + "/chat/completions"

        async def planned(model: str = "m", headers: Mapping[str, str] | None = None) -> float:
            async with session.post(
                url, json=openai_body(model), headers={**OPENAI_HEADERS, **(headers or {})}
            ) as resp:
                assert resp.status == 200
                await resp.read()
            record = cluster.log.records[-1]
            assert record.planned_ttft_ms is not None
            return record.planned_ttft_ms

        assert await planned() == 5
        assert cluster.log.records[-1].hour == 8 and cluster.log.records[-1].region is None
        now[0] += 3600  # 09:30: peak
        assert await planned() == 15
        assert await planned("plain") == 5  # no tables: untouched, no hour/region recorded
        assert cluster.log.records[-1].hour is None
        cluster.region = "apac"
        assert await planned() == 30
        record = cluster.log.records[-1]
        assert (record.hour, record.region, record.ttft_multiplier) == (9, "apac", 6.0)
        assert await planned(headers={"x-sim-region": "eu"}) == 15  # the header wins
        async with session.post(
            cluster.base_url("o").removesuffix("/v1") + "/_sim/region", json={"region": None}
        ) as resp:
            assert resp.status == 200
        assert cluster.region is None and await planned() == 15
        cluster.configure("o", "m", hourly_multipliers=None)
        assert await planned() == 5


async def test_token_write_times_are_logged_only_when_asked(http: aiohttp.ClientSession) -> None:
    servers = {"oa": {"kind": "openai", "models": {"fast": {**FAST, "itl_ms": 2}}}}
    for asked in (False, True):
        config, problems = parse_sim_config(
            {"seed": 7, "log_token_times": asked, "servers": servers}
        )
        assert config is not None, problems
        cluster = SimCluster(config)
        await cluster.start()
        try:
            url = cluster.base_url("oa") + "/chat/completions"
            status, _, _ = await post(http, url, openai_body("fast", stream=True), OPENAI_HEADERS)
            assert status == 200
            record = only(cluster.log.records, model="fast")
        finally:
            await cluster.stop()
        if not asked:
            assert record.token_times is None
            continue
        times = record.token_times
        assert times is not None and len(times) == record.tokens_sent == 4
        assert times == sorted(times) and times[0] == record.first_token
        assert record.end is not None and times[-1] <= record.end


async def test_headers_at_first_token_holds_the_response_until_its_first_token(
    sim: SimCluster, http: aiohttp.ClientSession
) -> None:
    """`headers_at_first_token`: nothing, not even the headers, before the first token
    (a server that writes nothing while its model loads); without it, headers at once."""
    url = sim.base_url("oa") + "/chat/completions"

    async def ask(model: str) -> None:
        await post(http, url, openai_body(model, stream=True), OPENAI_HEADERS)

    for model, headers_at_once in (("slow", True), ("slow_held", False)):
        asking = asyncio.create_task(ask(model))
        try:
            if headers_at_once:
                await sim.log.wait_for(
                    lambda rs, m=model: any(r.model == m and r.headers_sent for r in rs)
                )
            else:  # its 30 s TTFT is far off: the sim is still holding everything
                await sim.log.wait_for(lambda rs, m=model: any(r.model == m for r in rs))
                record = next(r for r in sim.log.records if r.model == model)
                assert record.headers_sent is None and record.status is None
        finally:
            asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asking
