"""Request log shared by every simulated server: what happened, when, on which connection.

Times are `time.monotonic()` seconds. Tests wait on the log instead of
sleeping: `await log.wait_for(lambda recs: any(r.outcome == "cut" for r in recs))`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import orjson

PENDING = "pending"
MAX_ACCEPTED = 4096  # accepted connections remembered until their first request


@dataclass(slots=True)
class SimRecord:
    seq: int
    server: str
    kind: str
    path: str
    connection_id: int
    new_connection: bool  # first request on this TCP connection (paid handshake_ms)
    handshake_ms: float  # the connection's handshake delay (0 on a reused connection)
    arrival: float
    # What this request waited of it: less when the connection was opened ahead of its
    # first request (the handshake runs from the accept, as a TLS handshake would)
    handshake_wait_ms: float = 0.0
    model: str | None = None
    stream: bool | None = None
    request_n: int | None = None  # the model's request counter (seeds the draws)
    planned_ttft_ms: float | None = None  # the TTFT draw (the benchmark oracle)
    hour: int | None = None  # UTC hour of the cluster's clock when the request was planned
    region: str | None = None  # the client region the request was simulated for
    ttft_multiplier: float = 1.0  # hourly x region factor applied to the model's TTFT
    straggler: bool = False
    degraded: bool = False  # the model's two-state process was in its degraded state
    planned_fault: str | None = None
    stalled: bool = False
    status: int | None = None
    headers_sent: float | None = None
    first_token: float | None = None
    end: float | None = None
    disconnect: float | None = None
    outcome: str = PENDING  # completed | client_disconnect | error_<status> | cut | midstream_error
    tokens_sent: int = 0
    token_times: list[float] | None = None  # when each token was written (log_token_times)
    last_user_text: str = ""  # first 500 characters (tests prove what left the gateway)
    continued_from: str | None = None  # the assistant prefix a continuation request sent
    traceparent: str | None = None  # W3C trace context headers the request carried
    tracestate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConnectionTracker:
    """Stable ids per TCP connection (transport), without keeping transports alive; and
    when each connection was accepted, until its first request."""

    def __init__(self) -> None:
        self._ids: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._next = 0
        self._accepted: dict[object, float] = {}  # connection's protocol -> accepted at

    def accepted(self, protocol: object) -> None:
        """A connection was accepted (its server's protocol object, now)."""
        if len(self._accepted) >= MAX_ACCEPTED:  # never asked for: the oldest goes
            del self._accepted[next(iter(self._accepted))]
        self._accepted[protocol] = now()

    def accepted_at(self, protocol: object) -> float | None:
        """When the connection of `protocol` was accepted (asked once, at its first
        request); None when unknown."""
        return self._accepted.pop(protocol, None)

    def see(self, transport: object | None) -> tuple[int, bool]:
        """(connection id, True if this is the connection's first request)."""
        if transport is None:
            self._next += 1
            return self._next, True
        try:
            conn = self._ids.get(transport)
        except TypeError:  # uvloop's TLS transport takes no weak reference; its TLS object
            transport = transport.get_extra_info("ssl_object")  # type: ignore[attr-defined]
            conn = self._ids.get(transport)
        if conn is not None:
            return conn, False
        self._next += 1
        self._ids[transport] = self._next
        return self._next, True


class SimLog:
    def __init__(self, token_times: bool = False) -> None:
        self.token_times = token_times  # keep each streamed token's write time
        self.records: list[SimRecord] = []
        self.connections = ConnectionTracker()
        self._seq = 0
        self._cond = asyncio.Condition()

    def open(
        self,
        *,
        server: str,
        kind: str,
        path: str,
        connection_id: int,
        new_connection: bool,
        handshake_ms: float,
        arrival: float,
        headers: Mapping[str, str] | None = None,
        handshake_wait_ms: float = 0.0,
    ) -> SimRecord:
        self._seq += 1
        record = SimRecord(
            seq=self._seq,
            server=server,
            kind=kind,
            path=path,
            connection_id=connection_id,
            new_connection=new_connection,
            handshake_ms=handshake_ms,
            arrival=arrival,
            handshake_wait_ms=handshake_wait_ms,
            token_times=[] if self.token_times else None,
        )
        if headers is not None:
            record.traceparent = headers.get("traceparent")
            record.tracestate = headers.get("tracestate")
        self.records.append(record)
        return record

    async def changed(self) -> None:
        """Wake `wait_for` callers; call after updating a record."""
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(
        self,
        predicate: Callable[[list[SimRecord]], bool],
        timeout: float = 10.0,  # noqa: ASYNC109 - a test-facing convenience bound
    ) -> list[SimRecord]:
        """Wait until predicate(records) holds; raises TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout), self._cond:
            await self._cond.wait_for(lambda: predicate(self.records))
        return self.records

    def clear(self) -> None:
        self.records = []

    def to_json(self) -> bytes:
        return orjson.dumps([r.to_dict() for r in self.records])


def now() -> float:
    return time.monotonic()
