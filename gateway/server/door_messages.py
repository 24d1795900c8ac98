"""The Anthropic Messages front door over HTTP: `POST /v1/messages` (stream and not),
`POST /v1/messages/count_tokens` (an estimate), and Anthropic's shape of the models list
for clients that send `anthropic-version`. Every error on these paths leaves in
Anthropic's error shape (`ErrorShape` registered in `add_routes`).
"""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from aiohttp import web

from gateway.doors.messages_encode import (
    MessagesAssembler,
    MessagesStreamEncoder,
    error_body,
    error_status,
)
from gateway.doors.messages_parse import parse_messages_request
from gateway.rejection import Rejected
from gateway.server.answering import (
    answer_headers,
    complete_answer,
    open_answer,
    respond,
    stream_answer,
)
from gateway.server.errors import MAX_RETRY_AFTER_S, ErrorShape
from gateway.server.keys import ERROR_SHAPES, GATEWAY, KEY
from gateway.server.limits import body_timeout_s, read_body
from gateway.streaming.events import UpstreamError

EPOCH = "1970-01-01T00:00:00Z"  # routes have no creation date
MAX_PAGE = 1000


def anthropic_error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(error_body(status, message, type_, code, param)),
        content_type="application/json",
        headers=headers,
    )


def upstream_error_response(error: UpstreamError, headers: dict[str, str]) -> web.Response:
    """Every attempt failed before any output: Anthropic's status (529 stays 529)."""
    status = error_status(error.status, error.type)
    out = dict(headers)
    delay = error.retry_after_s
    if isinstance(delay, int | float) and not math.isnan(delay) and delay > 0:
        out["retry-after"] = str(max(1, math.ceil(min(delay, MAX_RETRY_AFTER_S))))
    if not error.retryable:
        out["x-should-retry"] = "false"
    return anthropic_error_response(status, error.message, error.type, None, None, out)


async def messages(request: web.Request) -> web.StreamResponse:
    """parse -> pipeline -> encode (Anthropic's event stream or one Message)."""
    limits = request[GATEWAY].config.limits
    chat, answer = await open_answer(
        request, "messages", lambda raw: parse_messages_request(raw, request.headers, limits)
    )
    response_id = "msg_" + answer.request_id.removeprefix("req_")
    if chat.stream:
        encoder = MessagesStreamEncoder(
            response_id, int(time.time()), chat.model, chat.estimated_prompt_tokens()
        )
        return await respond(
            answer, lambda: stream_answer(request, answer, encoder, upstream_error_response)
        )

    async def complete() -> web.StreamResponse:
        assembler = MessagesAssembler()
        outcome = await complete_answer(answer, assembler, upstream_error_response)
        if isinstance(outcome, web.Response):
            return outcome
        return web.Response(
            body=orjson.dumps(assembler.build(response_id, chat.model)),
            content_type="application/json",
            headers=answer_headers(answer.request_id, outcome.deployment),
        )

    return await respond(answer, complete)


async def count_tokens(request: web.Request) -> web.Response:
    """An estimate, not a tokenizer's count: about 4 characters of text per token, 4 per
    message, plus the tools' JSON at the same rate."""
    gateway = request[GATEWAY]
    limits = gateway.config.limits
    raw = await read_body(request, limits.max_body_bytes, body_timeout_s(limits))
    chat = parse_messages_request(raw, request.headers, limits, count_only=True)
    route = gateway.routes.get(chat.model)
    if route is None or not gateway.pipeline.admission.usable(request.get(KEY), route):
        raise Rejected(404, f"model: {chat.model} names no route or deployment", param="model")
    tools = chat.params.get("tools")
    tool_chars = len(orjson.dumps(tools)) if tools else 0
    body = {"input_tokens": chat.estimated_prompt_tokens() + tool_chars // 4}
    return web.json_response(body, dumps=_dumps)


def model_info(name: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": name,
        "display_name": name,
        "created_at": EPOCH,
        "lifecycle": "active",
    }


def anthropic_models(request: web.Request, names: list[str]) -> web.Response:
    """Anthropic's paginated list: `limit` (1..1000, default 20), `after_id`, `before_id`."""
    query = request.query
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE:
        raise Rejected(400, f"limit: must be an integer from 1 to {MAX_PAGE}", param="limit")
    start, stop = 0, len(names)
    if "after_id" in query:
        start = names.index(query["after_id"]) + 1 if query["after_id"] in names else stop
    if "before_id" in query:
        stop = names.index(query["before_id"]) if query["before_id"] in names else 0
        start = max(start, stop - limit)
    page = names[start:stop][:limit]
    body = {
        "data": [model_info(name) for name in page],
        "has_more": start + len(page) < stop if "before_id" not in query else start > 0,
        "first_id": page[0] if page else None,
        "last_id": page[-1] if page else None,
    }
    return web.json_response(body, dumps=_dumps)


def speaks_anthropic(request: web.Request) -> bool:
    path = request.path
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return True
    return path.startswith("/v1/models") and "anthropic-version" in request.headers


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    shapes = app.get(ERROR_SHAPES)
    if shapes is None:
        shapes = app[ERROR_SHAPES] = []
    shapes.append(ErrorShape(speaks_anthropic, anthropic_error_response))


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()
