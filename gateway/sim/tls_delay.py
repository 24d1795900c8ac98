"""A TLS listener whose handshakes take `handshake_ms`, as a distant provider's do.

Over plain TCP the simulator charges `handshake_ms` to a connection's first request (from
the accept, `app._connections`). Over TLS that is not where a client pays it: its connect
returns only once the handshake is done, so a client that opens a connection ahead of
need (a pool replacing one, a pre-warmer) has it ready, or waits for what is left. Here
each accepted socket is held for `handshake_ms` (its ClientHello waits in the kernel)
before the loop takes it and runs the TLS handshake. The server's protocol is made at the
accept, which is when `ConnectionTracker.accepted` stamps it, so its first request pays
nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable


class DelayedTls:
    """Accepts on its own socket; `serve()` makes the server's protocol for a connection."""

    def __init__(
        self, context: ssl.SSLContext, delay_s: float, serve: Callable[[], asyncio.Protocol]
    ) -> None:
        self._context = context
        self._delay_s = delay_s
        self._serve = serve
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._held: dict[socket.socket, asyncio.TimerHandle] = {}
        self._handshakes: set[asyncio.Task[object]] = set()

    async def start(self, host: str, port: int, backlog: int) -> None:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        listener = socket.socket(family, kind, proto)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(backlog)
        listener.setblocking(False)
        self._listener = listener
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    @property
    def port(self) -> int:
        assert self._listener is not None, "DelayedTls not started"
        return int(self._listener.getsockname()[1])

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            try:
                sock, _ = await loop.sock_accept(self._listener)
            except OSError:
                continue  # the client went before its accept (or no descriptor was free)
            protocol = self._serve()  # now: the accept time is stamped with it
            self._held[sock] = loop.call_later(self._delay_s, self._handshake, sock, protocol)

    def _handshake(self, sock: socket.socket, protocol: asyncio.Protocol) -> None:
        del self._held[sock]
        loop = asyncio.get_running_loop()
        task: asyncio.Task[object] = loop.create_task(
            loop.connect_accepted_socket(lambda: protocol, sock, ssl=self._context)
        )
        self._handshakes.add(task)
        task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Task[object]) -> None:
        self._handshakes.discard(task)
        if not task.cancelled():
            task.exception()  # a client that went or refused TLS: nothing to report

    async def close(self) -> None:
        """Stop accepting; drop the connections still held or in their handshake."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        held, self._held = self._held, {}
        for sock, timer in held.items():
            timer.cancel()
            sock.close()
        handshakes = list(self._handshakes)
        for task in handshakes:
            task.cancel()
        await asyncio.gather(*handshakes, return_exceptions=True)
