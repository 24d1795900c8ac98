"""Opening a connection to an upstream for either client (`http1.pool`, `http2.pool`):
the name resolved (cached), then TCP (and TLS) to one of its addresses.

One IPv4 address: the loop connects (uvloop's is C). Several, or IPv6 (a scope rides on
the address tuple): happy eyeballs, as aiohttp does (RFC 8305: the next address is tried
250 ms into the last one's attempt, families interleaved).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import TypeVar

import aiohappyeyeballs

from gateway.streaming.http1.request import Target

DNS_TTL_S = 300.0
MAX_CACHED = 512  # resolved hosts kept
AddrInfo = aiohappyeyeballs.AddrInfoType  # (family, type, proto, canonical name, address)
P = TypeVar("P", bound=asyncio.BaseProtocol)


class ConnectFailed(ConnectionError):
    """No connection could be made to the upstream (refused, unreachable, TLS, DNS)."""


class Dialer:
    """Resolves and connects; `tls` is the context for https targets (default: the
    system's trust store), `alpn` the protocols offered in its handshake."""

    def __init__(self, tls: ssl.SSLContext | None = None, alpn: Sequence[str] = ()) -> None:
        self._tls = tls
        self._alpn = tuple(alpn)
        self._addresses: dict[tuple[str, int], tuple[float, list[AddrInfo]]] = {}

    async def connect(self, target: Target, protocol: Callable[[], P]) -> P:
        loop = asyncio.get_running_loop()
        infos = await self.resolve(target)
        tls = self.tls_context() if target.tls else None
        hostname = target.host if target.tls else None
        try:
            family, _, proto, _, address = infos[0]
            if len(infos) == 1 and family == socket.AF_INET:
                _, connection = await loop.create_connection(
                    protocol,
                    address[0],
                    address[1],
                    family=family,
                    proto=proto,
                    ssl=tls,
                    server_hostname=hostname,
                )
            else:
                sock = await aiohappyeyeballs.start_connection(
                    infos, happy_eyeballs_delay=0.25, interleave=1
                )
                _, connection = await loop.create_connection(
                    protocol, sock=sock, ssl=tls, server_hostname=hostname
                )
        except ssl.SSLError as exc:  # a certificate problem, or TLS refused
            raise ConnectFailed(f"TLS with {target.host} failed") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {target.host}:{target.port}") from exc
        return connection

    async def resolve(self, target: Target) -> list[AddrInfo]:
        if target.numeric:
            host, port = target.host, target.port
            if ":" in host:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (host, port, 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
        loop = asyncio.get_running_loop()
        where = (target.host, target.port)
        cached = self._addresses.get(where)
        if cached is not None and cached[0] > loop.time():
            return cached[1]
        try:
            infos = await loop.getaddrinfo(*where, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectFailed(f"cannot resolve {target.host}") from exc
        if not infos:
            raise ConnectFailed(f"cannot resolve {target.host}")
        addresses: list[AddrInfo] = list(infos)
        if len(self._addresses) >= MAX_CACHED:
            self._addresses.clear()
        self._addresses[where] = (loop.time() + DNS_TTL_S, addresses)
        return addresses

    def tls_context(self) -> ssl.SSLContext:
        if self._tls is not None:
            return self._tls
        return _system_context(self._alpn)


_TLS: dict[tuple[str, ...], ssl.SSLContext] = {}


def _system_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    """The system's trust store, verified; made once per ALPN offer (loading it takes
    milliseconds)."""
    context = _TLS.get(alpn)
    if context is None:
        context = ssl.create_default_context()
        if alpn:
            context.set_alpn_protocols(list(alpn))
        _TLS[alpn] = context
    return context
