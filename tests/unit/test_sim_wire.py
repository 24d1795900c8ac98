"""Pure wire rendering of the simulated providers, and the engine against a fake sink."""

from __future__ import annotations

import json
from typing import Any

from gateway.sim.config import SimModelConfig
from gateway.sim.engine import play_stream
from gateway.sim.log import SimLog
from gateway.sim.plan import Plan, plan_request, request_rng
from gateway.sim.wire import Reply, StreamRenderer, ToolCall, WireRequest
from gateway.sim.wire_anthropic import AnthropicWire
from gateway.sim.wire_gemini import GeminiWire
from gateway.sim.wire_ollama import OllamaWire
from gateway.sim.wire_openai import OpenAIWire

CALL = ToolCall(
    "abcdefghijklmnopqrstuvwx",
    "get_weather",
    {"city": "Oslo"},
    '{"city":"Oslo"}',
    ('{"city":', '"Oslo"}'),
)


def reply(**over: Any) -> Reply:
    base: dict[str, Any] = {
        "id_seed": "abcdefghijklmnopqrstuvwx",
        "model": "m-1",
        "created": 1700000000.0,
        "reasoning": (),
        "text": ("Hi", " there"),
        "tool_call": None,
        "finish": "stop",
        "named_tool": False,
        "prompt_tokens": 5,
        "completion_tokens": 2,
    }
    base.update(over)
    return Reply(**base)


def render(r: StreamRenderer) -> bytes:
    return r.prelude() + b"".join(r.token(i) for i in range(r.token_count())) + r.finish()


def sse_json(raw: bytes) -> list[Any]:
    return [json.loads(e[6:]) for e in raw.decode().split("\n\n")[:-1] if e.startswith("data: {")]


def anthropic_events(raw: bytes) -> list[tuple[str, Any]]:
    out = []
    for event in raw.decode().split("\n\n")[:-1]:
        name, data = event.split("\n")
        out.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def test_openai_tool_call_first_chunk_carries_role() -> None:
    req = WireRequest(model="m", stream=True)
    r = OpenAIWire().renderer(
        req, reply(text=(), tool_call=CALL, finish="tool_calls", completion_tokens=3), lambda: 0.0
    )
    assert r.prelude() == b""
    chunks = sse_json(render(r))
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] is None
    assert first["tool_calls"] == [
        {
            "index": 0,
            "id": "call_abcdefghijklmnopqrstuvwx",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ]
    frags = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:3]]
    assert frags == [
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": '"Oslo"}'}},
    ]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    named = OpenAIWire().renderer(
        req, reply(text=(), tool_call=CALL, finish="tool_calls", named_tool=True), lambda: 0.0
    )
    assert sse_json(render(named))[-1]["choices"][0]["finish_reason"] == "stop"


def test_openai_obfuscation_off_and_midstream_error() -> None:
    req = WireRequest(model="m", stream=True, obfuscation=False)
    r = OpenAIWire().renderer(req, reply(), lambda: 0.0)
    assert all("obfuscation" not in c for c in sse_json(render(r)))
    assert r.midstream_error().endswith(b"\n\ndata: [DONE]\n\n")
    body = json.loads(r.body())
    assert (
        body["object"] == "chat.completion"
        and body["choices"][0]["message"]["content"] == "Hi there"
    )


def test_anthropic_blocks_in_index_order() -> None:
    r = AnthropicWire().renderer(
        WireRequest(model="m", stream=True),
        reply(
            reasoning=("think",), text=(), tool_call=CALL, finish="tool_calls", completion_tokens=4
        ),
        lambda: 0.0,
    )
    events = anthropic_events(render(r))
    starts = [
        (d["index"], d["content_block"]["type"]) for n, d in events if n == "content_block_start"
    ]
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert starts == [(0, "thinking"), (1, "tool_use")] and stops == [0, 1]
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert deltas == [
        "thinking_delta",
        "signature_delta",
        "input_json_delta",
        "input_json_delta",
        "input_json_delta",
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    assert events[-2][1]["usage"]["output_tokens"] == 4


def test_anthropic_tool_first_keeps_block_start_out_of_prelude() -> None:
    r = AnthropicWire().renderer(
        WireRequest(model="m", stream=True),
        reply(text=(), tool_call=CALL, finish="tool_calls"),
        lambda: 0.0,
    )
    assert [n for n, _ in anthropic_events(r.prelude())] == ["message_start"]
    first = anthropic_events(r.token(0))
    assert [n for n, _ in first] == ["content_block_start", "content_block_delta"]
    assert first[1][1]["delta"] == {"type": "input_json_delta", "partial_json": ""}
    body = json.loads(r.body())
    assert body["content"][0]["input"] == {"city": "Oslo"} and body["stop_reason"] == "tool_use"


def test_gemini_function_call_and_json_array() -> None:
    wire = GeminiWire()
    r = wire.renderer(
        WireRequest(model="m", stream=True, sse=False),
        reply(text=("Hi",), tool_call=CALL, finish="tool_calls", completion_tokens=4),
        lambda: 0.0,
    )
    chunks = json.loads(render(r))
    assert chunks[1]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    ]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 4
    thoughts = wire.renderer(
        WireRequest(model="m", stream=True),
        reply(reasoning=("hm",), completion_tokens=3),
        lambda: 0.0,
    )
    first = json.loads(thoughts.token(0)[6:])
    assert first["candidates"][0]["content"]["parts"] == [{"text": "hm", "thought": True}]
    assert first["usageMetadata"]["thoughtsTokenCount"] == 1
    assert thoughts.keepalive() == b"" and thoughts.midstream_error().startswith(b'data: {"error":')


def test_gemini_error_and_parse() -> None:
    wire = GeminiWire()
    err = wire.error(429, model="flash", retry_after_s=34.4)
    body = json.loads(err.body)
    assert body["error"]["details"][-1]["retryDelay"] == "34.4s"
    parsed = wire.parse_request(
        b'{"contents":[{"role":"user","parts":[{"text":"weather?"}]}],"generationConfig":{"maxOutputTokens":3},'
        b'"toolConfig":{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["f"]}}}',
        "models/flash:streamGenerateContent",
        {"alt": "sse"},
        "rid",
    )
    assert isinstance(parsed, WireRequest)
    assert (parsed.model, parsed.stream, parsed.max_tokens, parsed.sse) == ("flash", True, 3, True)
    assert parsed.last_user_text == "weather?" and parsed.tool_choice.name == "f"


def test_ollama_lines() -> None:
    clock = iter([10.0, 10.5, 11.0, 12.0]).__next__
    r = OllamaWire().renderer(
        WireRequest(model="m", stream=True),
        reply(created=9.0, text=("Hi",), tool_call=CALL, finish="tool_calls", completion_tokens=4),
        clock,
    )
    lines = [json.loads(line) for line in render(r).decode().splitlines()]
    assert lines[1]["message"]["tool_calls"] == [
        {
            "id": "call_abcdefgh",
            "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}},
        }
    ]
    done = lines[-1]
    assert done["done"] is True and done["done_reason"] == "stop"
    assert done["total_duration"] == 2_000_000_000 and done["eval_duration"] == 1_000_000_000
    assert (
        OllamaWire().error(404, model="x").body
        == b'{"error":"model \\"x\\" not found, try pulling it first"}'
    )


def test_anthropic_requires_max_tokens() -> None:
    out = AnthropicWire().parse_request(
        b'{"model":"m","messages":[{"role":"user","content":"x"}]}', None, {}, "r"
    )
    assert not isinstance(out, WireRequest)
    assert out.status == 400
    assert json.loads(out.body)["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }


# --- engine with a fake sink ----------------------------------------------------------


class FakeSink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.opened = False
        self.closed = False
        self.was_cut = False

    async def open(self, content_type: str) -> None:
        self.opened = True

    async def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def send(self, content_type: str, body: bytes) -> None:
        self.writes.append(body)

    async def close(self) -> None:
        self.closed = True

    def cut(self) -> None:
        self.was_cut = True


def _plan(cfg: SimModelConfig) -> tuple[Plan, StreamRenderer]:
    req = WireRequest(model="m", stream=True)
    wire = OpenAIWire()
    plan = plan_request(
        cfg,
        request_rng(1, "s", "m", 0),
        req,
        model="m",
        request_n=0,
        created=0.0,
        frames=lambda r: wire.renderer(req, r, lambda: 0.0).token_count(),
    )
    return plan, wire.renderer(req, plan.reply, lambda: 0.0)


async def _play(cfg: SimModelConfig) -> tuple[FakeSink, Any]:
    plan, renderer = _plan(cfg)
    log, sink = SimLog(), FakeSink()
    record = log.open(
        server="s",
        kind="openai",
        path="/",
        connection_id=1,
        new_connection=True,
        handshake_ms=0,
        arrival=0,
    )
    await play_stream(
        plan,
        renderer,
        sink,
        record,
        log,
        start=0.0,
        prelude=cfg.prelude,
        keepalive_ms=cfg.keepalive_ms,
    )
    return sink, record


async def test_engine_prelude_off_rides_with_first_token() -> None:
    sink, record = await _play(SimModelConfig(ttft_ms=0, itl_ms=0, tokens=3, prelude=False))
    assert len(sink.writes) == 4 and sink.writes[0].count(b"data: ") == 2
    assert sink.writes[-1].endswith(b"data: [DONE]\n\n") and sink.closed
    assert record.outcome == "completed" and record.tokens_sent == 3


async def test_engine_cut_sends_no_terminator() -> None:
    sink, record = await _play(SimModelConfig(ttft_ms=0, itl_ms=0, tokens=5, cut_rate=1.0))
    assert sink.was_cut and not sink.closed
    assert b"[DONE]" not in b"".join(sink.writes)
    assert record.outcome == "cut" and 1 <= record.tokens_sent < 5
