"""The simulated embeddings endpoint of each server kind (wire formats in wire_embed.py).

One call is one draw, like a chat request of the same model: an error status by the
model's error rates, else the whole answer after its TTFT draw (degraded states apply;
hourly and regional multipliers do not). A chat model refuses embeddings with a 400, as
real services do.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.sim.log import PENDING, SimRecord, now
from gateway.sim.plan import degraded_config, draw_ttft, error_status, request_rng
from gateway.sim.wire_embed import (
    EmbedWireRequest,
    parse_gemini,
    parse_ollama,
    parse_openai,
    render_gemini,
    render_ollama,
    render_openai,
    vector,
)

if TYPE_CHECKING:
    from gateway.sim.app import ConnInfo, ServerState

EMBED_PATHS: dict[str, tuple[str, ...]] = {
    "openai": ("/v1/embeddings", "/embeddings"),
    "ollama": ("/api/embed",),
}
GEMINI_METHOD = ":batchEmbedContents"  # on the chat route /v1beta/models/{target}


async def serve_embeddings(
    request: web.Request, st: ServerState, info: ConnInfo
) -> web.StreamResponse:
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
    record.stream = False
    await log.changed()
    try:
        return await _answer(request, st, record)
    except asyncio.CancelledError:
        record.disconnect = now()
        if record.outcome == PENDING:
            record.outcome = "client_disconnect"
        raise
    finally:
        record.end = now()
        await log.changed()


def _error(record: SimRecord, status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    record.status = status
    record.outcome = f"error_{status}"
    record.headers_sent = now()
    return web.Response(status=status, body=body, headers=headers)


async def _answer(request: web.Request, st: ServerState, record: SimRecord) -> web.Response:
    proto = st.proto
    kind = st.config.kind
    rid = uuid.uuid4().hex[:24]
    err = proto.check_auth(request.headers, request.query, rid)
    if err is not None:
        return _error(record, err.status, err.body, dict(err.headers))
    body = await request.read()
    parsed: EmbedWireRequest | tuple[str, str | None]
    if kind == "gemini":
        parsed = parse_gemini(body, request.match_info.get("target") or "")
    elif kind == "ollama":
        parsed = parse_ollama(body)
    else:
        parsed = parse_openai(body)
    if isinstance(parsed, tuple):
        err = proto.error(400, message=parsed[0], request_id=rid)
        return _error(record, 400, err.body, dict(err.headers))
    record.model = parsed.model
    record.last_user_text = "\n".join(parsed.keys)[:500]  # what the upstream really received
    cfg = st.config.models.get(parsed.model)
    if cfg is None:
        err = proto.error(404, model=parsed.model, request_id=rid)
        return _error(record, 404, err.body, dict(err.headers))
    dims = parsed.dimensions or cfg.dimensions
    problem = None
    if cfg.type != "embedding":
        problem = f"model {parsed.model!r} does not support embeddings"
    elif dims > cfg.dimensions:
        problem = f"dimensions must be at most {cfg.dimensions} for model {parsed.model!r}"
    if problem is not None:
        err = proto.error(400, model=parsed.model, message=problem, request_id=rid)
        return _error(record, 400, err.body, dict(err.headers))
    n, degraded = st.shared.next_request(st.name, parsed.model, cfg)
    record.request_n, record.degraded = n, degraded
    if degraded:
        cfg = degraded_config(cfg)
    rng = request_rng(st.shared.seed, st.name, parsed.model, n, "embed")
    u_error, z, u_straggler = rng.random(), rng.gauss(0.0, 1.0), rng.random()
    status = error_status(cfg, u_error)
    latency_ms, record.straggler = draw_ttft(cfg, z, u_straggler)
    record.planned_ttft_ms = latency_ms
    if status is not None:
        err = proto.error(
            status, model=parsed.model, retry_after_s=cfg.retry_after_s, request_id=rid
        )
        return _error(record, status, err.body, dict(err.headers))
    await asyncio.sleep(latency_ms / 1000)
    vectors = [vector(key, dims) for key in parsed.keys]
    model = cfg.model_version or parsed.model
    if kind == "gemini":
        payload = render_gemini(vectors)
    elif kind == "ollama":
        payload = render_ollama(parsed, vectors, model)
    else:
        payload = render_openai(parsed, vectors, model)
    record.status = 200
    record.headers_sent = record.first_token = now()
    record.tokens_sent = len(vectors)
    record.outcome = "completed"
    headers = {**proto.response_headers(rid), "Content-Type": "application/json"}
    return web.Response(body=payload, headers=headers)
