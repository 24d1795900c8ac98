"""The gateway with a clock on its cuts: `python -m bench.cut_clock LOG serve --config F`.

Runs `python -m gateway ...` unchanged, except that every upstream connection (over
HTTP/2: stream) dropped before its answer was complete (a race's loser at the cut, a
failure) appends a line to LOG: the `time.monotonic()` of the drop and the first
`"content"` string of the request it carried (the benchmarks tag each request's
prompt). The simulator logs its token writes on the same clock (Linux
`CLOCK_MONOTONIC`, one per machine), so `bench.loser_cut` can tell the tokens a loser
was sent before the gateway cut it from those the simulator wrote after, into a socket
already reset, which never reached the gateway.

Per request it costs one attribute store on the send; the regex and the write happen on
the drop only. Production code has no such hook: it is patched in here.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO

from gateway.cli import main as gateway_main
from gateway.streaming.http1.connection import Http1Connection
from gateway.streaming.http2.connection import Http2Connection
from gateway.streaming.http2.frames import CANCEL
from gateway.streaming.http2.stream import Http2Stream

_CONTENT = re.compile(rb'"content":"([^"]{1,200})"')


def install(log: IO[str]) -> None:
    send, abort = Http1Connection.send, Http1Connection.abort

    def sending(self: Http1Connection, data: bytes, method: str):  # type: ignore[no-untyped-def]
        self._bench_sent = data  # type: ignore[attr-defined]
        return send(self, data, method)

    def aborting(self: Http1Connection) -> None:
        sent = getattr(self, "_bench_sent", None)
        if sent is not None and not self.complete and self.transport is not None:
            found = _CONTENT.search(sent)
            if found is not None:
                log.write(f"{time.monotonic()} {found.group(1).decode(errors='replace')}\n")
        abort(self)

    Http1Connection.send = sending  # type: ignore[method-assign]
    Http1Connection.abort = aborting  # type: ignore[method-assign]
    _install_http2(log)


def _install_http2(log: IO[str]) -> None:
    """The same over HTTP/2: a stream reset before its answer ended (`Http2Connection.reset`)."""
    opened, reset = Http2Connection.open, Http2Connection.reset
    forget, lost = Http2Connection._forget, Http2Connection.connection_lost
    bodies: dict[Http2Stream, bytes] = {}

    def opening(self: Http2Connection, method: str, block: bytes, body: bytes | None):  # type: ignore[no-untyped-def]
        stream = opened(self, method, block, body)
        if body:
            bodies[stream] = body
        return stream

    def resetting(self: Http2Connection, stream: Http2Stream, code: int = CANCEL) -> None:
        body = bodies.get(stream)
        if body is not None and not stream.done and self.transport is not None:
            found = _CONTENT.search(body)
            if found is not None:
                log.write(f"{time.monotonic()} {found.group(1).decode(errors='replace')}\n")
        reset(self, stream, code)

    def forgetting(self: Http2Connection, stream: Http2Stream) -> None:
        bodies.pop(stream, None)
        forget(self, stream)

    def losing(self: Http2Connection, exc: Exception | None) -> None:
        for stream in self.streams.values():
            bodies.pop(stream, None)
        lost(self, exc)

    Http2Connection.open = opening  # type: ignore[method-assign]
    Http2Connection.reset = resetting  # type: ignore[method-assign]
    Http2Connection._forget = forgetting  # type: ignore[method-assign]
    Http2Connection.connection_lost = losing  # type: ignore[method-assign]


def read_cuts(path: str) -> dict[str, float]:
    """Tag -> the time of its request's first drop (a race's cut comes first)."""
    cuts: dict[str, float] = {}
    try:
        with open(path) as lines:
            for line in lines:
                at, _, tag = line.rstrip("\n").partition(" ")
                cuts.setdefault(tag, float(at))
    except FileNotFoundError:
        pass
    return cuts


if __name__ == "__main__":
    with open(sys.argv[1], "a", buffering=1) as cut_log:  # a line each, as it happens
        install(cut_log)
        sys.exit(gateway_main(sys.argv[2:]))
