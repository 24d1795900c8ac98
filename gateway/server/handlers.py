"""HTTP handlers: chat completions (stream and non-stream), models, health, metrics."""

from __future__ import annotations

import time

import orjson
from aiohttp import web

from gateway.doors.chat_parse import parse_chat_request
from gateway.routing.table import ResolvedRoute
from gateway.server import (
    admin,
    admin_console,
    admin_keys,
    console_ui,
    door_messages,
    door_responses,
    feedback,
)
from gateway.server.answering import (
    answer_headers,
    complete_answer,
    open_answer,
    respond,
    stream_answer,
)
from gateway.server.door_embeddings import embeddings
from gateway.server.errors import ApiError, upstream_error_response
from gateway.server.keys import GATEWAY, KEY
from gateway.streaming.encode import ChunkEncoder, ResponseAssembler


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """parse -> pipeline -> encode (OpenAI Chat Completions chunks or one JSON body)."""
    limits = request[GATEWAY].config.limits
    chat, answer = await open_answer(request, "chat", lambda raw: parse_chat_request(raw, limits))
    response_id = "chatcmpl-" + answer.request_id.removeprefix("req_")
    created = int(time.time())
    if chat.stream:
        encoder = ChunkEncoder(response_id, created, chat.model, chat.include_usage)
        return await respond(
            answer, lambda: stream_answer(request, answer, encoder, upstream_error_response)
        )

    async def complete() -> web.StreamResponse:
        assembler = ResponseAssembler()
        outcome = await complete_answer(answer, assembler, upstream_error_response)
        if isinstance(outcome, web.Response):
            return outcome
        body = assembler.build(response_id, created, chat.model)
        return web.Response(
            body=orjson.dumps(body),
            content_type="application/json",
            headers=answer_headers(answer.request_id, outcome.deployment),
        )

    return await respond(answer, complete)


async def list_models(request: web.Request) -> web.Response:
    """The routes (and deployments, where direct access is on) the caller's key may use."""
    gateway = request[GATEWAY]
    usable = gateway.pipeline.admission.usable
    key = request.get(KEY)
    routes = [route for route in gateway.routes.routes() if usable(key, route)]
    if "anthropic-version" in request.headers:  # an Anthropic client: its list shape
        names = [route.name for route in routes if route.type == "chat"]
        return door_messages.anthropic_models(request, names)
    data = [model_object(route) for route in routes]
    return web.json_response({"object": "list", "data": data}, dumps=_dumps)


async def retrieve_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    gateway = request[GATEWAY]
    route = gateway.routes.get(name)
    if route is None or not gateway.pipeline.admission.usable(request.get(KEY), route):
        raise ApiError(
            404,
            f"The model '{name}' does not exist",
            "invalid_request_error",
            "model_not_found",
            "model",
        )
    if "anthropic-version" in request.headers:
        return web.json_response(door_messages.model_info(route.name), dumps=_dumps)
    return web.json_response(model_object(route), dumps=_dumps)


def model_object(route: ResolvedRoute) -> dict[str, object]:
    """An OpenAI model object; `type` (chat | embedding) says which endpoint serves it."""
    return {
        "id": route.name,
        "object": "model",
        "created": 0,
        "owned_by": "race-gateway",
        "type": route.type,
    }


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, dumps=_dumps)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    door_responses.add_routes(app)
    door_messages.add_routes(app)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/feedback", feedback.feedback)
    app.router.add_get("/admin/profiles", admin.profiles)
    app.router.add_get("/admin/deployments", admin.deployments)
    app.router.add_post("/admin/reload", admin.reload)
    admin_keys.add_routes(app)
    admin_console.add_routes(app)  # /admin/live, recent, costs, upstreams
    console_ui.add_routes(app)  # /ui


async def metrics(request: web.Request) -> web.Response:
    gateway = request[GATEWAY]
    return web.Response(
        body=gateway.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"}
    )


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
