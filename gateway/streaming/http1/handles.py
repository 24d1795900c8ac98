"""What the HTTP/1.1 pool (`http1.pool`) hands out and keeps besides its connections: an
answer (`Response`), a request sent ahead (`Sent`), a replacement dialing (`Refill`), and
the counters it keeps (`ConnectionCounts`)."""

from __future__ import annotations

import asyncio
from typing import NamedTuple, Protocol

from aiohttp import StreamReader
from multidict import CIMultiDictProxy

from gateway.streaming.http1.connection import Http1Connection
from gateway.streaming.http1.head import ResponseHead


class Finishing(Protocol):
    def finish(self, connection: Http1Connection, use: int, keep: bool) -> bool: ...

    def drop(self, connection: Http1Connection, use: int, replace: bool) -> None: ...


class ConnectionCounts(Protocol):
    opened: int  # new connections made
    reused: int  # requests given a pooled (keep-alive) connection
    replaced: int  # cut connections replaced in the background (`replace_cut`)
    replace_failed: int  # such replacements that could not connect


class Response:
    """The head of an upstream's answer and its body as it arrives."""

    __slots__ = ("_connection", "_head", "_pool", "_use", "content", "content_type", "status")

    def __init__(self, pool: Finishing, connection: Http1Connection, head: ResponseHead) -> None:
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

    def close(self, replace: bool = False) -> None:
        """Drop the connection (a reset), whatever is left of the body. `replace`: it was
        healthy (its reader left): the pool may open another in its place."""
        self._pool.drop(self._connection, self._use, replace)


class Sent(NamedTuple):
    """A request written to `connection` (its `use`-th); `head` is its answer's head."""

    connection: Http1Connection
    use: int
    head: asyncio.Future[ResponseHead]


class Refill:
    """A connection opening in the background to replace one a race cut. `claimed`: a
    request waits for it (it does not go idle when it opens)."""

    __slots__ = ("claimed", "key", "task")

    def __init__(self, key: tuple[str, str, int], task: asyncio.Task[Http1Connection]) -> None:
        self.key = key
        self.task = task
        self.claimed = False
