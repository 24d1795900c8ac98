"""HTTP/2 frames a client writes, and a request's header block (RFC 9113, RFC 7541).

Pure: bytes out, no sockets. The header block is encoded without the dynamic table
(every field a literal, credentials "never indexed"): a request's dozen fields cost a few
hundred bytes on the wire and no encoder state, so no table has to be kept in step with
the server's settings, and a block can be built for any connection.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from gateway.streaming.http1.head import valid_name
from gateway.streaming.http1.request import Target, caller_fields

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# flags
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# settings
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

# error codes
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1

FRAME_HEAD = struct.Struct(">HBBBL")  # length (24 bits: 16 + 8), type, flags, stream id
_SETTING = struct.Struct(">HL")
_U32 = struct.Struct(">L")
_GOAWAY = struct.Struct(">LL")

# a request must not carry these (RFC 9113 8.2.2); host becomes :authority; the length
# is the client's own
_NOT_SENT = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "content-length",
    }
)
# kept out of every compression table, ours or an intermediary's (RFC 7541 7.1.3)
_SECRET = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key", "x-goog-api-key"}
)


class ConnectionFault(Exception):
    """A connection error (RFC 9113 5.4.1): the connection ends with a GOAWAY of `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return FRAME_HEAD.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


def settings(values: Mapping[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(k, v) for k, v in values.items()))


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """Raises ValueError for a payload that is not whole settings."""
    if len(payload) % 6:
        raise ValueError("SETTINGS payload not a multiple of 6")
    return [_SETTING.unpack_from(payload, at) for at in range(0, len(payload), 6)]


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def goaway(last_stream_id: int, code: int) -> bytes:
    return frame(GOAWAY, 0, 0, _GOAWAY.pack(last_stream_id, code))


def u32(payload: bytes) -> int:
    """The first 31-bit value of a payload (a window increment, an error code's stream)."""
    return int(_U32.unpack_from(payload)[0])


def parse_goaway(payload: bytes) -> tuple[int, int]:
    last, code = _GOAWAY.unpack_from(payload)
    return last & MAX_WINDOW, code


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """A header block as one HEADERS frame, or HEADERS and CONTINUATION frames."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    parts = [frame(HEADERS, flags, stream_id, block[:max_frame])]
    for at in range(max_frame, len(block), max_frame):
        last = at + max_frame >= len(block)
        parts.append(
            frame(CONTINUATION, END_HEADERS if last else 0, stream_id, block[at : at + max_frame])
        )
    return b"".join(parts)


def strip_padding(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding; ValueError if the padding is longer."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ValueError("padding exceeds the frame")
    return payload[1 : len(payload) - payload[0]]


# -- the request's header block (HPACK literals only) ----------------------------


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return _integer(len(data), 7, 0) + data  # not Huffman-coded


def _literal(name: bytes, value: bytes, secret: bool) -> bytes:
    # 0x00: without indexing, new name; 0x10: never indexed, new name
    return (b"\x10" if secret else b"\x00") + _string(name) + _string(value)


# static table entries (RFC 7541 appendix A)
_METHODS = {"GET": b"\x82", "POST": b"\x83"}
_SCHEMES = {False: b"\x86", True: b"\x87"}


def _indexed_name(index: int, value: bytes) -> bytes:
    return _integer(index, 4, 0) + _string(value)  # without indexing, name from the table


def request_block(
    method: str, target: Target, headers: Mapping[str, str], body_length: int | None
) -> bytes:
    """The request's header block. Raises ValueError for a method or field that would
    break the message, as `http1.request.encode_request` does."""
    if not valid_name(method):
        raise ValueError("invalid HTTP method")
    parts = [
        _METHODS.get(method) or _indexed_name(2, method.encode("ascii")),
        _SCHEMES[target.tls],
        _indexed_name(1, target.host_header.encode("ascii")),
        _indexed_name(4, target.path.encode("ascii")),
    ]
    given = caller_fields(headers, _NOT_SENT)
    for _, lowered, value in given.fields:
        parts.append(_literal(lowered.encode("ascii"), value.encode("latin-1"), lowered in _SECRET))
    if target.basic_auth is not None and not given.authorization:
        parts.append(_literal(b"authorization", target.basic_auth.encode("latin-1"), True))
    if not given.accept:
        parts.append(_literal(b"accept", b"*/*", False))
    if not given.encoding:
        parts.append(_literal(b"accept-encoding", b"gzip, deflate", False))
    if body_length is not None:
        parts.append(_literal(b"content-length", str(body_length).encode("ascii"), False))
    return b"".join(parts)
