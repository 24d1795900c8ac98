"""HPACK decoding of answer heads (RFC 7541), several times faster than the `hpack`
library's decoder on a real provider's head (about 150 us there for OpenAI's seventeen
fields, most of it Huffman decoding one bit at a time, and a debug-log call per field).

Huffman codes are decoded a byte at a time: a table maps (state, input byte) to the bytes
it completes and the next state, a state being a node of the code's tree. The table's
65,536 entries are filled as they are first met (headers use few of them). The code
table itself is `hpack`'s (RFC 7541 appendix B), and so is the static table.
`tests/unit/test_http2_hpack.py` holds this decoder to `hpack`'s over random heads.
"""

from __future__ import annotations

from collections import deque

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

STATIC: tuple[tuple[bytes, bytes], ...] = HeaderTable.STATIC_TABLE
_ENTRY_OVERHEAD = 32  # an entry's size is its name's and value's lengths plus 32


class HpackError(ValueError):
    """A header block this decoder cannot take: the connection must end."""


class HpackDecoder:
    """One connection's decoder: its dynamic table lives across header blocks."""

    __slots__ = ("_allowed", "_limit", "_max_list", "_size", "_table")

    def __init__(self, allowed_table_size: int = 4096, max_list_size: int = 65536) -> None:
        self._table: deque[tuple[bytes, bytes]] = deque()  # the newest entry first
        self._size = 0
        self._allowed = allowed_table_size  # our SETTINGS_HEADER_TABLE_SIZE
        self._limit = allowed_table_size  # the size the encoder last set
        self._max_list = max_list_size

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """The fields of a whole header block, in order; raises HpackError."""
        fields: list[tuple[bytes, bytes]] = []
        pos, end, listed = 0, len(block), 0
        while pos < end:
            first = block[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                field = self._get(index)
            elif first & 0x40:  # literal, added to the table
                field, pos = self._literal(block, pos, 6)
                self._add(field)
            elif first & 0x20:  # dynamic table size update
                if fields:
                    raise HpackError("table size update after a field")
                size, pos = _integer(block, pos, 5)
                if size > self._allowed:
                    raise HpackError("table size update above the allowed size")
                self._limit = size
                self._evict(0)
                continue
            else:  # literal without indexing (0x00) or never indexed (0x10)
                field, pos = self._literal(block, pos, 4)
            listed += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if listed > self._max_list:
                raise HpackError("header list too large")
            fields.append(field)
        return fields

    def _literal(self, block: bytes, pos: int, bits: int) -> tuple[tuple[bytes, bytes], int]:
        index, pos = _integer(block, pos, bits)
        if index:
            name = self._get(index)[0]
        else:
            name, pos = _string(block, pos)
        value, pos = _string(block, pos)
        return (name, value), pos

    def _get(self, index: int) -> tuple[bytes, bytes]:
        if 0 < index <= len(STATIC):
            return STATIC[index - 1]
        at = index - len(STATIC) - 1
        if 0 <= at < len(self._table):
            return self._table[at]
        raise HpackError(f"header table index {index} out of range")

    def _add(self, field: tuple[bytes, bytes]) -> None:
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if size > self._limit:  # larger than the table: it empties it (RFC 7541 4.4)
            self._table.clear()
            self._size = 0
            return
        self._evict(size)
        self._table.appendleft(field)
        self._size += size

    def _evict(self, room: int) -> None:
        table = self._table
        while table and self._size + room > self._limit:
            name, value = table.pop()
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD


def _integer(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """An integer with an N-bit prefix at `pos` (RFC 7541 5.1), and the position after it."""
    if pos >= len(data):
        raise HpackError("truncated header block")
    mask = (1 << bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HpackError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:  # past any size or index a header could need
            raise HpackError("integer too large")


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(data):
        raise HpackError("truncated header block")
    huffman = data[pos] & 0x80
    length, pos = _integer(data, pos, 7)
    stop = pos + length
    if stop > len(data):
        raise HpackError("truncated string")
    raw = data[pos:stop]
    return (huffman_decode(raw) if huffman else raw), stop


# -- Huffman, a byte at a time --------------------------------------------------------

_EOS = 256


def _tree() -> list[list[int]]:
    """The code's tree: node -> [child for bit 0, child for bit 1]; a child > 0 is a node,
    one < 0 the symbol -child - 1 (the root, 0, is no one's child: 0 is "not made yet")."""
    nodes: list[list[int]] = [[0, 0]]
    for symbol, (code, length) in enumerate(zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            child = nodes[node][bit]
            if child == 0:
                nodes.append([0, 0])
                child = nodes[node][bit] = len(nodes) - 1
            node = child
        nodes[node][code & 1] = -symbol - 1
    return nodes


_NODES = _tree()
_FAILED = len(_NODES)  # a state past every node: EOS was met, and it absorbs the rest
_FAIL = (b"", _FAILED)
_TABLE: list[tuple[bytes, int] | None] = [None] * (len(_NODES) << 8) + [_FAIL] * 256


def _ones_path() -> list[int]:
    """Where a string may end: at the root, or up to seven 1 bits into the EOS code (its
    padding, RFC 7541 5.2)."""
    path, node = [0], 0
    for _ in range(7):
        node = _NODES[node][1]
        if node <= 0:
            break
        path.append(node)
    return path


_ACCEPTING = frozenset(_ones_path())


def _fill(state: int, byte: int) -> tuple[bytes, int]:
    out = bytearray()
    node = state
    for shift in range(7, -1, -1):
        child = _NODES[node][(byte >> shift) & 1]
        if child < 0:
            symbol = -child - 1
            if symbol == _EOS:
                entry = _FAIL
                break
            out.append(symbol)
            node = 0
        else:
            node = child
    else:
        entry = (bytes(out), node)
    _TABLE[state << 8 | byte] = entry
    return entry


def huffman_decode(data: bytes) -> bytes:
    """Raises HpackError for EOS in the data or padding that is not a short run of 1s."""
    table = _TABLE
    state = 0
    out = bytearray()
    for byte in data:
        emitted, state = table[state << 8 | byte] or _fill(state, byte)
        out += emitted
    if state not in _ACCEPTING:  # nor is _FAILED
        raise HpackError("invalid Huffman string (EOS, or padding other than 1s)")
    return bytes(out)
