"""The one place that touches aiohttp's internals (private attributes, undocumented hooks).

aiohttp offers no public way to do these few things; each function says which internal
it relies on and why. `tests/unit/test_aiohttp_compat.py` asserts that every one of them
still exists with the shape used here, so an aiohttp upgrade fails that test first, with
a message naming the internal, instead of a subtle failure elsewhere; pyproject.toml
bounds aiohttp to the minor versions that test has covered.

Server side (server/), client side (streaming/upstream.py) and the simulated providers'
HTTP/2 server (sim/h2serve.py) use it, so it sits outside those packages and imports
nothing from the gateway. One module per seam, each with the one consumer it serves:
`server` (aiohttp's own error answers, its connections), `relay` (the fast relay's reader
diversion and synchronous writer), `body` (the upstream client's body reader), `head` (a
streamed answer's head) and `foreign` (an app served over another protocol: the
simulator's HTTP/2).
"""

from gateway.compat_aiohttp.body import ReaderFlowControl, body_reader
from gateway.compat_aiohttp.foreign import HTTP2, ResponseChannel, serve_foreign_request
from gateway.compat_aiohttp.head import ReadyHead, ready_stream, start_stream
from gateway.compat_aiohttp.relay import (
    _DIVERTED,
    ReaderDiversion,
    SyncWriter,
    divert_reader,
    sync_writer,
    undivert_reader,
    unwatch_reader,
    watch_reader,
)
from gateway.compat_aiohttp.server import (
    ErrorRenderer,
    abort_connections,
    malformed_http_status,
    open_connection_count,
    render_protocol_errors,
)

__all__ = [
    "HTTP2",
    "_DIVERTED",
    "ErrorRenderer",
    "ReaderDiversion",
    "ReaderFlowControl",
    "ReadyHead",
    "ResponseChannel",
    "SyncWriter",
    "abort_connections",
    "body_reader",
    "divert_reader",
    "malformed_http_status",
    "open_connection_count",
    "ready_stream",
    "render_protocol_errors",
    "serve_foreign_request",
    "start_stream",
    "sync_writer",
    "undivert_reader",
    "unwatch_reader",
    "watch_reader",
]
