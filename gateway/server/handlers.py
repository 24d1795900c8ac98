"""HTTP handlers: chat completions (stream and non-stream), models, health, metrics."""

from __future__ import annotations

import asyncio
import time

import orjson
import structlog
from aiohttp import web

from gateway.governance.gate import Decision, OutputTransform, PolicyRejected
from gateway.request import ChatRequest
from gateway.routing.ratelimit import key_limit, ratelimit_headers
from gateway.runtime import Gateway, RequestRejected
from gateway.server import admin, feedback
from gateway.server.errors import ApiError, upstream_error_response
from gateway.server.keys import GATEWAY, KEY_ID, REQUEST_ID
from gateway.server.limits import body_timeout_s, read_body
from gateway.server.parse import parse_chat_request
from gateway.streaming.encode import HEARTBEAT as HEARTBEAT_BYTES
from gateway.streaming.encode import ChunkEncoder, ResponseAssembler
from gateway.streaming.events import UpstreamError
from gateway.streaming.plan import HEARTBEAT, AllFailed, Winner
from gateway.streaming.race import Race

log = structlog.get_logger("gateway.access")
audit = structlog.get_logger("gateway.audit")

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


class SSEResponse(web.StreamResponse):
    """Headers leave with the first body bytes: one write and one packet, not two, on the
    path of the first token."""

    _send_headers_immediately = False


async def chat_completions(request: web.Request) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    started = time.monotonic()
    started_perf = time.perf_counter()
    limits = gateway.config.limits
    raw = await read_body(request, limits.max_body_bytes, body_timeout_s(limits))
    chat = parse_chat_request(raw, gateway.config.limits)
    route = gateway.routes.get(chat.model)
    if route is None:
        raise ApiError(
            404,
            f"The model '{chat.model}' does not exist: it names no route or deployment",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    request_id: str = request[REQUEST_ID]
    key_id = request[KEY_ID]
    await _check_key_limits(
        gateway, key_id, chat.estimated_prompt_tokens() + (chat.max_tokens or 0)
    )
    region = gateway.region_of(request.headers)
    gateway.note_region(region)
    decision = _govern(gateway, chat, route.name, request_id, key_id)
    try:
        race = gateway.prepare(
            decision.chat, route, request_id, region, request.headers, decision.allowed
        )
    except RequestRejected as exc:
        if decision.audit is not None:
            audit.info(
                "governance", request_id=request_id, key=key_id, rule=exc.code, **decision.audit
            )
        raise ApiError(exc.status, exc.message, exc.type, exc.code, exc.param) from None
    setup_s = time.perf_counter() - started_perf
    response_id = "chatcmpl-" + request_id.removeprefix("req_")
    created = int(time.time())
    client_gone = False
    status = 200
    gateway.metrics.in_flight.inc()
    try:
        if chat.stream:
            encoder = ChunkEncoder(response_id, created, chat.model, chat.include_usage)
            resp = await _stream(request, race, encoder, request_id, decision.transform)
        else:
            resp = await _complete(
                gateway, race, response_id, created, chat.model, request_id, decision.transform
            )
        status = resp.status
        return resp
    except (asyncio.CancelledError, ConnectionResetError):
        client_gone = True
        raise
    finally:
        gateway.metrics.in_flight.dec()
        record = await race.aclose(client_gone=client_gone)
        gateway.state.spend.add_record(key_id, record)
        gateway.metrics.key_cost.labels(key_id).inc(sum(a.cost_usd for a in record.attempts))
        winner = next((a for a in record.attempts if a.outcome == "won"), None)
        gateway.metrics.overhead.observe(setup_s)
        log.info(
            "request",
            request_id=request_id,
            route=route.name,
            region=region,
            winner=record.winner,
            status=record.status if record.winner is None else status,
            outcome=record.stream_outcome,
            attempts=len(record.attempts),
            ttft_ms=round(record.ttft_s * 1000, 1) if record.ttft_s is not None else None,
            total_ms=round((time.monotonic() - started) * 1000, 1),
            tokens=winner.output_tokens if winner else 0,
            key=key_id,
            cost_usd=round(sum(a.cost_usd for a in record.attempts), 8),
            wasted_usd=round(record.wasted_cost_usd, 8),
        )


def _govern(
    gateway: Gateway, chat: ChatRequest, route: str, request_id: str, key_id: str
) -> Decision:
    """PII policy and residency: block (400), redact, or restrict the candidates; one audit
    line per request that was touched (types and counts, never values)."""
    try:
        decision = gateway.governance.decide(chat, route, key_id)
    except PolicyRejected as exc:
        audit.info("governance", request_id=request_id, key=key_id, rule=exc.code, **exc.audit)
        gateway.metrics.governance.labels("block").inc()
        raise ApiError(400, exc.message, "invalid_request_error", exc.code) from None
    if decision.audit is not None:
        rule = "redact" if decision.audit.get("redacted") else "restrict"
        audit.info("governance", request_id=request_id, key=key_id, rule=rule, **decision.audit)
        gateway.metrics.governance.labels(rule).inc()
    return decision


async def _check_key_limits(gateway: Gateway, key_id: str, tokens: int) -> None:
    """Per-key daily budget and rate limits, shared across instances: 429 when spent."""
    budget = gateway.config.routing.key_daily_budget_usd
    if budget is not None and await gateway.state.spend.over_budget(key_id, budget):
        raise ApiError(
            429,
            f"the daily budget of ${budget:g} for this key is spent",
            "insufficient_quota",
            "budget_exceeded",
            headers={"x-should-retry": "false"},
        )
    limiter = gateway.state.limiter
    name = key_limit(key_id)
    if limiter.limit_for(name) is None:
        return
    decision = await limiter.check_and_take(name, 1, tokens)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate limit reached for this key",
            "requests",
            "rate_limit_exceeded",
            headers=ratelimit_headers(decision),
        )


def _headers(request_id: str, deployment: str | None) -> dict[str, str]:
    headers = {"x-request-id": request_id}
    if deployment is not None:
        headers["x-gateway-deployment"] = deployment
    return headers


async def _stream(
    request: web.Request,
    race: Race,
    encoder: ChunkEncoder,
    request_id: str,
    transform: OutputTransform | None,
) -> web.StreamResponse:
    response: web.StreamResponse | None = None
    while True:
        outcome = await race.first()
        if outcome is not HEARTBEAT:
            break
        if response is None:  # no winner yet: commit to 200 and keep the connection alive
            response = SSEResponse(headers={**SSE_HEADERS, **_headers(request_id, None)})
            await response.prepare(request)
        await response.write(HEARTBEAT_BYTES)
    if isinstance(outcome, AllFailed):
        if response is None:
            return upstream_error_response(outcome.error, _headers(request_id, None))
        await response.write(encoder.error(outcome.error))
        return response
    assert isinstance(outcome, Winner)
    if response is None:
        response = SSEResponse(headers={**SSE_HEADERS, **_headers(request_id, outcome.deployment)})
        await response.prepare(request)
    else:  # headers went out with the heartbeat: name the winner in a comment SDKs ignore
        await response.write(b": x-gateway-deployment " + outcome.deployment.encode() + b"\n\n")
    events = transform(outcome.events) if transform else outcome.events
    await response.write(encoder.encode(events))
    request.app[GATEWAY].note_version(outcome.deployment, outcome.events)  # after the token
    failed = any(type(e) is UpstreamError for e in events)
    while not failed and not (transform and transform.stopped):
        batch = await race.next_batch()
        if batch is None:
            break
        failed = type(batch[-1]) is UpstreamError
        if transform is not None:
            batch = transform(batch)
        await response.write(encoder.encode(batch))
    if not failed:
        tail = encoder.encode(transform.flush()) if transform and not transform.stopped else b""
        await response.write(tail + encoder.end())
    return response


async def _complete(
    gateway: Gateway,
    race: Race,
    response_id: str,
    created: int,
    model: str,
    request_id: str,
    transform: OutputTransform | None,
) -> web.Response:
    outcome = await race.first()
    if isinstance(outcome, AllFailed):
        return upstream_error_response(outcome.error, _headers(request_id, None))
    assert isinstance(outcome, Winner)
    gateway.note_version(outcome.deployment, outcome.events)
    assembler = ResponseAssembler()
    assembler.add(transform(outcome.events) if transform else outcome.events)
    while assembler.error is None and not (transform and transform.stopped):
        batch = await race.next_batch()
        if batch is None:
            break
        assembler.add(transform(batch) if transform else batch)
    if transform is not None and not transform.stopped:
        assembler.add(transform.flush())
    headers = _headers(request_id, outcome.deployment)
    if assembler.error is not None:
        return upstream_error_response(assembler.error, headers)
    body = assembler.build(response_id, created, model)
    return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)


async def list_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "race-gateway"}
        for name in gateway.routes.names()
    ]
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


async def retrieve_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    if request.app[GATEWAY].routes.get(name) is None:
        raise ApiError(
            404,
            f"The model '{name}' does not exist",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    body = {"id": name, "object": "model", "created": 0, "owned_by": "race-gateway"}
    return web.json_response(body, dumps=_dumps)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=_dumps)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/feedback", feedback.feedback)
    app.router.add_get("/admin/profiles", admin.profiles)
    app.router.add_get("/admin/deployments", admin.deployments)


async def metrics(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.Response(
        body=gateway.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
