"""An HTTP/1.x response head (status line and header fields), parsed, and what it says
about the body that follows: how it is framed, whether the connection stays open after
it, and which content coding it is in (RFC 9112 sections 4-6 and 9.3).

Pure: bytes in, a `ResponseHead` out, or `ProtocolError` for anything a client must not
guess at (a malformed status line, conflicting lengths, a field name with spaces).
"""

from __future__ import annotations

import re

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


class ResponseHead:
    """A final or interim head. `headers` (case-insensitive, repeated names kept) is built
    when first asked for: a streamed answer's path only needs the framing."""

    __slots__ = (
        "_fields",
        "_headers",
        "content_encoding",
        "content_type",
        "framing",
        "keep_alive",
        "length",
        "reason",
        "status",
    )

    def __init__(self, status: int, reason: str, fields: list[tuple[str, str]]) -> None:
        self.status = status
        self.reason = reason
        self._fields = fields
        self._headers: CIMultiDictProxy[str] | None = None
        self.framing = NONE  # CHUNKED, LENGTH, UNTIL_CLOSE or NONE
        self.length = 0  # the body's length when framing is LENGTH
        self.keep_alive = False  # the connection may carry another request after the body
        self.content_encoding = ""  # "" (identity), "gzip" or "deflate"
        self.content_type = ""  # the media type without parameters, lower case

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:
            self._headers = CIMultiDictProxy(CIMultiDict(self._fields))
        return self._headers

    @property
    def informational(self) -> bool:
        """A 1xx interim answer (100 Continue, 103 Early Hints): the final one follows."""
        return self.status < 200


# the fields that decide how the body is read, by lower-case name
_FRAMING_FIELDS = frozenset(
    {"transfer-encoding", "content-length", "connection", "content-encoding", "content-type"}
)


def parse_head(raw: bytes, method: str) -> ResponseHead:
    """Parse a head (without its closing empty line) answering a `method` request."""
    if len(raw) > MAX_HEAD:
        raise ProtocolError("response head too large")
    lines = raw.split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise ProtocolError("malformed status line")
    minor, code, reason = match.groups()
    if len(lines) - 1 > MAX_FIELDS:
        raise ProtocolError("too many header fields")
    fields, framing = _fields(lines)
    head = ResponseHead(int(code), (reason or b"").decode("latin-1"), fields)
    head.keep_alive = _keep_alive(minor == b"1", framing)
    head.framing, head.length = _framing(head.status, method, framing)
    if head.framing == UNTIL_CLOSE:
        head.keep_alive = False
    if head.framing != NONE:
        head.content_encoding = _content_encoding(framing)
    types = framing.get("content-type")
    head.content_type = _media_type(types[0] if types else None)
    return head


def head_from_fields(status: int, fields: list[tuple[str, str]], method: str) -> ResponseHead:
    """An HTTP/2 answer's head: the same fields, no status line; its frames frame the
    body, so `framing` only says whether one follows (LENGTH of 0 for none is not used)."""
    framing: dict[str, list[str]] = {}
    for name, value in fields:
        if name in _FRAMING_FIELDS:  # HTTP/2 field names are lower case
            framing.setdefault(name, []).append(value)
    head = ResponseHead(status, "", fields)
    head.keep_alive = True
    head.framing = _framing(status, method, {})[0]  # NONE, or UNTIL_CLOSE: to END_STREAM
    if head.framing != NONE:
        head.content_encoding = _content_encoding(framing)
    types = framing.get("content-type")
    head.content_type = _media_type(types[0] if types else None)
    return head


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


def _fields(lines: list[bytes]) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """All fields in order, and the values of those that frame the body by lower-case name."""
    fields: list[tuple[str, str]] = []
    framing: dict[str, list[str]] = {}
    for line in lines[1:]:
        if not line:
            raise ProtocolError("empty line inside the head")
        text = line.decode("latin-1")
        if text[0] in " \t":  # obsolete line folding: a continuation of the last value
            if not fields:
                raise ProtocolError("header continuation without a field")
            name, value = fields.pop()
            fields.append((name, f"{value} {text.strip()}"))
            lower = name.lower()
            if lower in framing:
                framing[lower][-1] = fields[-1][1]
            continue
        name, sep, value = text.partition(":")
        if not sep or not valid_name(name):  # no space before the colon either
            raise ProtocolError("malformed header field")
        if "\x00" in value:
            raise ProtocolError("NUL in a header value")
        value = value.strip(" \t")
        fields.append((name, value))
        lower = name.lower()
        if lower in _FRAMING_FIELDS:
            framing.setdefault(lower, []).append(value)
    return fields, framing


def _tokens(framing: dict[str, list[str]], name: str) -> list[str]:
    values = framing.get(name)
    if not values:
        return []
    tokens = (token.strip().lower() for value in values for token in value.split(","))
    return [token for token in tokens if token]


def _keep_alive(http11: bool, framing: dict[str, list[str]]) -> bool:
    options = _tokens(framing, "connection")
    if "close" in options:
        return False
    return http11 or "keep-alive" in options


def _framing(status: int, method: str, framing: dict[str, list[str]]) -> tuple[int, int]:
    if status < 200 or status in (204, 304) or method == "HEAD":
        return NONE, 0
    codings = _tokens(framing, "transfer-encoding")
    if codings:
        # chunked must be the last coding; otherwise the body runs to the close
        return (CHUNKED if codings[-1] == "chunked" else UNTIL_CLOSE), 0
    lengths = {value.strip() for value in framing.get("content-length", ())}
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


def _content_encoding(framing: dict[str, list[str]]) -> str:
    codings = [coding for coding in _tokens(framing, "content-encoding") if coding != "identity"]
    if not codings:
        return ""
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    raise ProtocolError(f"unsupported content coding {','.join(codings)[:40]!r}")


def _media_type(value: str | None) -> str:
    if not value:
        return "application/octet-stream"  # as aiohttp answers for a missing type
    return value.partition(";")[0].strip().lower()
