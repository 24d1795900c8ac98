"""Hypothesis strategies for upstream-like bytes.

Pure random JSON rarely reaches the inner branches of an adapter (`choices[0].delta.
tool_calls[0].function.arguments`), so most inputs here are *mutated templates*: real
chunks of each wire format (after ../shared/wire-formats.md) in which random subtrees are
replaced by random JSON, keys dropped or added. Many values mention the API key, so that
a message that echoes it is noticed.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from tests.fuzz.invariants import API_KEY

# Field names and values of every wire format, so that random JSON looks like upstream JSON.
VOCABULARY = (
    "id", "object", "model", "system_fingerprint", "choices", "index", "delta", "message",
    "content", "role", "refusal", "reasoning_content", "reasoning", "tool_calls", "function",
    "function_call", "name", "arguments", "type", "finish_reason", "usage", "prompt_tokens",
    "completion_tokens", "prompt_tokens_details", "cached_tokens", "completion_tokens_details",
    "reasoning_tokens", "prompt_cache_hit_tokens", "x_groq", "error", "code", "param", "detail",
    "loc", "msg", "text", "thinking", "content_block", "partial_json", "stop_reason", "input",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "candidates", "parts", "functionCall", "args", "finishReason", "finishMessage", "thought",
    "usageMetadata", "promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount",
    "cachedContentTokenCount", "modelVersion", "responseId", "promptFeedback", "blockReason",
    "status", "details", "reason", "retryDelay", "done", "done_reason", "created_at",
    "prompt_eval_count", "eval_count",
)  # fmt: skip
WORDS = (
    "stop", "length", "tool_calls", "content_filter", "function_call", "error", "model_length",
    "assistant", "text", "thinking", "tool_use", "text_delta", "input_json_delta",
    "thinking_delta", "message_start", "message_delta", "message_stop", "content_block_start",
    "content_block_delta", "content_block_stop", "ping", "end_turn", "max_tokens", "refusal",
    "STOP", "MAX_TOKENS", "SAFETY", "MALFORMED_FUNCTION_CALL", "RESOURCE_EXHAUSTED",
    "API_KEY_INVALID", "INVALID_ARGUMENT", "34.5s", "1e999s", "-1s", "nans", "[DONE]",
    "insufficient_quota", "rate_limit_error", "overloaded_error", "2024-05-01T00:00:00Z",
    API_KEY, f"Incorrect API key provided: {API_KEY}",
)  # fmt: skip
ANTHROPIC_EVENTS = (
    "message_start", "content_block_start", "content_block_delta", "content_block_stop",
    "message_delta", "message_stop", "ping", "error", "message", "",
)  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(min_value=-3, max_value=600),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(WORDS),
)
keys = st.sampled_from(VOCABULARY) | st.text(max_size=6)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=20,
)
json_objects = st.dictionaries(keys, json_values, max_size=6)
line_endings = st.sampled_from([b"\n", b"\r\n", b"\r"])
cut_points = st.lists(st.integers(min_value=0), max_size=12)

_CALL = {"index": 0, "id": "call_1", "type": "function"}
OPENAI_CHUNKS: tuple[dict[str, Any], ...] = (
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "gpt-x",
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
    },
    {"choices": [{"index": 0, "delta": {"content": "Hi", "reasoning_content": "hmm"}}]},
    {"choices": [{"index": 0, "delta": {"content": [{"type": "text", "text": "Hi"}]}}]},
    {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {**_CALL, "function": {"name": "get_weather", "arguments": '{"c'}}
                    ]
                },
            }
        ]
    },
    {"choices": [{"index": 0, "delta": {"function_call": {"name": "f", "arguments": "{}"}}}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {
        "choices": [],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
        "x_groq": {"usage": {"prompt_tokens": 1}},
    },
    {
        "error": {
            "message": f"Incorrect API key provided: {API_KEY}",
            "type": "invalid_request_error",
        }
    },
    {"object": "error", "message": "boom", "type": "internal", "code": 500},
)
OPENAI_BODIES: tuple[dict[str, Any], ...] = (
    {
        "id": "chatcmpl-1",
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hi",
                    "tool_calls": [{**_CALL, "function": {"name": "f", "arguments": {"a": 1}}}],
                },
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    },
    {"error": {"message": API_KEY, "type": "server_error", "code": 503}},
)
ANTHROPIC_CHUNKS: tuple[dict[str, Any], ...] = (
    {
        "type": "message_start",
        "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 5}},
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
    },
    {"type": "content_block_start", "index": 2, "content_block": {"type": "thinking"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "thinking_delta", "thinking": "t"},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}},
    {"type": "message_stop"},
    {"type": "ping"},
    {"type": "error", "error": {"type": "overloaded_error", "message": f"bad key {API_KEY}"}},
)
ANTHROPIC_BODIES: tuple[dict[str, Any], ...] = (
    {
        "id": "msg_1",
        "type": "message",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Hi"},
            {"type": "thinking", "thinking": "t"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 2, "cache_read_input_tokens": 0},
    },
    {"type": "error", "error": {"type": "invalid_request_error", "message": API_KEY}},
)
GEMINI_CHUNKS: tuple[dict[str, Any], ...] = (
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Hi"},
                        {"text": "t", "thought": True},
                        {"functionCall": {"id": "c1", "name": "f", "args": {"a": 1}}},
                    ],
                },
                "finishReason": "STOP",
                "finishMessage": "done",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 1,
            "candidatesTokenCount": 2,
            "thoughtsTokenCount": 1,
            "cachedContentTokenCount": 0,
        },
        "modelVersion": "gemini-x",
        "responseId": "r1",
    },
    {"promptFeedback": {"blockReason": "SAFETY"}},
    {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "finishMessage": "bad"}]},
    {
        "error": {
            "code": 429,
            "message": f"quota for {API_KEY}",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"reason": "API_KEY_INVALID", "retryDelay": "34s"}],
        }
    },
)
OLLAMA_CHUNKS: tuple[dict[str, Any], ...] = (
    {
        "model": "llama",
        "created_at": "2024-05-01T00:00:00Z",
        "message": {
            "role": "assistant",
            "content": "Hi",
            "thinking": "t",
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
        "done": False,
    },
    {
        "model": "llama",
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 1,
        "eval_count": 2,
    },
    {"error": f"invalid key {API_KEY}"},
)
ERROR_BODIES: tuple[Any, ...] = (
    {"error": {"message": f"Incorrect API key: {API_KEY}", "type": "x", "code": "c", "param": "p"}},
    {"object": "error", "message": "m", "type": "t", "code": 429},
    {"detail": [{"loc": ["body", 1], "msg": "bad"}]},
    {"detail": "nope"},
    {"message": "plain"},
    {"error": "ollama says no"},
    {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
    GEMINI_CHUNKS[-1],
)


@st.composite
def mutated(draw: st.DrawFn, template: Any, rate: int = 10) -> Any:
    """`template` with random subtrees replaced, keys dropped and keys added; each node is
    replaced with probability 1/rate (dropped or extended somewhat less often)."""

    def one_in(n: int) -> bool:
        return draw(st.integers(min_value=0, max_value=n - 1)) == 0

    if one_in(rate):
        return draw(json_values)
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if not one_in(rate + 2):
                out[key] = draw(mutated(value, rate))
        if one_in(rate):
            out[draw(keys)] = draw(json_values)
        return out
    if isinstance(template, list):
        items = [draw(mutated(item, rate)) for item in template]
        if items and one_in(rate):
            items.append(draw(mutated(template[0], rate)))
        return items
    return template


def templates_for(kind: str, surface: str) -> tuple[Any, ...]:
    if kind == "anthropic":
        return ANTHROPIC_BODIES if surface == "response" else ANTHROPIC_CHUNKS
    if kind == "gemini":
        return GEMINI_CHUNKS
    if kind == "ollama":
        return OLLAMA_CHUNKS
    return OPENAI_BODIES if surface == "response" else OPENAI_CHUNKS


def upstream_json(kind: str, surface: str) -> st.SearchStrategy[Any]:
    """Mostly mutated templates of `kind`, sometimes arbitrary JSON."""
    templates = templates_for(kind, surface)
    return st.one_of(
        st.sampled_from(templates).flatmap(mutated),
        st.sampled_from(templates).flatmap(mutated),
        st.sampled_from(templates).flatmap(mutated),
        json_objects,
        json_values,
    )


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


@st.composite
def sse_streams(draw: st.DrawFn, kind: str = "openai") -> bytes:
    """SSE text for `kind`: events with names (Anthropic), data lines (JSON, [DONE], text),
    ids, retries and comments, in any line ending; sometimes without the last blank line."""
    chunks = upstream_json(kind, "stream")
    out: list[bytes] = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        nl = draw(line_endings)
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            line = draw(st.sampled_from([b": ping", b"id: 7", b"retry: 100", b"retry: x", b"x"]))
            out.append(line + nl)
        choice = draw(st.integers(min_value=0, max_value=9))
        value = draw(chunks) if choice < 7 else None
        if choice == 7:
            payload = b"[DONE]"
        elif choice == 8:
            payload = draw(st.text(max_size=20)).replace("\n", " ").replace("\r", " ").encode()
        else:
            payload = dumps(value) if choice < 7 else b""
        if kind == "anthropic":
            name = draw(st.sampled_from(ANTHROPIC_EVENTS))
            own = value.get("type") if isinstance(value, dict) else None
            if isinstance(own, str) and draw(st.integers(min_value=0, max_value=3)) != 0:
                name = own  # usually the name matches the payload, as upstream
            if name:
                out.append(b"event: " + name.encode("utf-8", "replace") + nl)
        out.append(b"data: " + payload + nl)
        out.append(draw(st.sampled_from([nl, nl, nl, b""])))
    return b"".join(out)


@st.composite
def ndjson_streams(draw: st.DrawFn, kind: str = "ollama") -> bytes:
    lines = draw(
        st.lists(upstream_json(kind, "stream").map(dumps) | st.binary(max_size=10), max_size=6)
    )
    nl = draw(line_endings)
    return nl.join(lines) + draw(st.sampled_from([b"", nl]))


def streams_for(kind: str) -> st.SearchStrategy[bytes]:
    return ndjson_streams(kind) if kind == "ollama" else sse_streams(kind)
