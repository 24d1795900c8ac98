"""The gateway's HPACK decoder against the `hpack` library's: any sequence of heads that
`hpack`'s encoder writes (Huffman or not, indexed or not, table sizes changing between
heads) decodes to the same fields in both, and a block either rejects is rejected."""

from __future__ import annotations

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.streaming.http2.hpack_decoder import HpackDecoder, HpackError, huffman_decode

HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

names = st.sampled_from(
    [b"content-type", b"date", b"x-request-id", b"server", b"set-cookie", b"cf-ray", b":status"]
) | st.binary(min_size=1, max_size=30)
values = st.binary(max_size=200)
field = st.tuples(names, values, st.booleans())  # the last: sensitive (never indexed)
head = st.lists(field, max_size=20)
step = st.tuples(head, st.booleans(), st.sampled_from([None, 0, 256, 4096]))


@settings(max_examples=300)
@given(st.lists(step, min_size=1, max_size=12))
def test_any_sequence_of_heads_decodes_as_hpack_does(steps: list) -> None:  # type: ignore[type-arg]
    encoder, theirs, ours = hpack.Encoder(), hpack.Decoder(), HpackDecoder()
    for fields, huffman, table_size in steps:
        if table_size is not None:
            encoder.header_table_size = table_size  # announced at the next block's start
        block = encoder.encode(
            [hpack.NeverIndexedHeaderTuple(n, v) if s else (n, v) for n, v, s in fields],
            huffman=huffman,
        )
        assert ours.decode(block) == [
            (bytes(n), bytes(v)) for n, v in theirs.decode(block, raw=True)
        ]


@given(st.binary(max_size=300))
def test_huffman_round_trip(data: bytes) -> None:
    assert huffman_decode(HUFFMAN.encode(data)) == data


@given(st.binary(max_size=64))
def test_any_bytes_are_decoded_or_refused_as_hpack_does(block: bytes) -> None:
    theirs: object
    try:
        theirs = [(bytes(n), bytes(v)) for n, v in hpack.Decoder().decode(block, raw=True)]
    except hpack.HPACKError:
        theirs = HpackError
    try:
        ours: object = HpackDecoder().decode(block)
    except HpackError:
        ours = HpackError
    assert ours == theirs


@pytest.mark.parametrize(
    "block",
    [
        b"\x80",  # index 0
        b"\xbe",  # index 62: the dynamic table is empty
        b"\x3f\xe2\x1f",  # a table size update to 4097, above the allowed 4096
        b"\x82\x20",  # a table size update after a field
        b"\x00\x03ab",  # a truncated name
        b"\x40\x81\xff\x00",  # EOS in a Huffman name
        b"\xff\xff\xff\xff\xff\xff",  # an endless integer
    ],
)
def test_malformed_blocks_are_refused(block: bytes) -> None:
    with pytest.raises(HpackError):
        HpackDecoder().decode(block)


def test_a_header_list_over_the_limit_is_refused() -> None:
    block = hpack.Encoder().encode([(b"x", b"y" * 100)] * 10)
    assert len(HpackDecoder(max_list_size=2000).decode(block)) == 10
    with pytest.raises(HpackError):
        HpackDecoder(max_list_size=1000).decode(block)
