"""A closed request's record as spans (no OpenTelemetry needed): ids and parents, times
from the record's offsets, GenAI attribute names, outcomes, and scrubbed strings."""

from __future__ import annotations

import itertools

from gateway.config import parse_config
from gateway.record import RequestRecord
from gateway.scrub import Scrubber
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.streaming.events import UpstreamError, Usage
from gateway.telemetry.context import TraceContext
from gateway.telemetry.spans import SpanBuilder, SpanSpec

SECRET = "sk-live-SECRET-123456"
CONFIG = parse_config(
    {
        "providers": {
            "oa": {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": SECRET},
            "an": {"kind": "anthropic", "base_url": "http://10.0.0.5:8080"},
        },
        "deployments": {
            "fast": {"provider": "an", "model": "claude-haiku"},
            "slow": {"provider": "oa", "model": "gpt-4o-mini"},
            "spare": {"provider": "oa", "model": "gpt-4o"},
        },
        "routes": {"chat": {"strategy": "race", "deployments": ["fast", "slow", "spare"]}},
    },
    env={},
)
T0 = 1_800_000_000.0


def ids() -> itertools.count[int]:
    return itertools.count(1)


def builder() -> SpanBuilder:
    return SpanBuilder(CONFIG, Scrubber([SECRET]))


def trace() -> TraceContext:
    return TraceContext(
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="a" * 16,
        parent_span_id="b" * 16,
        sampled=True,
        started_unix=T0,
        attempt_span_ids={"fast": "1" * 16, "slow": "2" * 16},
        params={"max_tokens": 100, "temperature": 0.5},
    )


def raced() -> RequestRecord:
    won = AttemptRecord("fast", 0.0, price_input=1.0, price_output=2.0, prompt_estimate=10)
    won.outcome, won.ttft_s, won.end_offset_s = "won", 0.2, 0.5
    won.usage, won.tokens, won.finish_reason = Usage(prompt=12, completion=30, cached=4), 30, "stop"
    lost = AttemptRecord("slow", 0.0, price_input=1.0, prompt_estimate=10, speculative=True)
    lost.outcome, lost.censored_ttft_s, lost.end_offset_s = "cancelled", 0.2, 0.2
    race = RaceRecord("req-1", "chat", "race", "eu", [won, lost], winner="fast", ttft_s=0.2)
    race.stream_outcome, race.total_s = "completed", 0.5
    race.budget_refused, race.refused = 1, [("spare", 0.0)]
    rec = RequestRecord("req-1", "chat", "key-1", "chat", True, route="chat", region="eu")
    rec.race, rec.outcome, rec.model_version, rec.tier = race, "completed", "claude-3-5", "long"
    rec.setup_s, rec.total_s, rec.trace = 0.01, 0.52, trace()
    return rec


def spans_of(rec: RequestRecord) -> list[SpanSpec]:
    counter = ids()
    return builder().spans(rec, lambda: f"{next(counter):016x}")


def test_request_span_continues_the_clients_trace() -> None:
    request, *attempts = spans_of(raced())
    assert len(attempts) == 3
    assert (request.kind, request.span_id, request.parent_id) == ("server", "a" * 16, "b" * 16)
    assert request.remote_parent and request.name == "chat chat"
    assert request.start_ns == int(T0 * 1e9) and request.end_ns == int((T0 + 0.52) * 1e9)
    assert request.error is None
    assert request.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.stream": True,
        "gen_ai.request.model": "chat",
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.temperature": 0.5,
        "gen_ai.provider.name": "anthropic",
        "gen_ai.response.model": "claude-3-5",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.response.time_to_first_chunk": 0.01 + 0.2,
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 4,
        "gateway.request_id": "req-1",
        "gateway.door": "chat",
        "gateway.key_id": "key-1",
        "gateway.outcome": "completed",
        "gateway.route": "chat",
        "gateway.tier": "long",
        "gateway.region": "eu",
        "gateway.strategy": "race",
        "gateway.winner": "fast",
        "gateway.attempts": 2,
        "gateway.budget_refused": 1,
        "gateway.cost_usd": (12 * 1.0 + 30 * 2.0) / 1e6 + 10 * 1.0 / 1e6,
        "gateway.wasted_usd": 10 * 1.0 / 1e6,
        "gateway.wasted_tokens": 10,
        "gateway.setup_s": 0.01,
        "http.response.status_code": 200,
    }


def test_attempt_spans_are_children_with_their_upstreams_span_ids() -> None:
    request, won, lost, refused = spans_of(raced())
    assert {s.parent_id for s in (won, lost, refused)} == {request.span_id}
    assert (won.span_id, lost.span_id) == ("1" * 16, "2" * 16)  # as sent in traceparent
    assert refused.span_id == f"{1:016x}"  # never sent anywhere: a fresh id
    assert all(s.kind == "client" and not s.remote_parent for s in (won, lost, refused))
    assert (won.name, lost.name, refused.name) == (
        "chat claude-haiku",
        "chat gpt-4o-mini",
        "chat gpt-4o",
    )
    race_start = T0 + 0.01
    assert won.start_ns == int(race_start * 1e9) and won.end_ns == int((race_start + 0.5) * 1e9)
    a = won.attributes
    assert a["gateway.attempt.outcome"] == "won" and a["gateway.attempt.speculative"] is False
    assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "anthropic"
    assert (
        a["gen_ai.request.model"] == "claude-haiku" and a["gen_ai.response.model"] == "claude-3-5"
    )
    assert (a["server.address"], a["server.port"]) == ("10.0.0.5", 8080)
    assert a["gen_ai.response.time_to_first_chunk"] == 0.2
    assert a["gen_ai.usage.output_tokens"] == 30 and a["gateway.usage.reported"] is True
    assert a["gen_ai.request.max_tokens"] == 100
    b = lost.attributes
    assert (
        b["gateway.attempt.outcome"] == "cancelled" and b["gateway.attempt.ttft_censored_s"] == 0.2
    )
    assert "gen_ai.response.time_to_first_chunk" not in b and "gen_ai.response.model" not in b
    assert (b["server.address"], b["server.port"]) == ("api.openai.com", 443)
    assert b["gen_ai.usage.input_tokens"] == 10 and b["gateway.usage.reported"] is False
    c = refused.attributes
    assert (
        c["gateway.attempt.outcome"] == "refused_by_budget" and c["gateway.deployment"] == "spare"
    )
    assert refused.start_ns == refused.end_ns == int(race_start * 1e9)
    assert won.error is None and lost.error is None and refused.error is None


def test_failures_are_errors_and_every_string_is_scrubbed() -> None:
    rec = raced()
    assert rec.race is not None
    failed = AttemptRecord("slow", 0.0)
    failed.outcome, failed.end_offset_s = "failed", 0.1
    failed.error = UpstreamError(401, "authentication_error", f"bad key {SECRET}", False)
    rec.race.attempts = [failed]
    rec.race.winner, rec.race.ttft_s, rec.race.refused = None, None, []
    rec.outcome, rec.status, rec.reason = "no_winner", 502, "all_attempts_failed"
    rec.model = f"model-{SECRET}"
    request, attempt = spans_of(rec)
    assert attempt.error == "bad key ***"
    assert attempt.attributes["error.type"] == "authentication_error"
    assert attempt.attributes["gateway.error.message"] == "bad key ***"
    assert attempt.attributes["gateway.error.status"] == 401
    assert request.error == "all_attempts_failed"
    assert request.attributes["error.type"] == "all_attempts_failed"
    assert request.attributes["gen_ai.request.model"] == "model-***"
    assert request.name == "chat model-***"
    assert "gateway.winner" not in request.attributes
    assert SECRET not in repr([request, attempt])


def test_a_rejected_request_is_one_span_with_its_reason() -> None:
    rec = RequestRecord("req-2", "messages", "key-2", "nope")
    rec.outcome, rec.status, rec.reason, rec.total_s = "rejected", 404, "model_not_found", 0.001
    rec.trace = trace()
    (request,) = spans_of(rec)
    assert request.attributes["error.type"] == "model_not_found"
    assert request.attributes["http.response.status_code"] == 404
    assert request.error is None  # a client error is not the server's failure
    assert "gateway.route" not in request.attributes


def test_content_only_when_the_trace_context_holds_it() -> None:
    rec = raced()
    assert rec.trace is not None
    assert not any("messages" in k for s in spans_of(rec) for k in s.attributes)
    rec.trace.input_messages = '[{"role":"user","parts":[]}]'
    rec.trace.output = ["Hello ", "there"]
    request = spans_of(rec)[0]
    assert request.attributes["gen_ai.input.messages"] == rec.trace.input_messages
    assert request.attributes["gen_ai.output.messages"] == (
        '[{"role":"assistant","parts":[{"type":"text","content":"Hello there"}],'
        '"finish_reason":"stop"}]'
    )


def test_no_trace_context_no_spans() -> None:
    rec = raced()
    rec.trace = None
    assert spans_of(rec) == []
