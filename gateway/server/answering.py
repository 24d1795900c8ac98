"""Driving an `Answer` over HTTP for any front door: read and parse the body, open the
answer through the pipeline, then stream it (SSE; headers leave with the first token) or
assemble it (one JSON body), and always close it so the request is recorded once.

A door brings its parser, its stream encoder or assembler, and its error renderer; the
walk is the same for every door.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aiohttp import web

from gateway.compat_aiohttp import ReadyHead, ready_stream, start_stream, sync_writer
from gateway.pipeline import Answer, Caller
from gateway.record import Door
from gateway.rejection import Rejected
from gateway.request import ChatRequest, EmbedRequest
from gateway.server import coalesce
from gateway.server.keys import GATEWAY, KEY, KEY_ID, REQUEST_ID
from gateway.server.limits import body_timeout_s, read_body
from gateway.streaming.events import Event, UpstreamError
from gateway.streaming.plan import HEARTBEAT, AllFailed, Winner
from gateway.streaming.relay import Framer

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

# Above this many bytes waiting in the client's send buffer the relay stops and the
# general path's awaited write drains it (aiohttp's own write drains above 64 KiB).
RELAY_MAX_BUFFER = 64 * 1024

R = TypeVar("R", ChatRequest, EmbedRequest)  # what a door's parser makes of a body

# A pre-stream upstream failure as an HTTP response in the door's error shape.
ErrorResponder = Callable[[UpstreamError, dict[str, str]], web.Response]


class StreamEncoder(Protocol):
    def encode(self, events: list[Event]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, error: UpstreamError) -> bytes: ...

    def heartbeat(self) -> bytes: ...

    def text_frame(self) -> Framer | None:
        """How text is written now without the encoder (the fast relay); None: not now."""
        ...

    def ready(self) -> None:
        """Render now what the first encode would, that no event decides (the opening)."""
        ...


class Assembler(Protocol):
    @property
    def error(self) -> UpstreamError | None: ...

    def add(self, events: list[Event]) -> None: ...


class SSEResponse(web.StreamResponse):
    """Headers leave with the first body bytes: one write and one packet, not two, on the
    path of the first token."""

    _send_headers_immediately = False


def caller_of(request: web.Request, started: float) -> Caller:
    return Caller(request[REQUEST_ID], request[KEY_ID], request.headers, started, request.get(KEY))


async def open_answer(
    request: web.Request, door: Door, parse: Callable[[bytes], R]
) -> tuple[R, Answer]:
    """Read and parse the body, then admit, govern and plan it; a refusal at any step is
    recorded (one log line, one metric) and raised for the door to render."""
    started = time.perf_counter()
    gateway = request[GATEWAY]
    caller = caller_of(request, started)
    limits = gateway.config.limits
    try:
        raw = await read_body(request, limits.max_body_bytes, body_timeout_s(limits))
        chat = parse(raw)
    except Rejected as exc:
        gateway.pipeline.refuse(caller, door, None, exc)
        raise
    return chat, await gateway.pipeline.open(chat, caller, door)


async def respond(
    answer: Answer, produce: Callable[[], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Run `produce` and close the answer whatever happens (a client gone included)."""
    client_gone = False
    try:
        response = await produce()
        answer.status = response.status
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        client_gone = True
        raise
    finally:
        await answer.aclose(client_gone=client_gone)


class FirstWrite:
    """The response of a streamed answer with its head (all but the winner's name) and the
    encoder's opening, readied while the upstream is silent rather than after its first
    token: `ready` runs two loop turns after the race begins, behind the attempts' first
    steps, so that no upstream request waits for it."""

    __slots__ = ("_encoder", "_head", "_request", "_request_id", "_response", "_started")

    def __init__(self, request: web.Request, request_id: str, encoder: StreamEncoder) -> None:
        self._request = request
        self._request_id = request_id
        self._encoder = encoder
        self._response: SSEResponse | None = None
        self._head: ReadyHead | None = None
        self._started = False

    def schedule(self) -> None:
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self.ready)

    def ready(self) -> None:
        if self._started or self._response is not None:
            return  # the first token came first, or this ran already
        self._response = SSEResponse()
        self._head = ready_stream(self._request, self._response, self._headers())
        self._encoder.ready()

    def start(self, deployment: str) -> tuple[web.StreamResponse, bool]:
        """The response, its head held for the first token's write; and whether aiohttp's
        own `prepare` must still run (its headers are then set for it)."""
        if self._response is None:  # the first token came before the silence's turn
            self.ready()
        self._started = True
        response, head = self._response, self._head
        assert response is not None
        more = {"x-gateway-deployment": deployment}
        if head is not None and start_stream(self._request, response, head, more):
            return response, False
        if head is None:
            response.headers.update(self._headers())
        response.headers.update(more)
        return response, True

    def _headers(self) -> dict[str, str]:
        return stream_headers(self._request_id)


def stream_headers(request_id: str) -> dict[str, str]:
    """A streamed answer's head before its winner is known."""
    return {**SSE_HEADERS, **answer_headers(request_id, None)}


def answer_headers(request_id: str, deployment: str | None) -> dict[str, str]:
    headers = {"x-request-id": request_id}
    if deployment is not None:
        headers["x-gateway-deployment"] = deployment
    return headers


async def stream_answer(
    request: web.Request,
    answer: Answer,
    encoder: StreamEncoder,
    error_response: ErrorResponder,
) -> web.StreamResponse:
    """Nothing is sent before a winner exists, unless keep-alives are due; a failure before
    the first token is an HTTP error, after it an in-stream error from the encoder. With
    `stream.coalesce_ms`, the batches after the first token are paced (`coalesce.Pacer`)."""
    request_id = answer.request_id
    response: web.StreamResponse | None = None
    first_write = FirstWrite(request, request_id, encoder)
    first_write.schedule()
    while True:
        outcome = await answer.first()
        if outcome is not HEARTBEAT:
            break
        if response is None:  # no winner yet: commit to 200 and keep the connection alive
            response = SSEResponse(headers=stream_headers(request_id))
            await response.prepare(request)
        await response.write(encoder.heartbeat())
    if isinstance(outcome, AllFailed):
        if response is None:
            return error_response(outcome.error, answer_headers(request_id, None))
        await response.write(encoder.error(outcome.error))
        return response
    assert isinstance(outcome, Winner)
    if response is None:
        response, unprepared = first_write.start(outcome.deployment)
        if unprepared:
            await response.prepare(request)  # aiohttp's own
    else:  # headers went out with the heartbeat: name the winner in a comment SDKs ignore
        await response.write(b": x-gateway-deployment " + outcome.deployment.encode() + b"\n\n")
    events = outcome.events
    await response.write(encoder.encode(events))  # the first token: never held
    failed = any(type(e) is UpstreamError for e in events)
    stream = request[GATEWAY].config.stream
    pacer = coalesce.pacer(stream)  # None: each batch as it comes
    # the fast relay writes each read at once: not when the operator asked for coalescing
    relaying = pacer is None and stream.relay
    write = sync_writer(response, RELAY_MAX_BUFFER) if relaying else None
    while not failed:
        if write is not None and (relay := answer.relay(encoder.text_frame)) is not None:
            await relay.run(write)  # until the general path must go on
        batch = await (answer.next_batch() if pacer is None else pacer.next_batch(answer))
        if batch is None:
            break
        failed = type(batch[-1]) is UpstreamError
        await response.write(encoder.encode(batch))
    if not failed:
        await response.write(encoder.end())
    return response


async def complete_answer(
    answer: Answer, assembler: Assembler, error_response: ErrorResponder
) -> Winner | web.Response:
    """Read the whole answer into `assembler`: the Winner, or the error response to send."""
    outcome = await answer.first()
    while outcome is HEARTBEAT:  # non-stream plans have no heartbeat; be safe anyway
        outcome = await answer.first()
    if isinstance(outcome, AllFailed):
        return error_response(outcome.error, answer_headers(answer.request_id, None))
    assert isinstance(outcome, Winner)
    assembler.add(outcome.events)
    while assembler.error is None:
        batch = await answer.next_batch()
        if batch is None:
            break
        assembler.add(batch)
    if assembler.error is not None:
        return error_response(
            assembler.error, answer_headers(answer.request_id, outcome.deployment)
        )
    return outcome
