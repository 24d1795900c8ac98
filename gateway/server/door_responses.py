"""The Responses front door: `POST /v1/responses` (stream and non-stream) through the same
pipeline as chat, plus `GET` / `DELETE /v1/responses/{id}` for stored responses.

Stateless by default: a response is stored only when the client sends `store: true` (the
real API's default is true; a gateway that kept every conversation unasked would be a
surprise), or when it sends no `store` and `responses.store_by_default` is on.
`previous_response_id` prepends the stored conversation of that response, and an
`item_reference` stands for an output item of a stored response (its id names the
response); an unknown, expired or another key's id is a 404. A stream's closing event
leaves only after the response is stored, so a client that starts the next turn on
`response.completed` always finds it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from aiohttp import web

from gateway.config.model import LimitsConfig
from gateway.doors.responses_encode import ResponsesAssembler, ResponsesStreamEncoder, TextFrame
from gateway.doors.responses_input import InputReader
from gateway.doors.responses_parse import (
    ResponsesContext,
    parse_responses_request,
    with_history,
)
from gateway.pipeline import Answer
from gateway.rejection import Rejected
from gateway.request import ChatRequest
from gateway.responses_store import ResponseStore, StoredResponse, StoreUnavailable
from gateway.server.answering import (
    answer_headers,
    caller_of,
    complete_answer,
    respond,
    stream_answer,
)
from gateway.server.errors import upstream_error_response
from gateway.server.keys import GATEWAY, KEY_ID
from gateway.server.limits import body_timeout_s, read_body
from gateway.streaming.events import Event, UpstreamError

log = structlog.get_logger("gateway.responses")
MAX_REFERENCED_RESPONSES = 64  # store reads one request may cause through item_reference


async def create_response(request: web.Request) -> web.StreamResponse:
    """parse (+ the stored conversation) -> pipeline -> Responses events or one Response."""
    gateway = request[GATEWAY]
    store = gateway.state.responses
    chat, ctx, history, answer = await _open(request)
    response_id = "resp_" + answer.request_id.removeprefix("req_")
    created = int(time.time())
    limits = gateway.config.limits

    async def keep(response: dict[str, Any]) -> None:
        if response["store"]:
            await _store(store, request[KEY_ID], response, history, ctx, limits)

    if chat.stream:
        encoder = _HeldEnd(ResponsesStreamEncoder(response_id, created, chat.model, ctx))

        async def produce() -> web.StreamResponse:
            response = await stream_answer(request, answer, encoder, upstream_error_response)
            if encoder.final is not None:
                await keep(encoder.final)
            if encoder.tail:  # the closing event, once the response is stored
                await response.write(encoder.tail)
            return response

        return await respond(answer, produce)

    async def complete() -> web.StreamResponse:
        assembler = ResponsesAssembler(response_id, created, chat.model, ctx)
        outcome = await complete_answer(answer, assembler, upstream_error_response)
        if isinstance(outcome, web.Response):
            return outcome
        body = assembler.build()
        await keep(body)
        return web.Response(
            body=orjson.dumps(body),
            content_type="application/json",
            headers=answer_headers(answer.request_id, outcome.deployment),
        )

    return await respond(answer, complete)


async def retrieve_response(request: web.Request) -> web.Response:
    record = await _load(request[GATEWAY].state.responses, request, "id")
    return web.Response(body=orjson.dumps(record.response), content_type="application/json")


async def delete_response(request: web.Request) -> web.Response:
    store = request[GATEWAY].state.responses
    response_id = request.match_info["id"]
    try:
        deleted = await store.delete(response_id, request[KEY_ID])
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    if not deleted:
        raise _not_found(response_id, "id")
    body = {"id": response_id, "object": "response", "deleted": True}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses/{id}", retrieve_response)
    app.router.add_delete("/v1/responses/{id}", delete_response)


# -- the pieces -------------------------------------------------------------------------


class _HeldEnd:
    """The stream encoder, with the closing events of a normal end held back until the
    response is stored (see the module doc)."""

    def __init__(self, encoder: ResponsesStreamEncoder) -> None:
        self.encoder = encoder
        self.tail = b""

    @property
    def final(self) -> dict[str, Any] | None:
        return self.encoder.response

    def encode(self, events: list[Event]) -> bytes:
        return self.encoder.encode(events)

    def ready(self) -> None:
        self.encoder.ready()

    def text_frame(self) -> TextFrame | None:
        return self.encoder.text_frame()

    def end(self) -> bytes:
        self.tail = self.encoder.end()
        return b""

    def error(self, error: UpstreamError) -> bytes:
        return self.encoder.error(error)

    def heartbeat(self) -> bytes:
        return self.encoder.heartbeat()


async def _open(
    request: web.Request,
) -> tuple[ChatRequest, ResponsesContext, list[dict[str, Any]], Answer]:
    """Read and parse the body, prepend the stored conversation, then admit, govern and
    plan it; every refusal is recorded once and raised for the error middleware."""
    gateway = request[GATEWAY]
    caller = caller_of(request, time.perf_counter())
    limits = gateway.config.limits
    model = None
    try:
        raw = await read_body(request, limits.max_body_bytes, body_timeout_s(limits))
        chat, ctx = parse_responses_request(raw, request.headers, limits)
        model = chat.model
        store = gateway.state.responses
        if ctx.references:  # parse again with the items they name
            items = await _referenced_items(store, ctx.references, request[KEY_ID])
            chat, ctx = parse_responses_request(raw, request.headers, limits, items)
        if ctx.store is None:
            ctx.store = gateway.config.responses.store_by_default
        history: list[dict[str, Any]] = []
        if ctx.previous_response_id is not None:
            previous = await _load(store, request, None, ctx.previous_response_id)
            history = previous.conversation
            chat = with_history(chat, ctx, history, limits)
    except Rejected as exc:
        gateway.pipeline.refuse(caller, "responses", model, exc)
        raise
    return chat, ctx, history, await gateway.pipeline.open(chat, caller, "responses")


async def _referenced_items(
    store: ResponseStore, references: list[str], owner: str
) -> dict[str, dict[str, Any]]:
    """The output items of the stored responses that `references` point into. Item ids
    are `<kind>_<response id without resp_>_<output index>`, so each names its response."""
    items: dict[str, dict[str, Any]] = {}
    wanted = {"resp_" + ref.split("_", 1)[-1].rpartition("_")[0] for ref in references}
    for response_id in sorted(wanted)[:MAX_REFERENCED_RESPONSES]:
        try:
            record = await store.get(response_id, owner)
        except StoreUnavailable as exc:
            raise _unavailable(exc) from None
        if record is not None:
            items.update((item["id"], item) for item in record.response["output"])
    return items


async def _load(
    store: ResponseStore, request: web.Request, path_key: str | None, response_id: str = ""
) -> StoredResponse:
    """The stored response named by the URL (`path_key`) or by previous_response_id."""
    if path_key is not None:
        response_id = request.match_info[path_key]
    try:
        record = await store.get(response_id, request[KEY_ID])
    except StoreUnavailable as exc:
        raise _unavailable(exc) from None
    if record is None:
        raise _not_found(response_id, path_key or "previous_response_id")
    return record


async def _store(
    store: ResponseStore,
    owner: str,
    response: dict[str, Any],
    history: list[dict[str, Any]],
    ctx: ResponsesContext,
    limits: LimitsConfig,
) -> None:
    """Keep the response and its conversation (history, this input, this output). A store
    that is away costs the client the next turn, never this answer: logged, not raised."""
    output = response["output"]
    try:
        said = InputReader(limits).messages(output) if output else []
        record = StoredResponse(owner, response, [*history, *ctx.input_messages, *said])
        await store.put(record)
    except (StoreUnavailable, Rejected) as exc:  # Rejected: an output beyond the input bounds
        log.warning("response not stored", response_id=response["id"], error=str(exc))


def _not_found(response_id: str, param: str) -> Rejected:
    shown = response_id if len(response_id) <= 64 else response_id[:64] + "..."
    return Rejected(
        404,
        f"Response with id '{shown}' not found (unknown, expired, or stored without store: true).",
        "invalid_request_error",
        "response_not_found",
        param,
    )


def _unavailable(exc: StoreUnavailable) -> Rejected:
    return Rejected(
        503,
        "the response store is unavailable; try again shortly",
        "server_error",
        "store_unavailable",
        headers={"retry-after": "1"},
    )
