"""W3C trace context: what a client's `traceparent` may be, sampling, the ids a request and
its attempts get, the headers each upstream request carries, and opt-in content."""

from __future__ import annotations

import random

import orjson
import pytest

from gateway.config.model import TracesConfig
from gateway.request import ChatRequest
from gateway.streaming.adapter import OneShotCall, UpstreamRequest
from gateway.streaming.events import Finish, TextDelta
from gateway.telemetry.context import (
    Parent,
    Tracing,
    clean_tracestate,
    input_messages,
    parse_traceparent,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("header", "parent"),
    [
        (f"00-{TRACE}-{SPAN}-01", Parent(TRACE, SPAN, True)),
        (f"00-{TRACE}-{SPAN}-00", Parent(TRACE, SPAN, False)),
        (f"00-{TRACE}-{SPAN}-03", Parent(TRACE, SPAN, True)),  # other flags: ignored
        (f" 00-{TRACE}-{SPAN}-01 ", Parent(TRACE, SPAN, True)),
        (f"01-{TRACE}-{SPAN}-01-future", Parent(TRACE, SPAN, True)),  # a later version
    ],
)
def test_valid_traceparents(header: str, parent: Parent) -> None:
    assert parse_traceparent(header) == parent


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE.upper()}-{SPAN}-01",  # ids are lowercase hex
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}0-01",
        f"00-{TRACE}-{SPAN}-1",
        f"00-{TRACE}-{SPAN}-zz",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"0g-{TRACE}-{SPAN}-01",
    ],
)
def test_invalid_traceparents_start_a_new_trace(header: str | None) -> None:
    assert parse_traceparent(header) is None
    tracing = Tracing(TracesConfig(enabled=True))
    ctx = tracing.start({"traceparent": header or "", "tracestate": "a=b"}, 0.0)
    assert ctx.parent_span_id is None and ctx.trace_id != TRACE
    assert ctx.tracestate is None  # the state belongs to the parent it came with


def test_tracestate_within_the_w3c_bounds_passes_as_it_came() -> None:
    assert clean_tracestate(" congo=t61rcWkgMzE,rojo=00f067aa0ba902b7 ") == (
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    )
    assert clean_tracestate("a=" + "x" * 511) is None  # over 512 characters
    assert clean_tracestate(",".join(f"k{i}=v" for i in range(33))) is None  # over 32 members
    assert clean_tracestate("a=b\r\nx-injected: 1") is None
    assert clean_tracestate("a=é") is None
    assert clean_tracestate("   ") is None and clean_tracestate(None) is None


def test_a_clients_trace_is_continued_with_new_span_ids() -> None:
    tracing = Tracing(TracesConfig(enabled=True, sample_ratio=0.0))
    ctx = tracing.start({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "a=b"}, 0.0)
    assert (ctx.trace_id, ctx.parent_span_id, ctx.tracestate) == (TRACE, SPAN, "a=b")
    assert ctx.sampled  # parent-based: the client's decision wins over the ratio
    assert len(ctx.span_id) == 16 and ctx.span_id != SPAN and int(ctx.span_id, 16) != 0
    unsampled = tracing.start({"traceparent": f"00-{TRACE}-{SPAN}-00"}, 0.0)
    assert not unsampled.sampled


def test_without_parent_based_sampling_the_ratio_decides_on_the_trace_id() -> None:
    config = TracesConfig(enabled=True, sample_ratio=0.5, parent_based=False)
    tracing = Tracing(config)
    low = "f" * 16 + "0" * 15 + "1"  # low 64 bits small: in
    high = "0" * 16 + "f" * 16  # low 64 bits large: out
    assert tracing.start({"traceparent": f"00-{low}-{SPAN}-00"}, 0.0).sampled
    assert not tracing.start({"traceparent": f"00-{high}-{SPAN}-01"}, 0.0).sampled


@pytest.mark.parametrize(("ratio", "expected"), [(0.0, 0), (1.0, 200)])
def test_new_traces_follow_the_ratio(ratio: float, expected: int) -> None:
    tracing = Tracing(TracesConfig(enabled=True, sample_ratio=ratio), random.Random(3))
    contexts = [tracing.start({}, 0.0) for _ in range(200)]
    assert sum(c.sampled for c in contexts) == expected
    assert len({c.trace_id for c in contexts}) == 200
    assert all(len(c.trace_id) == 32 and c.parent_span_id is None for c in contexts)


def test_a_half_ratio_samples_about_half() -> None:
    tracing = Tracing(TracesConfig(enabled=True, sample_ratio=0.5), random.Random(5))
    sampled = sum(tracing.start({}, 0.0).sampled for _ in range(2000))
    assert 900 < sampled < 1100


def test_each_candidate_gets_its_own_span_in_its_upstream_traceparent() -> None:
    tracing = Tracing(TracesConfig(enabled=True))
    ctx = tracing.start({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "a=b"}, 0.0)
    first = UpstreamRequest("POST", "http://a/v1", {"authorization": "Bearer k"}, b"{}")
    parts = (UpstreamRequest("POST", "http://b/1", {}, b"1"), UpstreamRequest("POST", "u", {}, b""))
    call = OneShotCall(parts, parse=lambda i, body: body, merge=lambda p: [])
    requests: dict[str, UpstreamRequest | OneShotCall] = {"a": first, "b": call}
    tracing.add_headers(ctx, requests)
    ids = ctx.attempt_span_ids
    assert set(ids) == {"a", "b"} and ids["a"] != ids["b"] and ctx.span_id not in ids.values()
    sent_a = requests["a"]
    assert isinstance(sent_a, UpstreamRequest)
    assert sent_a.headers == {
        "authorization": "Bearer k",
        "traceparent": f"00-{TRACE}-{ids['a']}-01",
        "tracestate": "a=b",
    }
    assert first.headers == {"authorization": "Bearer k"}  # the built request is not changed
    sent_b = requests["b"]
    assert isinstance(sent_b, OneShotCall)
    assert [r.headers["traceparent"] for r in sent_b.requests] == [f"00-{TRACE}-{ids['b']}-01"] * 2


def test_request_parameters_and_no_content_by_default() -> None:
    tracing = Tracing(TracesConfig(enabled=True))
    ctx = tracing.start({}, 0.0)
    params = {"temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "stop": "END", "n": 1}
    request = ChatRequest("chat", [{"role": "user", "content": "secret plans"}], params=params)
    tracing.note_request(ctx, request)
    assert ctx.params == {
        "temperature": 0.3,
        "top_p": 0.9,
        "n": 1,
        "max_tokens": 64,
        "stop": ["END"],
    }
    assert ctx.input_messages is None and ctx.output is None
    ctx.collect([TextDelta("answer")])
    assert ctx.output is None


def test_content_when_opted_in_is_bounded() -> None:
    tracing = Tracing(TracesConfig(enabled=True, include_content=True, max_content_chars=10))
    ctx = tracing.start({}, 0.0)
    tracing.note_request(ctx, ChatRequest("chat", [{"role": "user", "content": "0123456789AB"}]))
    assert orjson.loads(ctx.input_messages or "") == [
        {"role": "user", "parts": [{"type": "text", "content": "0123456789"}]}
    ]
    ctx.collect([TextDelta("hello "), Finish("stop")])
    ctx.collect([TextDelta("world, and more")])
    ctx.collect([TextDelta("never kept")])
    assert "".join(ctx.output or []) == "hello worl"


def test_unsampled_requests_keep_no_content() -> None:
    config = TracesConfig(enabled=True, include_content=True, sample_ratio=0.0)
    tracing = Tracing(config)
    ctx = tracing.start({}, 0.0)
    tracing.note_request(ctx, ChatRequest("chat", [{"role": "user", "content": "hi"}]))
    assert ctx.input_messages is None and ctx.output is None


def test_input_messages_follow_the_genai_shape() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy"},
    ]
    assert orjson.loads(input_messages(messages, 1000)) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "weather?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy"}],
        },
    ]
