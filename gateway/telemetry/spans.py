"""A closed request's record as spans: one for the request (kind SERVER, a child of the
client's span when it sent a `traceparent`) and one per attempt (kind CLIENT), budget
refusals included, with the OpenTelemetry GenAI semantic convention attribute names where
they exist and `gateway.*` names for the rest.

Times come from the record's offsets, so nothing was measured per chunk. Every string
attribute goes through the secrets scrubber; prompt and answer text appear only when
`include_content` is set (they are on the record's trace context only then).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import urlsplit

import orjson

from gateway.config.model import Config
from gateway.record import RequestRecord
from gateway.scrub import Scrubber
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.telemetry.context import TraceContext
from gateway.value_class import value_class

AttributeValue = str | bool | int | float | Sequence[str]
Attributes = dict[str, AttributeValue]
SpanKind = Literal["server", "client"]

# gen_ai.provider.name for the provider kinds that have a well-known value; others use
# their kind as it is.
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "deepseek": "deepseek",
    "mistral": "mistral_ai",
    "groq": "groq",
    "ollama_openai": "ollama",
}


@value_class
class SpanSpec:
    """One finished span, independent of any tracing library."""

    name: str
    kind: SpanKind
    trace_id: str
    span_id: str
    parent_id: str | None  # None: a root span
    remote_parent: bool  # the parent is the client's span
    start_ns: int
    end_ns: int
    attributes: Attributes
    error: str | None = None  # the span's status is ERROR with this description


@value_class
class Upstream:
    """What a deployment's spans say about where it runs."""

    provider: str  # gen_ai.provider.name
    model: str
    address: str | None
    port: int | None


def upstreams_of(config: Config) -> dict[str, Upstream]:
    out: dict[str, Upstream] = {}
    for name, dep in config.deployments.items():
        provider = config.providers.get(dep.provider)
        address = port = None
        kind = "unknown"
        if provider is not None:
            kind = provider.kind
            parts = urlsplit(provider.base_url)
            address = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
        out[name] = Upstream(PROVIDER_NAMES.get(kind, kind), dep.model, address, port)
    return out


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SpanBuilder:
    def __init__(self, config: Config, scrub: Scrubber) -> None:
        self.upstreams = upstreams_of(config)
        self.scrub = scrub

    def spans(self, rec: RequestRecord, new_id: Callable[[], str]) -> list[SpanSpec]:
        """The request's spans; `new_id()` gives span ids for attempts that have none
        (budget refusals, which never got an upstream request)."""
        trace = rec.trace
        if trace is None:
            return []
        start = trace.started_unix
        spans = [self._request_span(rec, trace, start)]
        race = rec.race
        if race is not None:
            race_start = start + rec.setup_s
            for attempt in race.attempts:
                span_id = trace.attempt_span_ids.get(attempt.deployment) or new_id()
                spans.append(self._attempt_span(rec, race, attempt, trace, span_id, race_start))
            for deployment, offset in race.refused:
                spans.append(
                    self._refused_span(rec, deployment, offset, trace, new_id(), race_start)
                )
        return spans

    # -- the request ---------------------------------------------------------

    def _request_span(self, rec: RequestRecord, trace: TraceContext, start: float) -> SpanSpec:
        operation = _operation(rec)
        race = rec.race
        attrs: Attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.stream": rec.stream,
            "gateway.request_id": rec.request_id,
            "gateway.door": rec.door,
            "gateway.key_id": rec.key_id,
            "gateway.outcome": rec.outcome,
            "http.response.status_code": rec.status,
            "gateway.setup_s": rec.setup_s,
        }
        if rec.model is not None:
            attrs["gen_ai.request.model"] = rec.model
        _put(attrs, "gateway.route", rec.route)
        _put(attrs, "gateway.tier", rec.tier)
        _put(attrs, "gateway.region", rec.region)
        _put(attrs, "gateway.reason", rec.reason)
        _request_params(attrs, trace)
        if race is not None:
            attrs["gateway.strategy"] = race.strategy
            attrs["gateway.attempts"] = len(race.attempts)
            attrs["gateway.budget_refused"] = race.budget_refused
            attrs["gateway.cost_usd"] = rec.cost_usd
            attrs["gateway.wasted_usd"] = race.wasted_cost_usd
            attrs["gateway.wasted_tokens"] = race.wasted_tokens
            won = next((a for a in race.attempts if a.outcome == "won"), None)
            if race.ttft_s is not None:
                attrs["gen_ai.response.time_to_first_chunk"] = rec.setup_s + race.ttft_s
            if won is not None:
                attrs["gateway.winner"] = won.deployment
                upstream = self.upstreams.get(won.deployment)
                if upstream is not None:
                    attrs["gen_ai.provider.name"] = upstream.provider
                _usage(attrs, won)
                _put(attrs, "gen_ai.response.model", rec.model_version)
                attrs["gen_ai.response.finish_reasons"] = [_finish(won, rec)]
        error = None
        if rec.status >= 400 or rec.outcome == "failed":
            attrs["error.type"] = rec.reason or str(rec.status)
            if rec.status >= 500 or rec.outcome == "failed":
                error = rec.reason or f"status {rec.status}"
        if trace.input_messages is not None:
            attrs["gen_ai.input.messages"] = trace.input_messages
        if trace.output is not None and rec.race is not None and rec.race.winner is not None:
            attrs["gen_ai.output.messages"] = _output_messages(trace, rec)
        name = f"{operation} {rec.model}" if rec.model else operation
        return SpanSpec(
            name=self.scrub.text(name),
            kind="server",
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            parent_id=trace.parent_span_id,
            remote_parent=trace.parent_span_id is not None,
            start_ns=_ns(start),
            end_ns=_ns(start + rec.total_s),
            attributes=self._scrubbed(attrs),
            error=self.scrub.text(error) if error is not None else None,
        )

    # -- the attempts --------------------------------------------------------

    def _attempt_span(
        self,
        rec: RequestRecord,
        race: RaceRecord,
        attempt: AttemptRecord,
        trace: TraceContext,
        span_id: str,
        race_start: float,
    ) -> SpanSpec:
        attrs = self._attempt_attributes(rec, attempt.deployment, trace)
        attrs["gateway.attempt.outcome"] = attempt.outcome
        attrs["gateway.attempt.speculative"] = attempt.speculative
        attrs["gateway.attempt.start_offset_s"] = attempt.start_offset_s
        attrs["gateway.cost_usd"] = attempt.cost_usd
        attrs["gateway.usage.reported"] = attempt.usage is not None
        _usage(attrs, attempt)
        if attempt.ttft_s is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = attempt.ttft_s
        if attempt.censored_ttft_s is not None:  # a loser: its TTFT is at least this
            attrs["gateway.attempt.ttft_censored_s"] = attempt.censored_ttft_s
        if attempt.outcome == "won":
            _put(attrs, "gen_ai.response.model", rec.model_version)
            attrs["gen_ai.response.finish_reasons"] = [_finish(attempt, rec)]
        elif attempt.finish_reason is not None:
            attrs["gen_ai.response.finish_reasons"] = [attempt.finish_reason]
        error = None
        if attempt.error is not None:
            attrs["error.type"] = attempt.error.type
            attrs["gateway.error.status"] = attempt.error.status
            attrs["gateway.error.message"] = attempt.error.message
            if attempt.outcome != "cancelled":  # failed, timed out, or cut after winning
                error = attempt.error.message
        elif attempt.outcome == "timed_out":
            attrs["error.type"] = "upstream_timeout"
            error = "no first token in time"
        end = attempt.end_offset_s if attempt.end_offset_s is not None else race.total_s
        start = race_start + attempt.start_offset_s
        return self._span(
            rec, attempt.deployment, trace, span_id, attrs, error, start, race_start + end
        )

    def _refused_span(
        self,
        rec: RequestRecord,
        deployment: str,
        offset: float,
        trace: TraceContext,
        span_id: str,
        race_start: float,
    ) -> SpanSpec:
        """An attempt the extra-load budget did not start: no upstream request was sent."""
        attrs = self._attempt_attributes(rec, deployment, trace)
        attrs["gateway.attempt.outcome"] = "refused_by_budget"
        attrs["gateway.attempt.speculative"] = True
        attrs["gateway.attempt.start_offset_s"] = offset
        at = race_start + offset
        return self._span(rec, deployment, trace, span_id, attrs, None, at, at)

    def _attempt_attributes(
        self, rec: RequestRecord, deployment: str, trace: TraceContext
    ) -> Attributes:
        attrs: Attributes = {
            "gen_ai.operation.name": _operation(rec),
            "gen_ai.request.stream": rec.stream,
            "gateway.deployment": deployment,
        }
        upstream = self.upstreams.get(deployment)
        if upstream is not None:
            attrs["gen_ai.provider.name"] = upstream.provider
            attrs["gen_ai.system"] = upstream.provider  # the name before semconv 1.37
            attrs["gen_ai.request.model"] = upstream.model
            _put(attrs, "server.address", upstream.address)
            if upstream.port is not None:
                attrs["server.port"] = upstream.port
        _request_params(attrs, trace)
        return attrs

    def _span(
        self,
        rec: RequestRecord,
        deployment: str,
        trace: TraceContext,
        span_id: str,
        attrs: Attributes,
        error: str | None,
        start: float,
        end: float,
    ) -> SpanSpec:
        upstream = self.upstreams.get(deployment)
        model = upstream.model if upstream is not None else deployment
        return SpanSpec(
            name=self.scrub.text(f"{_operation(rec)} {model}"),
            kind="client",
            trace_id=trace.trace_id,
            span_id=span_id,
            parent_id=trace.span_id,
            remote_parent=False,
            start_ns=_ns(start),
            end_ns=_ns(max(end, start)),
            attributes=self._scrubbed(attrs),
            error=self.scrub.text(error) if error is not None else None,
        )

    def _scrubbed(self, attrs: Attributes) -> Attributes:
        text = self.scrub.text
        for key, value in attrs.items():
            if isinstance(value, str):
                attrs[key] = text(value)
            elif isinstance(value, list | tuple):
                attrs[key] = [text(v) if isinstance(v, str) else v for v in value]
        return attrs


def _operation(rec: RequestRecord) -> str:
    return "embeddings" if rec.door == "embeddings" else "chat"


def _put(attrs: Attributes, key: str, value: str | None) -> None:
    if value is not None:
        attrs[key] = value


def _usage(attrs: Attributes, attempt: AttemptRecord) -> None:
    attrs["gen_ai.usage.input_tokens"] = attempt.input_tokens
    attrs["gen_ai.usage.output_tokens"] = attempt.output_tokens
    usage = attempt.usage
    if usage is not None:
        if usage.cached:
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached
        if usage.reasoning:
            attrs["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning


def _finish(won: AttemptRecord, rec: RequestRecord) -> str:
    """The winner's finish reason; `error` when its stream ended without one (the GenAI
    conventions' value for a generation that failed or was cut)."""
    if won.finish_reason is not None and won.error is None:
        return won.finish_reason
    return "error" if rec.outcome != "completed" or won.error is not None else "stop"


def _request_params(attrs: Attributes, trace: TraceContext) -> None:
    for name, value in trace.params.items():
        if name == "stop":
            attrs["gen_ai.request.stop_sequences"] = [str(v) for v in value]
        elif name == "n":
            if value != 1:
                attrs["gen_ai.request.choice.count"] = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            attrs[f"gen_ai.request.{name}"] = value


def _output_messages(trace: TraceContext, rec: RequestRecord) -> str:
    won = next((a for a in rec.race.attempts if a.outcome == "won"), None) if rec.race else None
    message = {
        "role": "assistant",
        "parts": [{"type": "text", "content": "".join(trace.output or ())}],
        "finish_reason": _finish(won, rec) if won is not None else "error",
    }
    return orjson.dumps([message]).decode()
