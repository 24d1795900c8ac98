"""The record sink that exports traces: each sampled request's spans go to OpenTelemetry's
SDK and leave over OTLP/HTTP.

This is the only module that imports OpenTelemetry (the `otel` extra); the runtime imports
it only when `telemetry.traces.enabled` is set. The loop only builds the spans and queues
them (`BatchSpanProcessor.on_end`); the SDK's worker thread batches and sends them, so a
slow or dead collector never holds up a request. Spans keep the ids the request's trace
context chose when it was planned (the upstreams were told them in `traceparent`): a tiny
id generator hands the SDK those ids, one span at a time, on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

import structlog
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from gateway.config.model import Config
from gateway.record import RequestRecord
from gateway.scrub import Scrubber
from gateway.telemetry.spans import SpanBuilder, SpanSpec

log = structlog.get_logger("gateway")

KINDS = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}
MAX_EXPORT_BATCH = 512


class _Counted(SpanExporter):
    """Counts the spans the SDK's worker thread has finished with (sent or failed), so the
    sink knows how many still wait and can drop a whole request's spans, on the loop and
    without a log line per span, before the SDK's queue would drop single spans."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.done = 0  # written by the worker thread only

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            return self.inner.export(spans)
        finally:
            self.done += len(spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _ChosenIds(IdGenerator):
    """Gives the SDK the ids a span was given in advance (random ones otherwise)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0
        self._rng = random.Random()

    def generate_span_id(self) -> int:
        chosen, self.span_id = self.span_id, 0
        return chosen or self._rng.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        chosen, self.trace_id = self.trace_id, 0
        return chosen or self._rng.getrandbits(128) or 1


def _gateway_version() -> str:
    try:
        return version("race-gateway")
    except PackageNotFoundError:
        return "0"


class TraceSink:
    """A `RecordSink`: the spans of every sampled request, exported in the background."""

    def __init__(
        self, config: Config, scrub: Scrubber, exporter: SpanExporter | None = None
    ) -> None:
        traces = config.telemetry.traces
        self.builder = SpanBuilder(config, scrub)
        self._ids = _ChosenIds()
        self._rng = random.Random()
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,  # the gateway sampled when it planned (`Tracing.start`)
            resource=Resource.create({"service.name": traces.service_name}),
            id_generator=self._ids,
            shutdown_on_exit=False,  # Gateway.close() shuts it down
        )
        if exporter is None:
            exporter = OTLPSpanExporter(
                endpoint=traces.endpoint,
                headers={name: secret.reveal() for name, secret in traces.headers.items()},
                timeout=traces.timeout_s,
            )
        self._exporter = _Counted(exporter)
        self._max_queue = traces.max_queue_spans
        self._timeout_s = traces.timeout_s
        self.sent = 0  # spans handed to the SDK
        self.dropped = 0  # spans dropped because the export queue was full
        self._dropping = False
        self.processor = BatchSpanProcessor(
            self._exporter,
            max_queue_size=traces.max_queue_spans,
            max_export_batch_size=min(MAX_EXPORT_BATCH, traces.max_queue_spans),
            export_timeout_millis=traces.timeout_s * 1000,
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("race-gateway", _gateway_version())

    def record(self, rec: RequestRecord) -> None:
        trace = rec.trace
        if trace is None or not trace.sampled:
            return
        specs = self.builder.spans(rec, self._new_span_id)
        waiting = self.sent - self._exporter.done
        if waiting + len(specs) > self._max_queue:  # the collector is slow or down
            self.dropped += len(specs)
            if not self._dropping:
                self._dropping = True
                log.warning("trace_spans_dropped", reason="export queue full", waiting=waiting)
            return
        self._dropping = False
        self.sent += len(specs)
        for spec in specs:
            self._emit(spec, trace.tracestate)

    def _new_span_id(self) -> str:
        return f"{self._rng.getrandbits(64) or 1:016x}"

    def _emit(self, spec: SpanSpec, tracestate: str | None) -> None:
        trace_id = int(spec.trace_id, 16)
        context: Context = Context()
        if spec.parent_id is not None:
            parent = SpanContext(
                trace_id,
                int(spec.parent_id, 16),
                is_remote=spec.remote_parent,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
                trace_state=TraceState.from_header([tracestate]) if tracestate else None,
            )
            context = set_span_in_context(NonRecordingSpan(parent))
        self._ids.trace_id = trace_id  # read only for a root span (no parent)
        self._ids.span_id = int(spec.span_id, 16)
        span = self.tracer.start_span(
            spec.name,
            context=context,
            kind=KINDS[spec.kind],
            attributes=spec.attributes,
            start_time=spec.start_ns,
        )
        self._ids.trace_id = 0
        if spec.error is not None:
            span.set_status(Status(StatusCode.ERROR, spec.error))
        span.end(end_time=spec.end_ns)

    async def flush(self) -> bool:
        """Export every queued span now (tests, and before a shutdown)."""
        return await asyncio.to_thread(self.processor.force_flush)

    async def close(self) -> None:
        """Send what is queued, for at most about `timeout_s`: a dead collector does not
        hold up the gateway's shutdown (the SDK's thread is a daemon)."""
        await _in_daemon_thread(self.provider.shutdown, self._timeout_s + 1)


async def _in_daemon_thread(work: Callable[[], object], timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def run() -> None:
        try:
            work()
        finally:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(finish)

    threading.Thread(target=run, name="trace-shutdown", daemon=True).start()
    try:
        async with asyncio.timeout(timeout_s):
            await done
    except TimeoutError:
        log.warning("trace_export_shutdown_timed_out", timeout_s=timeout_s)
