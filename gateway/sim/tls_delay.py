"""A TLS listener whose handshakes take `handshake_ms`, as a distant provider's do.

Over plain TCP the simulator charges `handshake_ms` to a connection's first request (from
the accept, `app._connections`). Over TLS that is not where a client pays it: its connect
returns only once the handshake is done, so a client that opens a connection ahead of
need (a pool replacing one, a pre-warmer) has it ready, or waits for what is left. Here
each accepted connection holds its first bytes (the ClientHello) for `handshake_ms`, then
runs the TLS handshake and hands the TLS transport to the server's protocol; its requests
then pay nothing more (`accepted_at` says when the connection came, which is long enough
ago).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable


class DelayedTls:
    """Wraps a server's protocol factory: `factory()` gives the protocol for the plain
    listening socket. `close()` drops the handshakes still waiting or running."""

    def __init__(
        self, context: ssl.SSLContext, delay_s: float, serve: Callable[[], asyncio.Protocol]
    ) -> None:
        self._context = context
        self._delay_s = delay_s
        self._serve = serve
        self._pending: set[_Handshaking] = set()

    def factory(self) -> asyncio.Protocol:
        return _Handshaking(self)

    async def close(self) -> None:
        pending, self._pending = list(self._pending), set()
        for handshaking in pending:
            handshaking.drop()
        await asyncio.gather(*(h.task for h in pending if h.task), return_exceptions=True)


class _Handshaking(asyncio.Protocol):
    """One accepted connection until its TLS handshake is done."""

    def __init__(self, owner: DelayedTls) -> None:
        self._owner = owner
        self._served = owner._serve()  # made at the accept: the accept time is logged then
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.pause_reading()  # the ClientHello waits in the socket meanwhile
        self._owner._pending.add(self)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._owner._delay_s, self._start)

    def _start(self) -> None:
        self._timer = None
        self.task = asyncio.get_running_loop().create_task(self._handshake())

    async def _handshake(self) -> None:
        transport, served = self._transport, self._served
        assert transport is not None
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport, served, self._owner._context, server_side=True
            )
        except (OSError, ssl.SSLError, TimeoutError):
            transport.abort()  # the client went, or refused the handshake
            return
        finally:
            self._owner._pending.discard(self)
        if tls is None:  # the connection closed meanwhile
            return
        served.connection_made(tls)

    def data_received(self, data: bytes) -> None:  # reading is paused: never before TLS
        self.drop()

    def connection_lost(self, exc: Exception | None) -> None:
        """Before its handshake began: nothing more to do for it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._owner._pending.discard(self)

    def drop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.task is not None:
            self.task.cancel()
        if self._transport is not None:
            with contextlib.suppress(RuntimeError):
                self._transport.abort()
