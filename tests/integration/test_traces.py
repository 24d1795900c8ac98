"""OpenTelemetry traces end to end: the gateway behind a client's `traceparent`, simulated
upstreams that log the trace headers they got, and an in-process OTLP/HTTP receiver that
decodes the protobuf it is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra (in the dev extra)")

from tests.integration.otlp_receiver import ReceivedSpan, Receiver, otlp_receiver
from tests.stack import FAST, Recorded, Stack, stack

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
OTLP_TOKEN = "otlp-token-0123456789"
SLOW = {"ttft_ms": 3000, "itl_ms": 1, "tokens": 5}
EARLY = {"ttft_ms": 20, "itl_ms": 1, "tokens": 5, "text": "early bird wins"}
PROMPT = "the weather in Paris, says sim-key"  # sim-key: the stack's provider key


def traces_config(receiver: Receiver, **traces: Any) -> dict[str, Any]:
    return {
        "traces": {
            "enabled": True,
            "endpoint": receiver.url,
            "headers": {"authorization": f"Bearer {OTLP_TOKEN}"},
            **traces,
        }
    }


@asynccontextmanager
async def traced(
    servers: dict[str, Any], routes: dict[str, Any], **traces: Any
) -> AsyncIterator[tuple[Stack, Receiver]]:
    async with otlp_receiver() as receiver:
        async with stack(servers, routes, telemetry=traces_config(receiver, **traces)) as s:
            s.gateway.sinks.append(Recorded())  # the pipeline's own list: it sees it too
            yield s, receiver


async def chat(
    s: Stack, model: str = "chat", headers: dict[str, str] | None = None, **body: Any
) -> tuple[int, bytes]:
    payload = {"model": model, "messages": [{"role": "user", "content": PROMPT}], **body}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{s.url}/v1/chat/completions", json=payload, headers=headers or {}
        ) as resp:
            return resp.status, await resp.read()


async def exported(s: Stack, receiver: Receiver, requests: int) -> list[ReceivedSpan]:
    """The spans of the first `requests` requests, once they are recorded and sent."""
    recorded = next(sink for sink in s.gateway.sinks if isinstance(sink, Recorded))
    await recorded.wait(requests)
    assert s.gateway.trace_sink is not None
    assert await s.gateway.trace_sink.flush()
    return receiver.spans


def only(spans: list[ReceivedSpan], **attrs: Any) -> ReceivedSpan:
    found = [s for s in spans if all(s.attributes.get(k) == v for k, v in attrs.items())]
    assert len(found) == 1, (attrs, [s.attributes for s in spans])
    return found[0]


def values(spans: list[ReceivedSpan]) -> str:
    return repr([(s.name, s.attributes, s.status_message) for s in spans])


async def test_race_spans_continue_the_clients_trace_and_upstreams_get_each_attempts_span() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"late": SLOW}},
        "b": {"kind": "anthropic", "models": {"early": EARLY}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
    async with traced(servers, routes) as (s, receiver):
        headers = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
        status, raw = await chat(s, headers=headers, stream=True, max_tokens=50, temperature=0.2)
        assert status == 200 and b"early" in raw
        spans = await exported(s, receiver, 1)

    assert len(spans) == 3
    (request,) = [sp for sp in spans if sp.kind == "server"]
    assert (request.trace_id, request.parent_id) == (TRACE_ID, CLIENT_SPAN)
    assert request.name == "chat chat"
    assert request.resource["service.name"] == "race-gateway"
    attrs = request.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "chat"
    assert attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.usage.output_tokens"] == 3  # "early bird wins"
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    assert attrs["gateway.route"] == "chat" and attrs["gateway.strategy"] == "race"
    assert attrs["gateway.winner"] == "early" and attrs["gateway.outcome"] == "completed"
    assert attrs["http.response.status_code"] == 200
    assert attrs["gateway.door"] == "chat" and attrs["gateway.region"] == "eu"
    assert attrs["gateway.key_id"] == "anonymous" and attrs["gateway.attempts"] == 2
    assert attrs["gateway.cost_usd"] == 0.0 and attrs["gateway.wasted_usd"] == 0.0
    assert request.status == "unset"

    attempts = [sp for sp in spans if sp.kind == "client"]
    assert {sp.parent_id for sp in attempts} == {request.span_id}
    assert {sp.trace_id for sp in attempts} == {TRACE_ID}
    won = only(attempts, **{"gateway.deployment": "early"})
    lost = only(attempts, **{"gateway.deployment": "late"})
    assert won.name == "chat early" and lost.name == "chat late"
    assert won.attributes["gateway.attempt.outcome"] == "won"
    assert won.attributes["gen_ai.provider.name"] == "anthropic"
    assert won.attributes["gen_ai.request.model"] == "early"
    assert won.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert won.attributes["gen_ai.usage.output_tokens"] == 3
    assert won.attributes["server.address"] == "127.0.0.1"
    assert isinstance(won.attributes["server.port"], int)
    assert lost.attributes["gateway.attempt.outcome"] == "cancelled"
    assert lost.attributes["gen_ai.provider.name"] == "openai"
    assert "gen_ai.response.time_to_first_chunk" not in lost.attributes
    assert lost.attributes["gateway.attempt.ttft_censored_s"] > 0
    for attempt in attempts:
        assert request.start_ns <= attempt.start_ns <= attempt.end_ns

    # Each upstream was told its own attempt's span as the parent, and the client's state.
    by_model = {r.model: r for r in s.log.records}
    assert by_model["early"].traceparent == f"00-{TRACE_ID}-{won.span_id}-01"
    assert by_model["late"].traceparent == f"00-{TRACE_ID}-{lost.span_id}-01"
    assert {r.tracestate for r in s.log.records} == {TRACESTATE}

    # The collector got the configured header; no prompt or answer text left.
    assert receiver.headers[0]["authorization"] == f"Bearer {OTLP_TOKEN}"
    assert receiver.headers[0]["content-type"] == "application/x-protobuf"
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    assert not any(b"Paris" in body or b"early bird" in body for body in receiver.bodies)


async def test_failed_attempt_and_budget_refusal_have_their_spans() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"broken": {**FAST, "error_rate_500": 1.0}}},
        "b": {"kind": "openai", "models": {"ok": FAST, "p": FAST, "q": FAST}},
    }
    budgeted = {"strategy": "race", "k": 2, "deployments": ["p", "q"], "max_extra_load": 0.5}
    routes = {
        "fb": {"strategy": "fallback", "deployments": ["broken", "ok"]},
        "race": {**budgeted, "min_extra_per_s": 0},
    }
    async with traced(servers, routes) as (s, receiver):
        assert (await chat(s, "fb"))[0] == 200
        for _ in range(2):  # the second request's extra attempt is refused by the budget
            assert (await chat(s, "race"))[0] == 200
        spans = await exported(s, receiver, 3)

    failed = only(spans, **{"gateway.deployment": "broken"})
    assert failed.attributes["gateway.attempt.outcome"] == "failed"
    assert failed.attributes["error.type"] == "server_error"
    assert failed.attributes["gateway.error.status"] == 500
    assert failed.status == "error" and failed.status_message
    fallback = only(spans, **{"gateway.deployment": "ok"})
    assert fallback.attributes["gateway.attempt.outcome"] == "won"
    assert fallback.attributes["gateway.attempt.speculative"] is False

    refused = only(spans, **{"gateway.attempt.outcome": "refused_by_budget"})
    assert refused.kind == "client" and refused.start_ns == refused.end_ns
    second = next(sp for sp in spans if sp.span_id == refused.parent_id)
    assert second.kind == "server" and second.attributes["gateway.budget_refused"] == 1
    # no upstream request was made for it: 2 + 1 race attempts in the sim log
    assert len(s.records("p")) + len(s.records("q")) == 3
    # a trace per request when the client sent no traceparent, each a root
    roots = [sp for sp in spans if sp.kind == "server"]
    assert len({sp.trace_id for sp in roots}) == 3 and {sp.parent_id for sp in roots} == {None}
    traced_upstream = {r.traceparent.split("-")[1] for r in s.log.records if r.traceparent}
    assert traced_upstream == {sp.trace_id for sp in roots}


async def test_content_only_when_opted_in_and_scrubbed() -> None:
    servers = {"a": {"kind": "openai", "models": {"m": {**FAST, "text": "sunny in Paris"}}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["m"]}}
    async with traced(servers, routes, include_content=True) as (s, receiver):
        assert (await chat(s, stream=True))[0] == 200
        assert (await chat(s, "no-such-sim-key-model"))[0] == 404
        spans = await exported(s, receiver, 2)

    request = only(spans, **{"gateway.outcome": "completed"})
    messages = orjson.loads(request.attributes["gen_ai.input.messages"])
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "the weather in Paris, says ***"}]}
    ]
    output = orjson.loads(request.attributes["gen_ai.output.messages"])
    assert output[0]["parts"] == [{"type": "text", "content": "sunny in Paris"}]
    assert output[0]["role"] == "assistant" and output[0]["finish_reason"] == "stop"
    rejected = only(spans, **{"gateway.outcome": "rejected"})
    assert rejected.attributes["gen_ai.request.model"] == "no-such-***-model"
    assert rejected.attributes["http.response.status_code"] == 404
    assert rejected.attributes["error.type"] == "model_not_found"
    assert "sim-key" not in values(spans)


async def test_unsampled_traces_propagate_but_export_nothing() -> None:
    servers = {"a": {"kind": "openai", "models": {"m": FAST}}}
    routes = {"chat": {"strategy": "fallback", "deployments": ["m"]}}
    async with traced(servers, routes, sample_ratio=0.0) as (s, receiver):
        assert (await chat(s))[0] == 200  # no parent: the ratio (0) decides
        unsampled = f"00-{TRACE_ID}-{CLIENT_SPAN}-00"
        assert (await chat(s, headers={"traceparent": unsampled}))[0] == 200
        assert (await chat(s, headers={"traceparent": TRACEPARENT}))[0] == 200  # parent: yes
        spans = await exported(s, receiver, 3)

    flags = [r.traceparent.rsplit("-", 1)[1] for r in s.log.records if r.traceparent]
    assert flags == ["00", "00", "01"]
    assert [r.traceparent.split("-")[1] for r in s.log.records][1:] == [TRACE_ID, TRACE_ID]
    assert {sp.trace_id for sp in spans} == {TRACE_ID} and len(spans) == 2


async def test_embeddings_calls_carry_their_attempts_span() -> None:
    embed = {"type": "embedding", "dimensions": 8, "ttft_ms": 1}
    servers = {"g": {"kind": "gemini", "models": {"gem": embed}}}
    routes = {"vectors": {"strategy": "fallback", "deployments": ["gem"]}}
    async with otlp_receiver() as receiver:
        telemetry = traces_config(receiver)
        deployments = {"gem": {"type": "embedding"}}
        async with stack(servers, routes, deployments, telemetry=telemetry) as s:
            s.gateway.sinks.append(Recorded())
            body = {"model": "vectors", "input": ["one", "two"]}
            async with aiohttp.ClientSession() as http:
                headers = {"traceparent": TRACEPARENT}
                async with http.post(f"{s.url}/v1/embeddings", json=body, headers=headers) as r:
                    assert r.status == 200
            spans = await exported(s, receiver, 1)

    request = only(spans, **{"gateway.door": "embeddings"})
    assert request.name == "embeddings vectors" and request.parent_id == CLIENT_SPAN
    attempt = only(spans, **{"gateway.deployment": "gem"})
    assert attempt.attributes["gen_ai.operation.name"] == "embeddings"
    assert attempt.attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attempt.parent_id == request.span_id
    (record,) = s.log.records
    assert record.traceparent == f"00-{TRACE_ID}-{attempt.span_id}-01"
