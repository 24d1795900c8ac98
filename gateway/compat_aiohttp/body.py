"""The upstream client's body reader (streaming/http1/connection.py)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiohttp.streams import StreamReader


class ReaderFlowControl(Protocol):
    """What a `StreamReader` calls on the protocol that feeds it."""

    _reading_paused: bool

    @property
    def connected(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self, resume_parser: bool = True) -> None: ...


def body_reader(
    protocol: ReaderFlowControl, limit: int, loop: asyncio.AbstractEventLoop
) -> StreamReader:
    """An aiohttp `StreamReader` fed by a protocol of the gateway's own (the upstream
    client's connection), so the body hooks above (`watch_reader`, `divert_reader`) and
    every reader of `StreamReader` work on it unchanged.

    Relies on: `StreamReader(protocol, limit, loop=loop)` asking only this of its
    protocol: `pause_reading()` above twice `limit` buffered, `resume_reading()` (with
    `resume_parser=False` at EOF) below it, `_reading_paused` read to decide, and
    `connected` checked before a read waits. The signature wants aiohttp's
    `BaseProtocol`, which would bring a parser this client does not have.
    """
    return StreamReader(protocol, limit, loop=loop)  # type: ignore[arg-type]
