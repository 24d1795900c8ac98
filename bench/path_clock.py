"""Where a proxy's added TTFT goes: `python -m bench.path_clock OUT (gateway ARGS | bare ARGS)`.

Runs the gateway (`python -m gateway ARGS`) or the bare proxy (`python -m bench.bare_proxy
ARGS`) unchanged, except that four points of the path to the first token are stamped
with `time.perf_counter_ns()`, in memory:

- `in`: request bytes reach the proxy (aiohttp's server protocol, `data_received`);
- `up`: the proxy writes to the upstream (the gateway's `Http1Connection.send`, or the
  bare proxy's aiohttp client writer);
- `tok`: upstream bytes reach the proxy (the gateway's `Http1Connection.data_received`,
  or aiohttp's client protocol);
- `out`: the proxy writes to its client (aiohttp's server-side writer).

SIGUSR1 writes the stamps to OUT, one `kind ns` per line.
`bench.ttft_path` drives both at concurrency 1 and reads the two stretches per request:
`in` to `up` (the request's way upstream) and the last `tok` before the first `out` to
that `out` (the first token's way back). Bench only: production code has no hook.
"""

from __future__ import annotations

import asyncio
import functools
import os
import runpy
import signal
import sys
import time
from typing import Any

from aiohttp import client_proto, http_writer, web_protocol

STAMPS: list[tuple[str, int]] = []
_now = time.perf_counter_ns


def _stamp_calls(owner: type, name: str, kind: Any) -> None:
    original = getattr(owner, name)

    def stamped(self: Any, *args: Any) -> Any:
        which = kind(self) if callable(kind) else kind
        if which is not None:
            STAMPS.append((which, _now()))
        return original(self, *args)

    setattr(owner, name, stamped)


def _stamp_around(owner: type, name: str, kind: str) -> None:
    original = getattr(owner, name)
    if asyncio.iscoroutinefunction(original):

        @functools.wraps(original)
        async def stamped_async(*args: Any, **kwargs: Any) -> Any:
            STAMPS.append((kind + "<", _now()))
            try:
                return await original(*args, **kwargs)
            finally:
                STAMPS.append((kind + ">", _now()))

        setattr(owner, name, stamped_async)
        return

    @functools.wraps(original)
    def stamped(*args: Any, **kwargs: Any) -> Any:
        STAMPS.append((kind + "<", _now()))
        try:
            return original(*args, **kwargs)
        finally:
            STAMPS.append((kind + ">", _now()))

    setattr(owner, name, stamped)


def _inner() -> None:
    """Stamps inside the gateway's path (PATH_CLOCK_INNER=1): each stretch broken down."""
    import importlib

    points = [
        ("gateway.server.app", None, "entry_middleware", "mw"),
        ("gateway.server.app", None, "admission_middleware", "adm"),
        ("gateway.server.handlers", None, "chat_completions", "chat"),
        ("gateway.server.handlers", None, "open_answer", "oa"),
        ("gateway.server.answering", None, "read_body", "rb"),
        ("gateway.server.handlers", None, "parse_chat_request", "parse"),
        ("gateway.pipeline", "Pipeline", "open", "open"),
        ("gateway.routing.planner", "CandidatePlanner", "plan", "plan"),
        ("gateway.upstreams", "Upstreams", "build", "build"),
        ("gateway.streaming.http1.pool", "Http1Pool", "request", "req"),
        ("gateway.providers.openai_stream", "OpenAIStreamDecoder", "feed", "feed"),
        ("gateway.streaming.encode", "ChunkEncoder", "encode", "enc"),
        ("aiohttp.web_response", "StreamResponse", "prepare", "prep"),
        ("gateway.server.answering", None, "prepare_stream", "pst"),
        ("gateway.server.answering", "FirstWrite", "start", "fw"),
        ("gateway.server.answering", "FirstWrite", "ready", "rdy"),
        ("aiohttp.streams", "StreamReader", "feed_data", "fd"),
        ("aiohttp.streams", "StreamReader", "readany", "ra"),
        ("gateway.streaming.attempt", None, "first_token", "ft"),
        ("gateway.streaming.race", "Race", "_declare", "decl"),
        ("gateway.answer", "Answer", "first", "afirst"),
    ]
    for module_name, cls, name, kind in points:
        owner: Any = importlib.import_module(module_name)
        if cls is not None:
            owner = getattr(owner, cls, None)
        if hasattr(owner, name):  # each revision has the points it has
            _stamp_around(owner, name, kind)


def _writer_kind(writer: Any) -> str:
    return "out" if isinstance(writer._protocol, web_protocol.RequestHandler) else "up"


def install() -> None:
    _stamp_calls(web_protocol.RequestHandler, "data_received", "in")
    _stamp_calls(client_proto.ResponseHandler, "data_received", "tok")
    _stamp_calls(http_writer.StreamWriter, "_write", _writer_kind)
    _stamp_calls(http_writer.StreamWriter, "_writelines", _writer_kind)
    try:
        from gateway.streaming.http1.connection import Http1Connection
    except ImportError:
        return
    _stamp_calls(Http1Connection, "send", "up")
    _stamp_calls(Http1Connection, "data_received", "tok")
    if os.environ.get("PATH_CLOCK_INNER"):
        _inner()


def _dump(path: str) -> None:
    with open(path, "w") as out:
        out.writelines(f"{kind} {ns}\n" for kind, ns in list(STAMPS))
        out.write("end 0\n")


if __name__ == "__main__":
    out_path, which, *rest = sys.argv[1:]
    install()
    signal.signal(signal.SIGUSR1, lambda *_: _dump(out_path))
    module = "gateway" if which == "gateway" else "bench.bare_proxy"
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
