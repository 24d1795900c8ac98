"""aiohttp application of one simulated server: routes, auth, logging, handshake delay.

The handler runs under `handler_cancellation=True`, so a client that goes away
cancels it at once, even while it waits for the first token; the record then
says `client_disconnect` with the time it happened.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from gateway.sim.config import (
    SimModelConfig,
    SimServerConfig,
    check_model_value,
    normalize_value,
)
from gateway.sim.embed_serve import EMBED_PATHS, GEMINI_METHOD, serve_embeddings
from gateway.sim.engine import play_body, play_stream
from gateway.sim.log import PENDING, SimLog, SimRecord, now
from gateway.sim.plan import (
    degraded_config,
    hour_of,
    plan_request,
    request_rng,
    scaled_config,
    step_degraded,
    ttft_multiplier,
)
from gateway.sim.wire import ErrorReply, WireProtocol
from gateway.sim.wire_anthropic import AnthropicWire
from gateway.sim.wire_gemini import GeminiWire
from gateway.sim.wire_ollama import OllamaWire
from gateway.sim.wire_openai import OpenAIWire
from gateway.sim.wire_responses import ResponsesWire
from gateway.value_class import value_class

PROTOCOLS: dict[str, WireProtocol] = {
    "openai": OpenAIWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
    "ollama": OllamaWire(),
}
CHAT_PATHS: dict[str, tuple[str, ...]] = {
    # /beta: DeepSeek's chat prefix completion (a continuation's path)
    "openai": ("/v1/chat/completions", "/chat/completions", "/beta/chat/completions"),
    "anthropic": ("/v1/messages",),
    "gemini": ("/v1beta/models/{target}",),
    "ollama": ("/api/chat",),
}
# Where the real service also speaks OpenAI's Responses API (same auth, models, errors).
RESPONSES_PATHS: dict[str, tuple[str, ...]] = {"openai": ("/v1/responses", "/responses")}
RESPONSES_WIRE = ResponsesWire()
MODELS_PATHS: dict[str, str] = {
    "openai": "/v1/models",
    "anthropic": "/v1/models",
    "gemini": "/v1beta/models",
    "ollama": "/api/tags",
}
MAX_BODY_BYTES = 32 * 1024 * 1024
REGION_HEADER = "x-sim-region"  # per-request override of the cluster's current region


@dataclass(slots=True)
class SimShared:
    """State shared by every server of a cluster: seed, per-model request counters and
    normal/degraded states, the log, and the clock (epoch seconds: its UTC hour picks a
    model's `hourly_multipliers`) and current client region (`region_multipliers`)."""

    seed: int
    log: SimLog
    counters: dict[tuple[str, str], int] = field(default_factory=dict)
    degraded: dict[tuple[str, str], bool] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    region: str | None = None

    def next_request(self, server: str, model: str, cfg: SimModelConfig) -> tuple[int, bool]:
        """(n, degraded) for the model's next request; steps its two-state chain."""
        key = (server, model)
        n = self.counters.get(key, 0)
        self.counters[key] = n + 1
        if cfg.degraded is None:
            return n, False
        u = request_rng(self.seed, server, model, n, "state").random()
        self.degraded[key] = state = step_degraded(cfg, self.degraded.get(key, False), u)
        return n, state

    def reset(self) -> None:
        self.counters.clear()
        self.degraded.clear()
        self.log.clear()


@value_class
class ServerState:
    name: str
    config: SimServerConfig
    shared: SimShared

    @property
    def proto(self) -> WireProtocol:
        return PROTOCOLS[self.config.kind]


@value_class
class ConnInfo:
    arrival: float
    connection_id: int
    new_connection: bool
    handshake_ms: float  # the connection's handshake (0 on a reused connection)
    handshake_wait_ms: float  # what is left of it to wait before answering


STATE = web.AppKey("sim_state", ServerState)
CONN = web.RequestKey("sim_conn", ConnInfo)
# The connection a request came on, where it is not `request.transport`: the streams of
# an HTTP/2 connection (h2serve.py) share it, but each has a transport of its own, whose
# close() (a cut) resets just that stream.
CONNECTION = web.RequestKey("sim_connection", object)


class ResponseSink:
    """engine.Sink over an aiohttp StreamResponse."""

    def __init__(self, request: web.Request, headers: dict[str, str]) -> None:
        self.request = request
        self.response = web.StreamResponse(status=200, headers=headers)

    async def open(self, content_type: str) -> None:
        self.response.headers["Content-Type"] = content_type
        await self.response.prepare(self.request)

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    async def send(self, content_type: str, body: bytes) -> None:
        self.response.headers["Content-Type"] = content_type
        self.response.content_length = len(body)
        await self.response.prepare(self.request)
        await self.response.write(body)
        await self.response.write_eof()

    async def close(self) -> None:
        await self.response.write_eof()

    def cut(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then FIN: no terminator


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _connections(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Track TCP connections; charge `handshake_ms` on each connection's first request,
    counted from when the connection was accepted (a connection opened ahead of need, as
    a TLS client's handshake would, has paid some or all of it before its request)."""
    if request.path.startswith("/_sim/"):
        return await handler(request)
    st = request.app[STATE]
    arrival = now()
    tracker = st.shared.log.connections
    connection = request.get(CONNECTION)
    conn_id, is_new = tracker.see(request.transport if connection is None else connection)
    paid = wait = 0.0
    if is_new:
        paid = wait = st.config.handshake_ms
        accepted = tracker.accepted_at(request.protocol if connection is None else connection)
        if accepted is not None and paid > 0:
            wait = max(0.0, paid - (arrival - accepted) * 1000)
    request[CONN] = ConnInfo(arrival, conn_id, is_new, paid, wait)
    if handler is not _chat and wait > 0:
        await asyncio.sleep(wait / 1000)
    return await handler(request)


def _error_response(record: SimRecord, err: ErrorReply) -> web.Response:
    record.status = err.status
    record.outcome = f"error_{err.status}"
    record.headers_sent = now()
    reason = "Overloaded" if err.status == 529 else None
    return web.Response(status=err.status, reason=reason, body=err.body, headers=dict(err.headers))


async def _embeddings(request: web.Request) -> web.StreamResponse:
    return await serve_embeddings(request, request.app[STATE], request[CONN])


async def _chat(request: web.Request) -> web.StreamResponse:
    st = request.app[STATE]
    info = request[CONN]
    if (request.match_info.get("target") or "").endswith(GEMINI_METHOD):
        if info.handshake_wait_ms > 0:  # the middleware leaves the chat route's to it
            await asyncio.sleep(info.handshake_wait_ms / 1000)
        return await serve_embeddings(request, st, info)
    log = st.shared.log
    record = log.open(
        server=st.name,
        kind=st.config.kind,
        path=request.path,
        connection_id=info.connection_id,
        new_connection=info.new_connection,
        handshake_ms=info.handshake_ms,
        arrival=info.arrival,
        headers=request.headers,
        handshake_wait_ms=info.handshake_wait_ms,
    )
    await log.changed()
    sink: ResponseSink | None = None
    try:
        sink = ResponseSink(request, {})
        return await _serve_chat(request, st, record, sink)
    except asyncio.CancelledError:
        _disconnected(record)
        raise
    except ConnectionError:
        _disconnected(record)
        return sink.response if sink is not None else web.Response(status=499)
    finally:
        record.end = now()
        await log.changed()


def _disconnected(record: SimRecord) -> None:
    record.disconnect = now()
    if record.outcome == PENDING:
        record.outcome = "client_disconnect"


async def _serve_chat(
    request: web.Request, st: ServerState, record: SimRecord, sink: ResponseSink
) -> web.StreamResponse:
    proto: WireProtocol = st.proto
    if request.path in RESPONSES_PATHS.get(st.config.kind, ()):
        proto = RESPONSES_WIRE
    rid = uuid.uuid4().hex[:24]
    err = proto.check_auth(request.headers, request.query, rid)
    if err is None:
        body = await request.read()
        parsed = proto.parse_request(body, request.match_info.get("target"), request.query, rid)
    else:
        parsed = err
    cfg = None
    numbered: tuple[int, bool] | None = None  # (n, degraded) of a chat model's request
    if not isinstance(parsed, ErrorReply):
        record.model, record.stream = parsed.model, parsed.stream
        record.last_user_text = parsed.last_user_text[:500]  # what the upstream received
        record.continued_from = parsed.continue_from
        cfg = st.config.models.get(parsed.model)
        if cfg is not None and cfg.type != "embedding":
            # numbered in arrival order, before the handshake: its draws are the same
            # whatever the connection paid
            numbered = st.shared.next_request(st.name, parsed.model, cfg)
    if record.handshake_wait_ms > 0:
        await asyncio.sleep(record.handshake_wait_ms / 1000)
    if isinstance(parsed, ErrorReply):
        return _error_response(record, parsed)
    if cfg is None:
        return _error_response(record, proto.error(404, model=parsed.model, request_id=rid))
    if cfg.type == "embedding":
        message = f"model {parsed.model!r} is an embedding model; it does not chat"
        return _error_response(
            record, proto.error(400, model=parsed.model, message=message, request_id=rid)
        )
    assert numbered is not None  # a chat model's request
    n, degraded = numbered
    record.degraded = degraded
    if degraded:
        cfg = degraded_config(cfg)
    if cfg.hourly_multipliers is not None or cfg.region_multipliers:
        hour = hour_of(st.shared.clock())
        region = request.headers.get(REGION_HEADER) or st.shared.region
        factor = ttft_multiplier(cfg, hour, region)
        record.hour, record.region, record.ttft_multiplier = hour, region, factor
        cfg = scaled_config(cfg, factor)
    plan = plan_request(
        cfg,
        request_rng(st.shared.seed, st.name, parsed.model, n),
        parsed,
        model=parsed.model,
        request_n=n,
        created=time.time(),
        frames=lambda reply: proto.renderer(parsed, reply, time.time).token_count(),
    )
    record.request_n, record.planned_ttft_ms = n, plan.ttft_ms
    record.straggler, record.planned_fault = plan.straggler, plan.fault
    if plan.error_status is not None:
        err = proto.error(
            plan.error_status,
            model=parsed.model,
            retry_after_s=plan.retry_after_s,
            request_id=rid,
        )
        return _error_response(record, err)
    renderer = proto.renderer(parsed, plan.reply, time.time)
    sink.response.headers.update(proto.response_headers(rid))
    sink.response.headers["Cache-Control"] = "no-cache"
    start = now()
    if parsed.stream:
        await play_stream(
            plan,
            renderer,
            sink,
            record,
            st.shared.log,
            start=start,
            prelude=cfg.prelude,
            keepalive_ms=cfg.keepalive_ms,
            headers_at_first_token=cfg.headers_at_first_token,
        )
        return sink.response
    status = await play_body(
        plan, renderer, sink, record, start=start, keepalive_ms=cfg.keepalive_ms
    )
    if status is not None:
        err = proto.error(status, model=parsed.model, request_id=rid)
        response = _error_response(record, err)
        record.outcome = "midstream_error"
        return response
    return sink.response


async def _models(request: web.Request) -> web.Response:
    st = request.app[STATE]
    body = st.proto.models_body(st.config.models, time.time())
    return web.Response(body=body, content_type="application/json")


async def _sim_log(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[STATE].shared.log.to_json(), content_type="application/json"
    )


async def _sim_reset(request: web.Request) -> web.Response:
    request.app[STATE].shared.reset()
    return web.Response(body=b'{"ok":true}', content_type="application/json")


def reconfigure(config: SimServerConfig, model: str, changes: dict[str, Any]) -> None:
    """Change a model's behaviour while running (tests and regress drills: a new version,
    a slower model, a failing one). Unknown fields raise ValueError, and so do bad
    `hourly_multipliers` / `region_multipliers` (lists become tuples of floats)."""
    current = config.models.get(model)
    if current is None:
        raise ValueError(f"unknown model {model!r}")
    known = {f.name for f in dataclasses.fields(current)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown model setting(s): {', '.join(unknown)}")
    changes = dict(changes)
    for key in ("hourly_multipliers", "region_multipliers"):
        if key in changes:
            problem = check_model_value(key, changes[key])
            if problem is not None:
                raise ValueError(f"{key}: {problem}")
            changes[key] = normalize_value(key, changes[key])
    config.models[model] = dataclasses.replace(current, **changes)


async def _sim_configure(request: web.Request) -> web.Response:
    st = request.app[STATE]
    try:
        changes = orjson.loads(await request.read())
        if not isinstance(changes, dict):
            raise ValueError("body must be a JSON object of model settings")
        reconfigure(st.config, request.match_info["model"], changes)
    except (ValueError, orjson.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.Response(body=b'{"ok":true}', content_type="application/json")


async def _sim_region(request: web.Request) -> web.Response:
    """POST {"region": "eu"} (or null): the client region requests are simulated for."""
    try:
        body = orjson.loads(await request.read())
        region = body.get("region") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not (region is None or isinstance(region, str)):
            raise ValueError('body must be {"region": <string or null>}')
    except (ValueError, orjson.JSONDecodeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE].shared.region = region or None
    return web.Response(body=b'{"ok":true}', content_type="application/json")


def make_app(name: str, config: SimServerConfig, shared: SimShared) -> web.Application:
    app = web.Application(middlewares=[_connections], client_max_size=MAX_BODY_BYTES)
    app[STATE] = ServerState(name, config, shared)
    for path in CHAT_PATHS[config.kind] + RESPONSES_PATHS.get(config.kind, ()):
        app.router.add_post(path, _chat)
    for path in EMBED_PATHS.get(config.kind, ()):
        app.router.add_post(path, _embeddings)
    app.router.add_get(MODELS_PATHS[config.kind], _models)
    app.router.add_get("/_sim/log", _sim_log)
    app.router.add_post("/_sim/reset", _sim_reset)
    app.router.add_post("/_sim/models/{model}", _sim_configure)
    app.router.add_post("/_sim/region", _sim_region)
    return app
