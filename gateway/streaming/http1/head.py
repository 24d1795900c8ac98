"""An HTTP/1.x response head (status line and header fields), parsed, and what it says
about the body that follows: how it is framed, whether the connection stays open after
it, and which content coding it is in (RFC 9112 sections 4-6 and 9.3).

Pure: bytes in, a `ResponseHead` out, or `ProtocolError` for anything a client must not
guess at (a malformed status line, conflicting lengths, a field name with spaces).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from multidict import CIMultiDict, CIMultiDictProxy

MAX_HEAD = 64 * 1024  # status line and all fields, as aiohttp's limits allow in all
MAX_FIELDS = 128

CHUNKED = 1  # body framed by chunked transfer coding
LENGTH = 2  # body of `length` bytes
UNTIL_CLOSE = 3  # body ends when the server closes the connection
NONE = 4  # no body (1xx, 204, 304, an answer to HEAD)

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: ([^\r\n]*))?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_DIGITS = re.compile(r"[0-9]+")


class ProtocolError(Exception):
    """The server's answer breaks HTTP/1.1 in a way a client must not guess around."""


class ResponseHead(NamedTuple):
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    framing: int  # CHUNKED, LENGTH, UNTIL_CLOSE or NONE
    length: int  # the body's length when framing is LENGTH
    keep_alive: bool  # the connection may carry another request after this body
    content_encoding: str  # "" (identity), "gzip" or "deflate"; lower case
    content_type: str  # the media type without parameters, lower case

    @property
    def informational(self) -> bool:
        """A 1xx interim answer (100 Continue, 103 Early Hints): the final one follows."""
        return self.status < 200


def parse_head(raw: bytes, method: str) -> ResponseHead:
    """Parse a head (without its closing empty line) answering a `method` request."""
    if len(raw) > MAX_HEAD:
        raise ProtocolError("response head too large")
    lines = raw.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise ProtocolError("malformed status line")
    minor, code, reason = match.groups()
    status = int(code)
    if len(lines) - 1 > MAX_FIELDS:
        raise ProtocolError("too many header fields")
    headers = _fields(lines)
    keep_alive = _keep_alive(minor == b"1", headers)
    framing, length = _framing(status, method, headers)
    if framing == UNTIL_CLOSE:
        keep_alive = False
    return ResponseHead(
        status,
        (reason or b"").decode("latin-1"),
        CIMultiDictProxy(headers),
        framing,
        length,
        keep_alive,
        _content_encoding(headers) if framing != NONE else "",
        _media_type(headers.get("Content-Type")),
    )


_NAMES: set[str] = set()  # field names seen valid (a few dozen in practice)


def valid_name(name: str) -> bool:
    """A field name is a token (RFC 9110 5.1); known ones are not matched again."""
    if name in _NAMES:
        return True
    if _TOKEN.fullmatch(name) is None:
        return False
    if len(_NAMES) < 1024:
        _NAMES.add(name)
    return True


def _fields(lines: list[bytes]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    name = ""
    for line in lines[1:]:
        if not line:
            raise ProtocolError("empty line inside the head")
        text = line.decode("latin-1")
        if text[0] in " \t":  # obsolete line folding: a continuation of the last value
            if not name:
                raise ProtocolError("header continuation without a field")
            last = headers.popall(name)
            headers.extend((name, value) for value in last[:-1])
            headers.add(name, f"{last[-1]} {text.strip()}")
            continue
        name, sep, value = text.partition(":")
        if not sep or not valid_name(name):  # no space before the colon either
            raise ProtocolError("malformed header field")
        if "\x00" in value:
            raise ProtocolError("NUL in a header value")
        headers.add(name, value.strip(" \t"))
    return headers


def _tokens(headers: CIMultiDict[str], name: str) -> list[str]:
    if name not in headers:
        return []
    return [
        token.strip().lower()
        for value in headers.getall(name, ())
        for token in value.split(",")
        if token.strip()
    ]


def _keep_alive(http11: bool, headers: CIMultiDict[str]) -> bool:
    options = _tokens(headers, "Connection")
    if "close" in options:
        return False
    return http11 or "keep-alive" in options


def _framing(status: int, method: str, headers: CIMultiDict[str]) -> tuple[int, int]:
    if status < 200 or status in (204, 304) or method == "HEAD":
        return NONE, 0
    codings = _tokens(headers, "Transfer-Encoding")
    if codings:
        # chunked must be the last coding; otherwise the body runs to the close
        return (CHUNKED if codings[-1] == "chunked" else UNTIL_CLOSE), 0
    lengths = {value.strip() for value in headers.getall("Content-Length", ())}
    if not lengths:
        return UNTIL_CLOSE, 0
    # one value, or the same value repeated (also as a list: "42, 42")
    values = {part.strip() for value in lengths for part in value.split(",")}
    if len(values) != 1:
        raise ProtocolError("conflicting Content-Length")
    (value,) = values
    if _DIGITS.fullmatch(value) is None:
        raise ProtocolError("malformed Content-Length")
    return LENGTH, int(value)


def _content_encoding(headers: CIMultiDict[str]) -> str:
    codings = [coding for coding in _tokens(headers, "Content-Encoding") if coding != "identity"]
    if not codings:
        return ""
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    raise ProtocolError(f"unsupported content coding {','.join(codings)[:40]!r}")


def _media_type(value: str | None) -> str:
    if not value:
        return "application/octet-stream"  # as aiohttp answers for a missing type
    return value.partition(";")[0].strip().lower()
