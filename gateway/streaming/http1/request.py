"""An upstream request as bytes: where its URL points (`Target`, parsed once per URL by
the pool) and the message itself (`encode_request`). Pure: no sockets."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import quote, unquote, urlsplit

from gateway.streaming.http1.head import valid_name

# the client's own: a caller's value would contradict the message it sends
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Credential(str):
    """An Authorization value from a URL's user info: never shown in a repr or a log."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<credential>"


class Target(NamedTuple):
    """Where a URL's request goes: the pool key, the address and the request line's parts."""

    key: tuple[str, str, int]  # scheme, host, port
    host: str
    port: int
    tls: bool
    numeric: bool  # an IP address: nothing to resolve
    host_header: str
    path: str  # the request target: path and query
    basic_auth: Credential | None = None  # from `user:password@` in the URL, as aiohttp did


def parse_target(url: str) -> Target:
    """Raises ValueError for anything but an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError("upstream URL must be http(s)://host/...")
    port = parts.port or _DEFAULT_PORTS[scheme]
    try:
        numeric = bool(ipaddress.ip_address(host))
    except ValueError:
        numeric = False
        host = host.encode("idna").decode("ascii")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    # as a browser would: non-ASCII and spaces percent-encoded, what is encoded stays
    path = quote(path, safe="/:?&=%;@+,!$'()*~[]#-._")
    auth = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        auth = Credential(f"Basic {base64.b64encode(pair).decode('ascii')}")
    scheme_key = (scheme, host, port)
    tls = scheme == "https"
    return Target(scheme_key, host, port, tls, numeric, host_header, path, auth)


class CallerFields(NamedTuple):
    fields: list[tuple[str, str, str]]  # name as given, lower-case name, value
    accept: bool  # the caller set these: the client's defaults are not added
    encoding: bool
    authorization: bool


def caller_fields(headers: Mapping[str, str], skip: frozenset[str]) -> CallerFields:
    """The caller's header fields a request carries, those `skip` names (lower case) left
    out. Raises ValueError for one that would break the message (a CR or LF in a value
    smuggles a header in)."""
    fields = []
    accept = encoding = authorization = False
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in skip:
            continue
        if not valid_name(name) or "\r" in value or "\n" in value or "\0" in value:
            raise ValueError("invalid upstream request header")
        accept = accept or lowered == "accept"
        encoding = encoding or lowered == "accept-encoding"
        authorization = authorization or lowered == "authorization"
        fields.append((name, lowered, value))
    return CallerFields(fields, accept, encoding, authorization)


def encode_request(method: str, target: Target, headers: Mapping[str, str], body: bytes) -> bytes:
    """The request's bytes. Raises ValueError for a method or header that would break the
    message (a CR or LF in a value smuggles a header in)."""
    if not valid_name(method):
        raise ValueError("invalid HTTP method")
    lines = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"]
    given = caller_fields(headers, _OWN_HEADERS)
    lines.extend(f"{name}: {value}\r\n" for name, _, value in given.fields)
    if target.basic_auth is not None and not given.authorization:  # the caller's wins
        lines.append(f"Authorization: {target.basic_auth}\r\n")
    if not given.accept:
        lines.append("Accept: */*\r\n")  # what aiohttp sent; some servers want one
    if not given.encoding:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode() + body
