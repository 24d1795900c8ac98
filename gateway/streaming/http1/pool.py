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

With `replace_cut`, a connection dropped so, or by `Response.close(replace=True)` (an
answer whose reader left), is replaced at once in the background (a *refill*): against
a TLS provider a new connection costs a handshake, round trips and about 0.75 ms of CPU,
and without the refill the losing deployment's next attempt pays it on its way to the
first token. A request that finds no idle connection claims a refill
still opening to its host rather than dialing one more. A refill that nobody uses idles
and is swept after `keepalive_s`, like any idle connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Mapping

from gateway.streaming.dial import Dialer
from gateway.streaming.http1.connection import Http1Connection, ServerDisconnected
from gateway.streaming.http1.handles import ConnectionCounts, Refill, Response, Sent
from gateway.streaming.http1.head import ProtocolError
from gateway.streaming.http1.request import Target, encode_request
from gateway.streaming.turns import Targets, Turns

# What a request can fail with (a timeout is TimeoutError, an OSError too).
CLIENT_ERRORS = (OSError, ProtocolError)


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
        replace_cut: bool = False,
    ) -> None:
        self._counts = counts
        self._dialer = Dialer(tls)
        self._replace_cut = replace_cut
        self._limit = limit
        self._connect_timeout_s = connect_timeout_s
        self._keepalive_s = keepalive_s
        self._on_connection = on_connection
        self._idle: dict[tuple[str, str, int], list[Http1Connection]] = {}
        self._idle_count = 0
        self._busy: set[Http1Connection] = set()
        self._connecting = 0
        self._refilling = 0  # refills opening (`_refill`)
        self._turns = Turns()
        self._targets = Targets()
        self._refills: dict[tuple[str, str, int], deque[Refill]] = {}
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
                    connection = await self._claim_refill(target.key)
                    if connection is None:
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

    def finish(self, connection: Http1Connection, use: int, keep: bool) -> bool:
        """The request numbered `use` on `connection` is done with it. False: it was
        released before, or carries another request now (nothing done)."""
        if connection.uses != use or connection not in self._busy:
            return False
        self._busy.discard(connection)
        if keep and connection.reusable:
            connection.reader = None  # the response keeps it; it refers back to the connection
            self._park(connection)
        else:
            connection.abort()
            self._turns.wake()
        return True

    def _park(self, connection: Http1Connection) -> None:
        """An open connection with no request goes idle (or is closed with the pool)."""
        transport = connection.transport
        if self._closed or transport is None or transport.is_closing():
            connection.abort()
        else:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(connection.key, []).append(connection)
            self._idle_count += 1
            if self._sweep is None:
                self._schedule_sweep()
        self._turns.wake()

    def _cut(self, connection: Http1Connection) -> Callable[[], None]:
        use = connection.uses

        return lambda: self.drop(connection, use, replace=True)

    def drop(self, connection: Http1Connection, use: int, replace: bool) -> None:
        """Drop the connection of request `use` (a reset). `replace`: it was healthy and
        dropped by the gateway's choice (a race's loser, an answer whose client left):
        the pool opens another in its place, if it replaces them and no request waits
        for the place."""
        waiting = bool(self._turns)  # a request waiting for room takes the place freed
        if self.finish(connection, use, keep=False) and replace and not waiting:
            if self._replace_cut:
                self._refill(connection)

    # -- refills: cut connections replaced ahead of need ------------------------------

    def _refill(self, dropped: Http1Connection) -> None:
        """Open a connection to where `dropped` went, in the background, unless that would
        take a place a waiting request needs (at the limit, or requests waiting their
        turn)."""
        target, key = dropped.target, dropped.key
        if target is None or self._closed or self._turns:
            return
        if self._held() >= self._limit:
            return
        self._refilling += 1  # now: another request in this iteration sees the place taken
        task = asyncio.get_running_loop().create_task(self._refill_open(target))
        refill = Refill(key, task)
        self._refills.setdefault(key, deque()).append(refill)
        task.add_done_callback(lambda _: self._refilled(refill))

    async def _refill_open(self, target: Target) -> Http1Connection:
        async with asyncio.timeout(self._connect_timeout_s):
            return await self._open(target, counted=True)

    def _held(self) -> int:
        """Connections in use, idle or being opened: what `limit` bounds."""
        return self._connecting + self._refilling + len(self._busy) + self._idle_count

    def _refilled(self, refill: Refill) -> None:
        """A refill's dial ended: the connection goes idle, unless a request claimed it."""
        self._refilling -= 1
        pending = self._refills.get(refill.key)
        if pending is not None:
            pending.remove(refill)
            if not pending:
                del self._refills[refill.key]
        task = refill.task
        if task.cancelled():
            return
        if task.exception() is not None:
            self._counts.replace_failed += 1
            self._turns.wake()  # its place is free again
            return
        self._counts.replaced += 1
        if refill.claimed:
            self._busy.add(task.result())  # its claimer's: counted from now
        else:
            self._park(task.result())

    async def _claim_refill(self, key: tuple[str, str, int]) -> Http1Connection | None:
        """The connection of a refill still opening to `key`, when there is one nobody
        claimed and it opens; else None (the request dials its own)."""
        refill = next((r for r in self._refills.get(key, ()) if not r.claimed), None)
        if refill is None:
            return None
        refill.claimed = True
        task = refill.task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                refill.claimed = False  # it goes idle when it opens
            elif not task.cancelled() and task.exception() is None:
                connection = task.result()  # opened as this request was cancelled
                self._busy.discard(connection)
                self._park(connection)
            raise
        except (OSError, TimeoutError):
            return None

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
            if self._held() < self._limit or self._evict_idle():
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

    async def _open(self, target: Target, counted: bool = False) -> Http1Connection:
        """A new connection; `counted`: its place is already taken (a refill's)."""
        if counted:
            connection = await self._connect(target)
        else:
            self._connecting += 1
            try:
                connection = await self._connect(target)
            finally:
                self._connecting -= 1
        self._counts.opened += 1
        connection.key, connection.target = target.key, target
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
        refills = [r.task for pending in self._refills.values() for r in pending]
        for task in refills:
            task.cancel()
        await asyncio.gather(*refills, return_exceptions=True)
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
