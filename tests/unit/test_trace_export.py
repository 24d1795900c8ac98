"""The trace sink's bounds: a collector that does not keep up costs whole requests' spans
(never part of a trace, never a log line per span), and a shutdown does not wait on it
for longer than its export timeout."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
import structlog

pytest.importorskip("opentelemetry.sdk", reason="needs the otel extra (in the dev extra)")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from gateway.config import parse_config
from gateway.record import RequestRecord
from gateway.scrub import Scrubber
from gateway.telemetry.context import TraceContext
from gateway.telemetry.export import TraceSink


class HeldExporter(SpanExporter):
    """Holds every export until released: a collector that hangs."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait()
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def sink(exporter: SpanExporter, **traces: object) -> TraceSink:
    config = parse_config({"telemetry": {"traces": {"enabled": True, **traces}}}, env={})
    return TraceSink(config, Scrubber([]), exporter)


def rejected(n: int, sampled: bool = True) -> RequestRecord:
    rec = RequestRecord(f"req-{n}", "chat", "key-1", "chat", outcome="rejected", status=404)
    rec.trace = TraceContext(f"{n + 1:032x}", f"{n + 1:016x}", None, sampled, started_unix=1.0)
    return rec


async def test_a_full_export_queue_drops_whole_requests_and_says_so_once() -> None:
    exporter = HeldExporter()
    traces = sink(exporter, max_queue_spans=2)
    try:
        with structlog.testing.capture_logs() as logs:
            for n in range(5):  # one span each; the held export keeps 2 waiting
                traces.record(rejected(n))
        assert (traces.sent, traces.dropped) == (2, 3)
        assert [entry["event"] for entry in logs] == ["trace_spans_dropped"]
        traces.record(rejected(9, sampled=False))  # unsampled: nothing to drop
        assert traces.dropped == 3
        exporter.release.set()
        assert await traces.flush()
        traces.record(rejected(5))  # room again
        assert await traces.flush()
        assert [s.context.trace_id for s in exporter.spans] == [1, 2, 6]
    finally:
        exporter.release.set()
        await traces.close()


async def test_closing_does_not_wait_on_a_hung_collector() -> None:
    exporter = HeldExporter()
    traces = sink(exporter, timeout_s=0.2)
    traces.record(rejected(0))
    try:
        with structlog.testing.capture_logs() as logs:
            await traces.close()
        assert [entry["event"] for entry in logs] == ["trace_export_shutdown_timed_out"]
        assert exporter.spans == []
    finally:
        exporter.release.set()
