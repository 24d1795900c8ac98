"""Provider-reported token counts are kept as reported and priced, for every provider kind.

Streams are written in the shape each provider sends (tests/conformance/*_wire.py) and
fed byte by byte; then the client-facing usage (encode.usage_dict) and the attempt's
cost (accounting) are checked against the counts the provider reported.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.providers import registry
from gateway.providers.base import ProviderSettings
from gateway.streaming.accounting import AttemptRecord
from gateway.streaming.encode import usage_dict
from gateway.streaming.events import Event, Usage


def provider(kind: str) -> Any:
    return registry.create(ProviderSettings(kind, kind, "http://127.0.0.1:1", "sk-test"))


def decode_bytewise(kind: str, wire: bytes) -> list[Event]:
    decoder = provider(kind).decoder()
    events: list[Event] = []
    for i in range(len(wire)):
        events += decoder.feed(wire[i : i + 1])
    return events + decoder.close()


def last_usage(events: list[Event]) -> Usage:
    usages = [e for e in events if type(e) is Usage]
    assert usages, events
    return usages[-1]


def priced(usage: Usage, price_input: float = 1.0, price_output: float = 10.0) -> AttemptRecord:
    return AttemptRecord("d", 0.0, price_input, price_output, usage=usage)


def sse_data(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def openai_chunks(usage: dict[str, Any]) -> bytes:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m-1"}
    return sse_data(
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**base, "choices": [{"index": 0, "delta": {"content": "Four."}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": usage},
    )


OPENAI_KINDS = ["openai", "deepseek", "mistral", "vllm", "ollama_openai", "groq", "together"]


# -- OpenAI-compatible kinds ---------------------------------------------------------------


@pytest.mark.parametrize("kind", OPENAI_KINDS)
def test_reasoning_reported_beside_completion_is_kept_and_priced(kind: str) -> None:
    """The recorded case: 10 prompt, 3 completion, 290 reasoning beside them, total 303."""
    usage = last_usage(
        decode_bytewise(
            kind,
            openai_chunks(
                {
                    "prompt_tokens": 10,
                    "completion_tokens": 3,
                    "total_tokens": 303,
                    "completion_tokens_details": {"reasoning_tokens": 290},
                }
            ),
        )
    )
    assert (usage.prompt, usage.completion, usage.reasoning, usage.total) == (10, 3, 290, 303)
    assert not usage.reasoning_in_completion
    assert usage.output == 293
    shown = usage_dict(usage)
    assert shown["total_tokens"] == 303  # not 13
    assert shown["completion_tokens"] == 3
    assert shown["completion_tokens_details"]["reasoning_tokens"] == 290
    record = priced(usage)
    assert record.output_tokens == 293
    assert record.cost_usd == pytest.approx((10 * 1.0 + 293 * 10.0) / 1e6)


@pytest.mark.parametrize("kind", OPENAI_KINDS)
def test_reasoning_inside_completion_is_priced_once(kind: str) -> None:
    """OpenAI's own convention: reasoning_tokens are part of completion_tokens."""
    reported = {
        "prompt_tokens": 10,
        "completion_tokens": 300,
        "total_tokens": 310,
        "completion_tokens_details": {"reasoning_tokens": 290},
    }
    usage = last_usage(decode_bytewise(kind, openai_chunks(reported)))
    assert usage.reasoning_in_completion
    assert usage.output == 300 and usage.total == 310
    assert usage_dict(usage)["total_tokens"] == 310
    assert priced(usage).cost_usd == pytest.approx((10 + 3000) / 1e6)


def test_flat_reasoning_count_without_total_above_completion_is_beside_it() -> None:
    reported = {"prompt_tokens": 10, "completion_tokens": 3, "reasoning_tokens": 290}
    usage = last_usage(decode_bytewise("openai_compatible", openai_chunks(reported)))
    assert usage.reasoning == 290 and usage.total is None
    assert not usage.reasoning_in_completion
    assert usage_dict(usage)["total_tokens"] == 303
    assert priced(usage).output_tokens == 293


def test_total_reported_as_is_even_when_it_counts_more_than_the_parts() -> None:
    """A total with something the parts do not name (no reasoning): shown as reported."""
    reported = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 20}
    usage = last_usage(decode_bytewise("openai", openai_chunks(reported)))
    assert usage.reasoning_in_completion and usage.output == 3
    assert usage_dict(usage)["total_tokens"] == 20


def test_non_stream_body_keeps_reported_total() -> None:
    body = orjson.dumps(
        {
            "id": "c1",
            "object": "chat.completion",
            "created": 1,
            "model": "m-1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "4"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "total_tokens": 303,
                "completion_tokens_details": {"reasoning_tokens": 290},
            },
        }
    )
    usage = last_usage(provider("openai").parse_response(body))
    assert usage.total == 303 and usage.output == 293


@pytest.mark.parametrize("bad", ["303", -1, True, None, 3.5])
def test_unusable_total_is_not_reported(bad: object) -> None:
    reported = {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": bad}
    usage = last_usage(decode_bytewise("openai", openai_chunks(reported)))
    assert usage.total is None
    assert usage_dict(usage)["total_tokens"] == 13


# -- Gemini -----------------------------------------------------------------------------------


def test_gemini_thoughts_and_total_are_kept_and_priced() -> None:
    """candidatesTokenCount excludes thoughts; totalTokenCount includes them."""
    meta = {
        "promptTokenCount": 10,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 290,
        "totalTokenCount": 303,
    }
    chunk = {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Four."}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": meta,
        "modelVersion": "gemini-x-001",
    }
    wire = b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"
    usage = last_usage(decode_bytewise("gemini", wire))
    assert (usage.prompt, usage.completion, usage.reasoning, usage.total) == (10, 293, 290, 303)
    assert usage.reasoning_in_completion  # folded in, as OpenAI counts it
    assert usage_dict(usage)["total_tokens"] == 303
    assert priced(usage).output_tokens == 293


# -- Anthropic and Ollama: no total reported ---------------------------------------------------


def test_anthropic_usage_without_total_adds_up() -> None:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-x", "usage": {"input_tokens": 10, "output_tokens": 1,
            "cache_read_input_tokens": 5}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "hm"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 293}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    wire = b"".join(
        b"event: " + n.encode() + b"\ndata: " + orjson.dumps(d) + b"\n\n" for n, d in events
    )
    usage = last_usage(decode_bytewise("anthropic", wire))
    assert (usage.prompt, usage.completion, usage.cached, usage.total) == (15, 293, 5, None)
    assert usage_dict(usage)["total_tokens"] == 308  # thinking is inside output_tokens
    assert priced(usage).output_tokens == 293


def test_ollama_native_usage_without_total_adds_up() -> None:
    lines = [
        {"model": "llama3", "created_at": "2025-01-01T00:00:00Z",
         "message": {"role": "assistant", "content": "Four."}, "done": False},
        {"model": "llama3", "created_at": "2025-01-01T00:00:00Z",
         "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop", "prompt_eval_count": 10, "eval_count": 293},
    ]  # fmt: skip
    wire = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    usage = last_usage(decode_bytewise("ollama", wire))
    assert (usage.prompt, usage.completion, usage.total) == (10, 293, None)
    assert usage_dict(usage)["total_tokens"] == 303
    assert priced(usage).output_tokens == 293
