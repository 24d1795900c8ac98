"""A streamed answer's head, cheaply (server/answering.py)."""

from __future__ import annotations

from typing import NamedTuple

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_writer import StreamWriter

_STATUS_200 = b"HTTP/1.1 200 OK\r\n"
_CHUNKED_TAIL = b"Transfer-Encoding: chunked\r\n"
_SERVER = f"Server: {SERVER_SOFTWARE}\r\n".encode()


def _head_is_ours(request: web.Request, response: web.StreamResponse) -> bool:
    """May `ready_stream` ready this response's head itself? Only a fresh 200 (no
    cookies, compression or chunking asked for, headers held for the first write) on an
    HTTP/1.1 request whose app has no `on_response_prepare` hook (CORS, the workers'
    tag) and whose writer has no headers yet and no `on_headers_sent` hook."""
    writer = request._payload_writer
    if (
        response._payload_writer is not None
        or response.status != 200
        or response._cookies
        or response._compression
        or response._chunked
        or response._send_headers_immediately
        or response._headers
        or request.version != HttpVersion11
        or not isinstance(writer, StreamWriter)
        or writer._headers_buf is not None
        or writer._on_headers_sent is not None
    ):
        return False
    match_info = request._match_info
    return match_info is not None and not any(app.on_response_prepare for app in match_info._apps)


class ReadyHead(NamedTuple):
    """A streamed answer's head readied by `ready_stream`, but for what `start_stream` adds."""

    start: bytes  # the status line and the readied fields
    end: bytes  # Server, Connection (when not kept alive), Transfer-Encoding, the empty line
    keep_alive: bool


def ready_stream(
    request: web.Request, response: web.StreamResponse, head: dict[str, str]
) -> ReadyHead | None:
    """Ready the head of `response` (a fresh 200 without headers, whose headers leave with
    its first body write) from `head` ahead of `start_stream`: `response.headers` gets
    `head`, aiohttp's Server, chunked and, on a connection not kept alive, Connection:
    close, as `prepare` would set them. Nothing is written, and neither the request nor
    its writer is touched, so the response may still be dropped (or, should the start
    fall back, prepared by aiohttp, which sets the same). None, having changed nothing,
    where aiohttp's own `prepare` must run (`_head_is_ours`, or a CR or LF in `head`,
    which aiohttp refuses).

    Relies on: `StreamResponse._headers`, `_keep_alive`; `SERVER_SOFTWARE`.
    """
    if not _head_is_ours(request, response) or _breaks_a_line(head):
        return None
    keep_alive = response._keep_alive
    if keep_alive is None:
        keep_alive = request.keep_alive
    headers = response._headers
    headers.extend(head)
    headers["Transfer-Encoding"] = "chunked"
    headers["Server"] = SERVER_SOFTWARE
    end = _SERVER
    if not keep_alive:
        headers["Connection"] = "close"
        end += b"Connection: close\r\n"
    text = "".join([f"{name}: {value}\r\n" for name, value in head.items()])
    return ReadyHead(_STATUS_200 + text.encode(), end + _CHUNKED_TAIL + b"\r\n", keep_alive)


def start_stream(
    request: web.Request, response: web.StreamResponse, ready: ReadyHead, more: dict[str, str]
) -> bool:
    """Do for `response`, readied by `ready_stream`, what `response.headers.update(more)`
    and `await response.prepare(request)` would do: the head is the readied fields, then
    `more`, aiohttp's own Date and the rest; the response and its writer are left as
    aiohttp's `prepare` leaves them. False, having changed nothing, where aiohttp's own
    `prepare` must run (the writer was given a head or a hook meanwhile, or a CR or LF
    in `more`): the caller then does that, with `more` added to `response.headers`.

    Relies on: `StreamResponse._req`, `_payload_writer`, `_keep_alive`,
    `_must_be_empty_body`, `_headers`; `StreamWriter.enable_chunking()`, `_headers_buf`,
    `_headers_written`, `_on_headers_sent`; `helpers.rfc822_formatted_time`.
    """
    writer = request._payload_writer
    if (
        response._payload_writer is not None
        or not isinstance(writer, StreamWriter)
        or writer._headers_buf is not None
        or writer._on_headers_sent is not None
        or _breaks_a_line(more)
    ):
        return False
    response._keep_alive = ready.keep_alive
    response._must_be_empty_body = False
    response._req = request
    response._payload_writer = writer
    writer.enable_chunking()
    date = rfc822_formatted_time()
    text = "".join([f"{name}: {value}\r\n" for name, value in more.items()])
    headers = response._headers
    headers.extend(more)
    headers["Date"] = date
    writer._headers_buf = ready.start + f"{text}Date: {date}\r\n".encode() + ready.end
    writer._headers_written = False
    return True


def _breaks_a_line(fields: dict[str, str]) -> bool:
    text = "".join(fields) + "".join(fields.values())
    return "\r" in text or "\n" in text
