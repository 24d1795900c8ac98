"""A bounded keep-alive pool of HTTP/1.1 connections to upstreams, and the request.

Why not aiohttp's client: a streamed upstream request through `ClientSession` costs about
100 us of CPU more than this (its request and response objects, URL handling, cookie jar,
timers, connector keys; `bench.upstream_client` measures both), and every race pays it
once per attempt. This client does what the gateway asks of an upstream and no more:
HTTP/1.1 over TCP or TLS, no proxy, no cookies, no redirects (a 3xx is an answer, as any
error status: following a redirect would send credentials where the config did not say).

`request` sends and returns once the final head is in; the body then arrives in
`Response.content` (an aiohttp `StreamReader`). `release()` gives a complete body's
connection back to the pool; `close()` drops it (a reset). Both are no-ops the second
time. `on_connection` is told, per request, how to drop its connection at once (the race
cuts a loser so); it does nothing once the request released its connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

from aiohttp import StreamReader
from multidict import CIMultiDictProxy

from gateway.streaming.dial import Dialer
from gateway.streaming.http1.connection import Http1Connection, ServerDisconnected
from gateway.streaming.http1.head import ProtocolError, ResponseHead
from gateway.streaming.http1.request import Target, encode_request
from gateway.streaming.turns import Targets, Turns

# What a request can fail with (a timeout is TimeoutError, an OSError too).
CLIENT_ERRORS = (OSError, ProtocolError)


class ConnectionCounts(Protocol):
    opened: int  # new connections made
    reused: int  # requests given a pooled (keep-alive) connection


class Response:
    """The head of an upstream's answer and its body as it arrives."""

    __slots__ = ("_connection", "_head", "_pool", "_use", "content", "content_type", "status")

    def __init__(self, pool: Http1Pool, connection: Http1Connection, head: ResponseHead) -> None:
        self._pool = pool
        self._connection = connection
        self._use = connection.uses
        self._head = head
        self.status = head.status
        self.content_type = head.content_type
        content = connection.reader
        assert content is not None  # set with the head
        self.content: StreamReader = content

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._head.headers

    def release(self) -> None:
        """The body was read whole: its connection goes back to the pool (or is closed
        when it cannot carry another request)."""
        self._pool.finish(self._connection, self._use, keep=True)

    def close(self) -> None:
        """Drop the connection (a reset), whatever is left of the body."""
        self._pool.finish(self._connection, self._use, keep=False)


class Sent(NamedTuple):
    """A request written to `connection` (its `use`-th); `head` is its answer's head."""

    connection: Http1Connection
    use: int
    head: asyncio.Future[ResponseHead]


class Http1Pool:
    """At most `limit` connections over all hosts (in use, idle or being opened); a request
    beyond that waits, within `connect_timeout_s`, for one to be released or closed.
    Idle connections are closed after `keepalive_s`, or as soon as the server closes them."""

    def __init__(
        self,
        counts: ConnectionCounts,
        limit: int = 100,
        connect_timeout_s: float = 5.0,
        keepalive_s: float = 30.0,
        on_connection: Callable[[Callable[[], None]], None] | None = None,
        tls: ssl.SSLContext | None = None,  # default: the system's trust store
    ) -> None:
        self._counts = counts
        self._dialer = Dialer(tls)
        self._limit = limit
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._on_connection = on_connection
        self._idle: dict[tuple[str, str, int], list[Http1Connection]] = {}
        self._idle_count = 0
        self._busy: set[Http1Connection] = set()
        self._connecting = 0
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
        sent: Sent | None = None,
    ) -> Response:
        """Send a request (unless `send_idle` sent it: `sent`); return when the final head
        of its answer is in."""
        if sent is None:
            if self._closed:
                raise ConnectionError("upstream pool closed")
            target = self._targets.get(url)
            data = encode_request(method, target, headers, body or b"")
            connection = self._take_idle(target.key)
            if connection is None:
                async with asyncio.timeout(self._connect_timeout_s):
                    connection = await self._acquire(target)
            sent = self._send(connection, data, method)
        try:
            head = await sent.head
        except BaseException:
            self.finish(sent.connection, sent.use, keep=False)
            raise
        return Response(self, sent.connection, head)

    def send_idle(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> Sent | None:
        """Send a request now, without awaiting, if a keep-alive connection to its host is
        idle; `request(..., sent=)` then awaits its answer. None: nothing was sent (no idle
        connection, or a request `request` will refuse). Whoever holds the `Sent` drops
        its connection (the cut given to `on_connection`) if it never awaits it."""
        if self._closed:
            return None
        try:
            target = self._targets.get(url)
            if not self._idle.get(target.key):
                return None
            data = encode_request(method, target, headers, body or b"")
        except ValueError:
            return None  # `request` raises it where the caller expects it
        connection = self._take_idle(target.key)
        if connection is None:
            return None
        try:
            return self._send(connection, data, method)
        except ServerDisconnected:
            return None  # dropped: `request` opens another

    def _send(self, connection: Http1Connection, data: bytes, method: str) -> Sent:
        connection.uses += 1
        self._busy.add(connection)
        if self._on_connection is not None:
            self._on_connection(self._cut(connection))
        try:
            head = connection.send(data, method)
        except BaseException:
            self.finish(connection, connection.uses, keep=False)
            raise
        return Sent(connection, connection.uses, head)

    def finish(self, connection: Http1Connection, use: int, keep: bool) -> None:
        """The request numbered `use` on `connection` is done with it."""
        if connection.uses != use or connection not in self._busy:
            return  # released before, or carrying another request now
        self._busy.discard(connection)
        if keep and connection.reusable and not self._closed:
            connection.reader = None  # the response keeps it; it refers back to the connection
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(connection.key, []).append(connection)
            self._idle_count += 1
            if self._sweep is None:
                self._schedule_sweep()
        else:
            connection.abort()
        self._turns.wake()

    def _cut(self, connection: Http1Connection) -> Callable[[], None]:
        use = connection.uses
        return lambda: self.finish(connection, use, keep=False)

    # -- connections ----------------------------------------------------------------

    def open_connections(self) -> int:
        """Connections held: carrying a request or idle in the pool."""
        return len(self._busy) + self._idle_count

    def _take_idle(self, key: tuple[str, str, int]) -> Http1Connection | None:
        """An idle connection to `key` that is still open and fresh (counted as reused)."""
        idle = self._idle.get(key)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            self._idle_count -= 1
            transport = connection.transport
            if (
                transport is not None
                and not transport.is_closing()
                and now - connection.idle_since < self._keepalive_s
            ):
                self._counts.reused += 1
                return connection
            connection.abort()
        return None

    async def _acquire(self, target: Target) -> Http1Connection:
        """No idle connection to the target: a new one, or, at the limit, the first one
        released or closed (an idle one to the target, or room for a new one)."""
        while True:
            if self._connecting + len(self._busy) + self._idle_count < self._limit or (
                self._evict_idle()
            ):
                return await self._open(target)
            await self._turns.wait()
            connection = self._take_idle(target.key)
            if connection is not None:
                return connection

    def _evict_idle(self) -> bool:
        """At the limit: close the longest-idle connection to another host, if any."""
        oldest: list[Http1Connection] | None = None
        for idle in self._idle.values():
            if idle and (oldest is None or idle[0].idle_since < oldest[0].idle_since):
                oldest = idle
        if oldest is None:
            return False
        oldest.pop(0).abort()
        self._idle_count -= 1
        return True

    async def _open(self, target: Target) -> Http1Connection:
        self._connecting += 1
        try:
            connection = await self._connect(target)
        finally:
            self._connecting -= 1
        self._counts.opened += 1
        connection.key = target.key
        return connection

    async def _connect(self, target: Target) -> Http1Connection:
        loop = asyncio.get_running_loop()
        return await self._dialer.connect(target, lambda: Http1Connection(loop, self._lost))

    def _lost(self, connection: Http1Connection) -> None:
        """A connection closed (by either side): it no longer counts."""
        if connection in self._busy:
            self._busy.discard(connection)
        else:
            idle = self._idle.get(connection.key)
            if idle and connection in idle:
                idle.remove(connection)
                self._idle_count -= 1
        self._turns.wake()

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(self._keepalive_s, self._sweep_idle)

    def _sweep_idle(self) -> None:
        """Close connections idle past the keep-alive time (a server may keep them)."""
        self._sweep = None
        deadline = asyncio.get_running_loop().time() - self._keepalive_s
        for idle in self._idle.values():
            while idle and idle[0].idle_since <= deadline:
                idle.pop(0).abort()
                self._idle_count -= 1
        if self._idle_count:
            self._schedule_sweep()

    async def close(self) -> None:
        """Drop every connection; requests waiting for one fail."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()
        self._idle_count = 0
        for connection in list(self._busy):
            connection.abort()
        self._busy.clear()
        self._turns.fail_all(ConnectionError("upstream pool closed"))

    # -- URLs -------------------------------------------------------------------------
