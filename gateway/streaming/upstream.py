"""Upstream HTTP: one connection pool per provider (`http1.pool`, or `http2.pool` for a
provider configured with `http2: true`), and the attempt stream.

`stream_events` and `one_shot_events` are the only places where provider adapters
meet sockets: the first sends the adapter's request, feeds the body to the
adapter's decoder and yields event batches; the second sends a one-shot call's
plain requests (an embeddings batch) and yields their merged answer as one batch.
A stream that is abandoned (cancelled, closed early) drops its connection instead
of returning it to the pool.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

from aiohttp import StreamReader
from multidict import CIMultiDictProxy

from gateway.streaming.adapter import OneShotCall, UpstreamRequest, WireAdapter
from gateway.streaming.attempt import offer_source, on_cut
from gateway.streaming.events import Event, UpstreamError
from gateway.streaming.http1.pool import CLIENT_ERRORS, Http1Pool
from gateway.streaming.http2.pool import Http2Pool

MAX_ERROR_BODY = 64 * 1024
MAX_JSON_BODY = 16 * 1024 * 1024  # a non-streamed answer from a server that ignores stream
# One embeddings answer: 2048 vectors of 1536 floats as JSON text is about 40 MB.
MAX_ONE_SHOT_BODY = 96 * 1024 * 1024
ONE_SHOT_PARALLEL = 4  # calls of one split request in flight at once
# A warm-up answer (a provider's model list) read past this is not worth its connection.
MAX_WARM_BODY = 4 * 1024 * 1024


class UpstreamResponse(Protocol):
    """An answer's head and its body as it arrives (`http1.pool`'s and `http2.pool`'s)."""

    status: int
    content_type: str
    content: StreamReader

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    def release(self) -> None: ...

    def close(self, replace: bool = False) -> None: ...


class UpstreamClient(Protocol):
    """What the attempt code asks of a pool (`Http1Pool`, `Http2Pool`); `sent` is what
    the same pool's `send_idle` returned."""

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        sent: Any = None,
    ) -> UpstreamResponse: ...

    def send_idle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Any: ...

    def open_connections(self) -> int: ...

    async def close(self) -> None: ...


class PoolStats:
    """What a pool did with its connections: opened (new TCP/TLS connections), reused (a
    request served on an idle keep-alive connection, pre-warmed ones included), cut
    connections replaced in the background (replaced, or replace_failed), and pre-warm
    requests that left a connection idle (warmed) or failed."""

    __slots__ = ("opened", "replace_failed", "replaced", "reused", "warm_failed", "warmed")

    def __init__(self) -> None:
        self.opened = 0
        self.reused = 0
        self.replaced = 0
        self.replace_failed = 0
        self.warmed = 0
        self.warm_failed = 0


class UpstreamPool:
    """A bounded keep-alive connection pool for one provider."""

    def __init__(
        self,
        name: str,
        max_connections: int = 100,
        connect_timeout_s: float = 5.0,
        keepalive_s: float = 30.0,
        http2: bool = False,
        tls_ca_file: str | None = None,
        replace_cut: bool = False,
    ) -> None:
        self.name = name
        self.http2 = http2
        self._replace_cut = replace_cut
        self._ca_file = tls_ca_file
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._client: UpstreamClient | None = None
        # Counters read at scrape time (metrics.PoolCollector): one increment per connection
        # or warm-up, never per chunk.
        self.stats = PoolStats()

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            self._client = (Http2Pool if self.http2 else Http1Pool)(
                self.stats,
                limit=self._max_connections,
                connect_timeout_s=self._connect_timeout_s,
                keepalive_s=self._keepalive_s,
                # each attempt's connection, new or pooled, is dropped at once if the
                # attempt loses: before its response opens too (a server that sends its
                # headers with its first token, as Ollama's while a model loads)
                on_connection=on_cut,
                tls=ssl.create_default_context(cafile=self._ca_file) if self._ca_file else None,
                replace_cut=self._replace_cut,
            )
        return self._client

    def open_connections(self) -> int:
        """Connections currently held (in use or idle in the pool)."""
        return 0 if self._client is None else self._client.open_connections()

    async def warm(self, request: UpstreamRequest, timeout_s: float = 5.0) -> bool:
        """Send a cheap GET and read it whole, leaving its connection idle in the pool; an
        answer longer than MAX_WARM_BODY is not read on: its connection is dropped."""
        response = None
        try:
            async with asyncio.timeout(timeout_s):
                response = await self.client.request(request.method, request.url, request.headers)
                ok = await _read_up_to(response.content, MAX_WARM_BODY) is not None
                if ok:
                    response.release()
                    ok = response.status < 400
        except asyncio.CancelledError:
            raise
        except (*CLIENT_ERRORS, TimeoutError, ValueError):
            ok = False
        finally:
            if response is not None:
                response.close()  # nothing once released
        if ok:
            self.stats.warmed += 1
        else:
            self.stats.warm_failed += 1
        return ok

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


async def _read_up_to(content: StreamReader, limit: int) -> bytes | None:
    """A body read to its end; None as soon as it passes `limit` bytes (not read on)."""
    pieces: list[bytes] = []
    size = 0
    while data := await content.readany():  # b"" at the end of the body
        size += len(data)
        if size > limit:
            return None
        pieces.append(data)
    return b"".join(pieces)


def connection_error(exc: BaseException) -> UpstreamError:
    """A transport failure as a retryable error; the message never carries request data.

    The exception's tracebacks are dropped: aiohttp keeps a failed body's exception in the
    response's reader, and the traceback's frames (this module's, holding the response)
    refer back to it, a reference cycle per failed stream left for the cyclic collector,
    whose pauses under load delay every stream."""
    _drop_frames(exc)
    if isinstance(exc, TimeoutError):
        return UpstreamError(504, "upstream_timeout", "upstream connect timed out", True)
    return UpstreamError(
        502, "upstream_connection_error", f"upstream connection failed: {type(exc).__name__}", True
    )


def _drop_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the chain of causes, once
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


def stream_events(
    pool: UpstreamPool, provider: WireAdapter, request: UpstreamRequest, early: bool = False
) -> AsyncGenerator[list[Event], None]:
    """Send `request` and yield decoded event batches.

    HTTP errors and transport failures come out as a single UpstreamError batch,
    never as exceptions. Cancellation propagates; the connection is then closed.
    `early`: the request goes out now, before the stream is iterated, when a keep-alive
    connection is idle, so the caller's other work overlaps the upstream's; if the
    stream is then never iterated, its connection is dropped only by the cut the pool
    gave `on_cut` (the race's, for its attempts).
    """
    sent = None
    if early:
        sent = pool.client.send_idle(request.method, request.url, request.headers, request.body)
    return _stream_events(pool, provider, request, sent)


async def _stream_events(
    pool: UpstreamPool,
    provider: WireAdapter,
    request: UpstreamRequest,
    sent: object,
) -> AsyncGenerator[list[Event], None]:
    try:
        response = await pool.client.request(
            request.method, request.url, request.headers, request.body, sent
        )
    except asyncio.CancelledError:
        raise
    except (*CLIENT_ERRORS, TimeoutError) as exc:
        yield [connection_error(exc)]
        return
    clean = abandoned = False
    try:
        if response.status >= 300:
            body = await response.content.read(MAX_ERROR_BODY)
            yield [provider.parse_error(response.status, response.headers, body)]
            return
        if response.content_type == "application/json":
            # Some servers ignore `stream: true` and answer with one JSON body.
            body = await response.content.read(MAX_JSON_BODY + 1)
            if len(body) > MAX_JSON_BODY:
                yield [
                    UpstreamError(502, "upstream_protocol_error", "upstream body too large", False)
                ]
                return
            yield provider.parse_response(body)
            clean = response.content.at_eof()
            return
        decoder = provider.decoder()
        content = response.content
        offer_source(content, decoder)
        try:
            while data := await content.readany():  # b"" at the end of the body
                events = decoder.feed(data)
                if events:
                    yield events
        except CLIENT_ERRORS as exc:
            error = connection_error(exc)  # drops exc's frames whatever the decoder says
            events = decoder.close()
            yield events if _has_error(events) else [*events, error]
            return
        events = decoder.close()
        if events:
            yield events
        clean = True
    except (GeneratorExit, asyncio.CancelledError):
        abandoned = True  # its reader left (a client gone, a loser): the answer was fine
        raise
    finally:
        if clean:
            response.release()
        else:
            # Abandoned or failed mid-body: drop the connection, never reuse it; one
            # dropped while healthy is replaced where the pool replaces cut ones.
            response.close(replace=abandoned)


class _PartFailed(Exception):
    """One call of a one-shot request failed: the others are cancelled."""


async def one_shot_events(
    pool: UpstreamPool, provider: WireAdapter, call: OneShotCall
) -> AsyncGenerator[list[Event], None]:
    """Send every request of `call` (at most ONE_SHOT_PARALLEL at once), read each whole JSON
    answer, and yield the merged events as one batch. The first failure (HTTP error,
    transport, bad body) is the whole answer: one UpstreamError batch, the other calls
    cancelled. Cancellation propagates; unfinished connections are then closed."""
    count = len(call.requests)
    parts: list[object] = [None] * count
    failed: list[UpstreamError] = []
    gate = asyncio.Semaphore(ONE_SHOT_PARALLEL)

    async def run(i: int) -> None:
        async with gate:
            body = await _read_whole(pool, provider, call.requests[i])
            part = body if type(body) is UpstreamError else call.parse(i, body)  # type: ignore[arg-type]
            if type(part) is UpstreamError:
                failed.append(part)
                raise _PartFailed
            parts[i] = part

    if count == 1:
        try:
            await run(0)
        except _PartFailed:
            pass
    else:
        try:
            async with asyncio.TaskGroup() as group:
                for i in range(count):
                    group.create_task(run(i))
        except* _PartFailed:
            pass
    if failed:
        yield [failed[0]]
        return
    yield call.merge(parts)


async def _read_whole(
    pool: UpstreamPool, provider: WireAdapter, request: UpstreamRequest
) -> bytes | UpstreamError:
    """One plain request's whole 2xx body, or the error it ended in."""
    try:
        response = await pool.client.request(
            request.method, request.url, request.headers, request.body
        )
    except asyncio.CancelledError:
        raise
    except (*CLIENT_ERRORS, TimeoutError) as exc:
        return connection_error(exc)
    clean = False
    try:
        if response.status >= 300:
            body = await response.content.read(MAX_ERROR_BODY)
            return provider.parse_error(response.status, response.headers, body)
        whole = await _read_up_to(response.content, MAX_ONE_SHOT_BODY)
        if whole is None:
            return UpstreamError(502, "upstream_protocol_error", "upstream body too large", False)
        clean = True
        return whole
    except CLIENT_ERRORS as exc:
        return connection_error(exc)
    finally:
        if clean:
            response.release()
        else:
            response.close()


def _has_error(events: list[Event]) -> bool:
    return any(type(event) is UpstreamError for event in events)
