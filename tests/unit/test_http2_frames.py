"""The HTTP/2 client's own frames and header blocks, read back by other implementations:
`hpack`'s decoder for the blocks (any field set, any length), `hyperframe` for frames."""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame
from hypothesis import given
from hypothesis import strategies as st

from gateway.streaming.http1.request import parse_target
from gateway.streaming.http2 import frames as f

TARGET = parse_target("https://api.example.com/v1/chat/completions?x=1")

names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=40).filter(
    lambda n: (
        n not in {"host", "connection", "keep-alive", "te", "upgrade", "content-length"}
        and n not in {"proxy-connection", "transfer-encoding", "accept", "accept-encoding"}
    )
)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)


def decode(block: bytes) -> list[tuple[str, str]]:
    return [
        (n.decode("latin-1"), v.decode("latin-1"))
        for n, v in hpack.Decoder().decode(block, raw=True)
    ]


@given(st.dictionaries(names, values, max_size=12), st.integers(0, 10**7))
def test_any_request_block_decodes_to_what_was_asked(fields: dict[str, str], length: int) -> None:
    block = f.request_block("POST", TARGET, fields, length)
    assert decode(block) == [
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "api.example.com"),
        (":path", "/v1/chat/completions?x=1"),
        *fields.items(),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),
        ("content-length", str(length)),
    ]


def test_names_are_lower_cased_connection_fields_dropped_and_secrets_never_indexed() -> None:
    headers = {"Authorization": "Bearer sk-secret", "Host": "x", "Connection": "close", "X-A": "1"}
    block = f.request_block("GET", parse_target("http://h:8080/"), headers, None)
    assert decode(block) == [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "h:8080"),
        (":path", "/"),
        ("authorization", "Bearer sk-secret"),
        ("x-a", "1"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),
    ]
    assert b"\x10\x0dauthorization" in block  # never indexed (RFC 7541 6.2.3)


def test_a_method_other_than_get_or_post_and_bad_values() -> None:
    block = f.request_block("DELETE", TARGET, {}, None)
    assert decode(block)[0] == (":method", "DELETE")
    with pytest.raises(ValueError):
        f.request_block("POST", TARGET, {"x": "a\r\nb: c"}, 0)
    with pytest.raises(ValueError):
        f.request_block("PO ST", TARGET, {}, 0)
    with pytest.raises(ValueError):
        f.request_block("POST", TARGET, {"x": "\u2603"}, 0)


def parse(data: bytes) -> list[Frame]:
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def test_a_large_header_block_goes_out_in_continuation_frames() -> None:
    block = bytes(range(256)) * 200  # 51,200 bytes
    frames = parse(f.headers_frames(5, block, True, 16_384))
    assert [type(x) for x in frames] == [HeadersFrame] + [ContinuationFrame] * 3
    assert frames[0].flags == {"END_STREAM"} and frames[-1].flags == {"END_HEADERS"}
    assert all(x.stream_id == 5 for x in frames)
    assert b"".join(x.data for x in frames) == block
    (small,) = parse(f.headers_frames(7, b"abc", False, 16_384))
    assert small.flags == {"END_HEADERS"} and small.data == b"abc"


def test_padding() -> None:
    assert f.strip_padding(f.PADDED, b"\x02abcXX") == b"abc"
    assert f.strip_padding(0, b"\x02abc") == b"\x02abc"
    with pytest.raises(ValueError):
        f.strip_padding(f.PADDED, b"\x05ab")
    with pytest.raises(ValueError):
        f.strip_padding(f.PADDED, b"")


def test_control_frames() -> None:
    assert f.parse_settings(f.settings({f.ENABLE_PUSH: 0, f.INITIAL_WINDOW_SIZE: 1 << 20})[9:]) == [
        (f.ENABLE_PUSH, 0),
        (f.INITIAL_WINDOW_SIZE, 1 << 20),
    ]
    with pytest.raises(ValueError):
        f.parse_settings(b"\x00\x01\x00")
    assert f.parse_goaway(f.goaway(7, f.PROTOCOL_ERROR)[9:]) == (7, f.PROTOCOL_ERROR)
    (update,) = parse(f.window_update(3, 12345))
    assert update.stream_id == 3 and update.window_increment == 12345
    (reset,) = parse(f.rst_stream(9, f.CANCEL))
    assert reset.stream_id == 9 and reset.error_code == f.CANCEL
