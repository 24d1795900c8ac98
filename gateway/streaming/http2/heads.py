"""An HTTP/2 connection's answer heads: header blocks joined across CONTINUATION frames
and decoded in the order they came (every block, a dropped stream's too: the HPACK table
must stay in step with the server's), and a decoded block read as a response head."""

from __future__ import annotations

from gateway.streaming.http1.head import ProtocolError, ResponseHead, head_from_fields
from gateway.streaming.http2 import frames as f
from gateway.streaming.http2.frames import ConnectionFault
from gateway.streaming.http2.hpack_decoder import HpackDecoder, HpackError

Fields = list[tuple[bytes, bytes]]


class HeadBlocks:
    """`headers` and `continuation` take a frame's payload; each returns the flags of the
    block's HEADERS frame and its decoded fields once the block is whole, else None.
    Raises ConnectionFault where the connection must end."""

    __slots__ = ("_decoder", "_max_size", "_open")

    def __init__(self, max_size: int) -> None:
        self._decoder = HpackDecoder(max_list_size=max_size)
        self._max_size = max_size
        self._open: tuple[int, int, list[bytes], int] | None = None  # awaiting CONTINUATION

    @property
    def open(self) -> bool:
        """A block awaits its CONTINUATION: no other frame may come between."""
        return self._open is not None

    def headers(self, flags: int, stream_id: int, payload: bytes) -> tuple[int, Fields] | None:
        if stream_id == 0:
            raise ConnectionFault(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        try:
            block = f.strip_padding(flags, payload)
        except ValueError as exc:
            raise ConnectionFault(f.PROTOCOL_ERROR, str(exc)) from None
        if flags & f.PRIORITY_FLAG:
            block = block[5:]
        if flags & f.END_HEADERS:
            return flags, self._decode(block)
        self._open = (stream_id, flags, [block], len(block))
        return None

    def continuation(self, flags: int, stream_id: int, payload: bytes) -> tuple[int, Fields] | None:
        if self._open is None or self._open[0] != stream_id:
            raise ConnectionFault(f.PROTOCOL_ERROR, "CONTINUATION outside a header block")
        _, first_flags, parts, size = self._open
        size += len(payload)
        if size > self._max_size:
            raise ConnectionFault(f.PROTOCOL_ERROR, "header block too large")
        parts.append(payload)
        if not flags & f.END_HEADERS:
            self._open = (stream_id, first_flags, parts, size)
            return None
        self._open = None
        return first_flags, self._decode(b"".join(parts))

    def _decode(self, block: bytes) -> Fields:
        try:
            return self._decoder.decode(block)
        except HpackError as exc:
            raise ConnectionFault(
                f.COMPRESSION_ERROR, f"undecodable header block ({exc})"
            ) from None


def answer_head(fields: Fields, method: str) -> ResponseHead | None:
    """The final head of an answer to `method`; None for an interim (1xx) one. Raises
    ProtocolError for a malformed one (a stream error)."""
    status = None
    regular: list[tuple[str, str]] = []
    for name, value in fields:
        if name[:1] == b":":
            if name != b":status" or regular or status is not None:
                raise ProtocolError("malformed pseudo-header in the answer")
            status = value
        else:
            regular.append((name.decode("latin-1"), value.decode("latin-1")))
    if status is None or len(status) != 3 or not status.isdigit():
        raise ProtocolError("answer without a valid :status")
    code = int(status)
    if code == 101 or code < 100:
        raise ProtocolError("invalid :status for HTTP/2")
    if code < 200:
        return None
    return head_from_fields(code, regular, method)
