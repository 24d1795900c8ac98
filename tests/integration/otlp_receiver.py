"""An OTLP/HTTP trace receiver for tests: an aiohttp server on a free port that decodes each
export (protobuf, as `opentelemetry-exporter-otlp-proto-http` sends it) into plain spans."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

PATH = "/v1/traces"


@dataclass
class ReceivedSpan:
    name: str
    kind: str  # "server" | "client" | ...
    trace_id: str  # hex, as in a traceparent
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status: str  # "unset" | "ok" | "error"
    status_message: str
    resource: dict[str, Any]


@dataclass
class Receiver:
    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # raw (decompressed) export bodies

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]

    def of_kind(self, kind: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.kind == kind]


def value_of(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def attributes_of(items: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in items if isinstance(kv, KeyValue)}


def decode(body: bytes) -> list[ReceivedSpan]:
    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    out = []
    for resource_spans in message.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                kind = Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_").lower()
                status = Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_")
                out.append(
                    ReceivedSpan(
                        name=span.name,
                        kind=kind,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex() or None,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        attributes=attributes_of(span.attributes),
                        status=status.lower(),
                        status_message=span.status.message,
                        resource=resource,
                    )
                )
    return out


@asynccontextmanager
async def otlp_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()

    async def export(request: web.Request) -> web.Response:
        body = await request.read()
        encoding = request.headers.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        receiver.headers.append({k.lower(): v for k, v in request.headers.items()})
        receiver.bodies.append(body)
        receiver.spans.extend(decode(body))
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post(PATH, export)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}{PATH}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
