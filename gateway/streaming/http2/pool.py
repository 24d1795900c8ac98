"""HTTP/2 connections to upstreams, shared by concurrent requests, with the interface of
`http1.pool.Http1Pool` (`request`, `send_idle`, the answer's `release`/`close`, the cut
given to `on_connection`), so the attempt code does not know which one it talks to.

An https upstream is offered h2 and http/1.1 in the TLS handshake (ALPN); one that
chooses HTTP/1.1 is remembered and served by an `Http1Pool` from then on. A plain http
upstream is spoken to in HTTP/2 directly (prior knowledge, "h2c"). A request takes the
first connection to its host with room for another stream; one connection per host is
opened at a time, and every request waiting for it shares it (at a cold start a burst
of requests opens one connection, not one each). `limit` bounds the connections, not the
streams: each carries as many as its server allows.

Dropping an answer (`close()`, or the race's cut of a loser) resets its stream only:
the connection goes on carrying the others and the next request.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import NamedTuple

from aiohttp import StreamReader
from multidict import CIMultiDictProxy

from gateway.streaming.dial import Dialer
from gateway.streaming.http1.handles import ConnectionCounts, Sent
from gateway.streaming.http1.handles import Response as Http1Response
from gateway.streaming.http1.head import ResponseHead
from gateway.streaming.http1.pool import Http1Pool
from gateway.streaming.http1.request import Target
from gateway.streaming.http2.connection import Http2Connection, NotHttp2
from gateway.streaming.http2.frames import request_block
from gateway.streaming.http2.stream import Http2Stream
from gateway.streaming.turns import Targets, Turns

_BODY_METHODS = ("POST", "PUT", "PATCH")


class Http2Response:
    """The head of an upstream's answer and its body as it arrives (as `http1.pool`'s)."""

    __slots__ = ("_head", "_stream", "content", "content_type", "status")

    def __init__(self, stream: Http2Stream, head: ResponseHead, content: StreamReader) -> None:
        self._stream = stream
        self._head = head
        self.status = head.status
        self.content_type = head.content_type
        self.content = content

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._head.headers

    def release(self) -> None:
        """The body was read whole (its stream has ended: nothing to do, or it is reset)."""
        self.close()

    def close(self, replace: bool = False) -> None:
        """Reset the stream if it has not ended; the connection carries on (nothing to
        replace)."""
        stream = self._stream
        stream.connection.reset(stream)


class StreamSent(NamedTuple):
    """A request started on an HTTP/2 connection by `send_idle`."""

    stream: Http2Stream


class Http2Pool:
    """Requests over HTTP/2 to any host (HTTP/1.1 where a TLS server refuses h2);
    at most `limit` connections of each kind. Connections with no stream are closed
    after `keepalive_s`."""

    def __init__(
        self,
        counts: ConnectionCounts,
        limit: int = 100,
        connect_timeout_s: float = 5.0,
        keepalive_s: float = 30.0,
        on_connection: Callable[[Callable[[], None]], None] | None = None,
        tls: ssl.SSLContext | None = None,  # default: the system's trust store
        replace_cut: bool = False,  # for hosts that chose HTTP/1.1 (a cut resets a stream here)
    ) -> None:
        self._counts = counts
        self._limit = limit
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._on_connection = on_connection
        if tls is not None:
            tls.set_alpn_protocols(["h2", "http/1.1"])
        self._dialer = Dialer(tls, alpn=("h2", "http/1.1"))
        self._http1 = Http1Pool(
            counts, limit, connect_timeout_s, keepalive_s, on_connection, tls, replace_cut
        )
        self._http1_hosts: set[tuple[str, str, int]] = set()  # chose HTTP/1.1 in ALPN
        self._connections: dict[tuple[str, str, int], list[Http2Connection]] = {}
        self._count = 0
        self._opening: dict[tuple[str, str, int], asyncio.Task[Http2Connection | None]] = {}
        self._turns = Turns()
        self._targets = Targets()
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    # -- the request ----------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        sent: StreamSent | Sent | None = None,
    ) -> Http2Response | Http1Response:
        """Send a request (unless `send_idle` sent it: `sent`); return when the final head
        of its answer is in."""
        if type(sent) is Sent:
            return await self._http1.request(method, url, headers, body, sent)
        if sent is None:
            if self._closed:
                raise ConnectionError("upstream pool closed")
            target = self._targets.get(url)
            if target.key in self._http1_hosts:
                return await self._http1.request(method, url, headers, body)
            block = _block(method, target, headers, body)
            connection = self._available(target.key)
            if connection is None:
                async with asyncio.timeout(self._connect_timeout_s):
                    connection = await self._acquire(target)
                if connection is None:  # the host chose HTTP/1.1
                    return await self._http1.request(method, url, headers, body)
            stream = self._open(connection, method, block, body)
        else:
            assert type(sent) is StreamSent
            stream = sent.stream
        try:
            head, content = await stream.head
        except BaseException:
            stream.connection.reset(stream)
            raise
        return Http2Response(stream, head, content)

    def send_idle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> StreamSent | Sent | None:
        """Start a request now, without awaiting, if a connection to its host has room;
        `request(..., sent=)` then awaits its answer. None: nothing was sent."""
        if self._closed:
            return None
        try:
            target = self._targets.get(url)
            if target.key in self._http1_hosts:
                return self._http1.send_idle(method, url, headers, body)
            connection = self._available(target.key)
            if connection is None:
                return None
            block = _block(method, target, headers, body)
        except ValueError:
            return None  # `request` raises it where the caller expects it
        return StreamSent(self._open(connection, method, block, body))

    def _open(
        self, connection: Http2Connection, method: str, block: bytes, body: bytes | None
    ) -> Http2Stream:
        if connection.carried:
            self._counts.reused += 1
        stream = connection.open(method, block, body)
        if self._on_connection is not None:
            self._on_connection(lambda: connection.reset(stream))
        return stream

    # -- connections ----------------------------------------------------------------

    def open_connections(self) -> int:
        return self._count + self._http1.open_connections()

    def _available(self, key: tuple[str, str, int]) -> Http2Connection | None:
        for connection in self._connections.get(key, ()):
            if connection.available():
                return connection
        return None

    async def _acquire(self, target: Target) -> Http2Connection | None:
        """A connection with room for a stream: the one being opened to the host, a new
        one, or, at the limit, the first to free a stream. None: the host speaks HTTP/1.1."""
        key = target.key
        while True:
            if key in self._http1_hosts:
                return None
            connection = self._available(key)
            if connection is not None:
                return connection
            opening = self._opening.get(key)
            if opening is None and (self._count < self._limit or self._evict_idle()):
                opening = self._opening[key] = asyncio.get_running_loop().create_task(
                    self._connect(target)
                )
                opening.add_done_callback(_retrieved)
            if opening is not None:
                # shared: a waiter cancelled (a race's loser) leaves it to the others
                connection = await asyncio.shield(opening)
                if connection is None or connection.available():
                    return connection
                continue
            await self._turns.wait()

    async def _connect(self, target: Target) -> Http2Connection | None:
        key = target.key
        self._count += 1
        counted = True
        loop = asyncio.get_running_loop()
        try:
            # its own deadline: it outlives the requests that wait for it (each has one)
            async with asyncio.timeout(self._connect_timeout_s):
                connection = await self._dialer.connect(
                    target, lambda: Http2Connection(loop, self._lost, self._freed)
                )
            connection.key = key
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await connection.ready
            except NotHttp2:
                connection.abort()
                if not target.tls:
                    raise
                self._http1_hosts.add(key)  # ALPN chose HTTP/1.1: asked once per host
                return None
            except BaseException:
                connection.abort()
                raise
            counted = False  # from here `_lost` uncounts it
            self._counts.opened += 1
            connection.idle_since = loop.time()
            self._connections.setdefault(key, []).append(connection)
            if self._sweep is None:
                self._schedule_sweep()
            return connection
        finally:
            if counted:
                self._count -= 1
            del self._opening[key]
            self._turns.wake()

    def _evict_idle(self) -> bool:
        """At the limit: close a connection that carries no stream, if any."""
        for connections in self._connections.values():
            for connection in connections:
                if not connection.streams:
                    connection.close_idle()
                    return True
        return False

    def _lost(self, connection: Http2Connection) -> None:
        connections = self._connections.get(connection.key)
        if connections and connection in connections:
            connections.remove(connection)
            self._count -= 1
        self._turns.wake()

    def _freed(self, connection: Http2Connection) -> None:
        if self._turns:
            self._turns.wake()

    def _schedule_sweep(self) -> None:
        self._sweep = asyncio.get_running_loop().call_later(self._keepalive_s, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close connections that carried no stream for the keep-alive time."""
        self._sweep = None
        deadline = asyncio.get_running_loop().time() - self._keepalive_s
        for connections in self._connections.values():
            for connection in list(connections):
                if not connection.streams and connection.idle_since <= deadline:
                    connection.close_idle()
        if self._count:
            self._schedule_sweep()

    async def close(self) -> None:
        """Drop every connection (one with no stream says GOAWAY first); requests waiting
        for one fail."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        opening = list(self._opening.values())
        for task in opening:
            task.cancel()
        await asyncio.gather(*opening, return_exceptions=True)
        for connections in self._connections.values():
            for connection in connections:
                if connection.streams:
                    connection.abort()
                else:
                    connection.close_idle()
        self._connections.clear()
        self._count = 0
        self._turns.fail_all(ConnectionError("upstream pool closed"))
        await self._http1.close()


def _block(method: str, target: Target, headers: Mapping[str, str], body: bytes | None) -> bytes:
    length = len(body or b"") if body or method in _BODY_METHODS else None
    return request_block(method, target, headers, length)


def _retrieved(task: asyncio.Task[Http2Connection | None]) -> None:
    """A connect every waiter gave up on (each was cancelled) fails unlogged."""
    if not task.cancelled():
        task.exception()
