from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.streaming.lines import LineSplitter, LineTooLong


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def run(chunks: list[bytes], max_line_bytes: int = 1 << 20) -> list[bytes]:
    splitter = LineSplitter(max_line_bytes)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(splitter.feed(chunk))
    out.extend(splitter.close())
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\rb\r", [b"a", b"b"]),
        (b"a\r\nb\r\n", [b"a", b"b"]),
        (b"a\n\nb", [b"a", b"", b"b"]),
        (b"a\r\rb", [b"a", b"", b"b"]),
        (b"a\r\n\r\nb", [b"a", b"", b"b"]),
        (b"a\n\rb", [b"a", b"", b"b"]),  # LF then CR is two endings
        (b"\n", [b""]),
        (b"", []),
        (b"tail", [b"tail"]),
        (b"x\x0by\x0cz\x85", [b"x\x0by\x0cz\x85"]),  # only CR/LF split bytes
    ],
)
def test_whole_and_bytewise(data: bytes, expected: list[bytes]) -> None:
    assert run([data]) == expected
    assert run(bytewise(data)) == expected


def test_feed_returns_only_completed_lines() -> None:
    s = LineSplitter()
    assert s.feed(b"par") == []
    assert s.buffered == 3
    assert s.feed(b"tial\nnext") == [b"partial"]
    assert s.feed(b"\n") == [b"next"]
    assert s.buffered == 0
    assert s.feed(b"") == []
    assert s.close() == []


def test_crlf_split_across_feeds_gives_no_extra_line() -> None:
    s = LineSplitter()
    assert s.feed(b"a\r") == [b"a"]
    assert s.feed(b"\n") == []
    assert s.feed(b"b\r") == [b"b"]
    assert s.feed(b"\nc\n") == [b"c"]
    assert s.close() == []


def test_cr_then_cr_is_an_empty_line() -> None:
    s = LineSplitter()
    assert s.feed(b"a\r") == [b"a"]
    assert s.feed(b"\rb") == [b""]
    assert s.close() == [b"b"]


def test_cr_then_empty_feed_keeps_crlf_state() -> None:
    s = LineSplitter()
    assert s.feed(b"a\r") == [b"a"]
    assert s.feed(b"") == []
    assert s.feed(b"\nb\n") == [b"b"]


def test_close_returns_unterminated_line_once() -> None:
    s = LineSplitter()
    s.feed(b"x\ny")
    assert s.close() == [b"y"]
    with pytest.raises(RuntimeError):
        s.feed(b"z")


def test_line_too_long_complete() -> None:
    s = LineSplitter(max_line_bytes=4)
    assert s.feed(b"1234\n") == [b"1234"]  # exactly the limit is fine
    with pytest.raises(LineTooLong, match="max_line_bytes=4") as info:
        s.feed(b"ok\n12345\n")
    assert isinstance(info.value, ValueError)
    assert info.value.limit == 4
    assert info.value.length == 5


def test_line_too_long_while_buffering_across_feeds() -> None:
    s = LineSplitter(max_line_bytes=10)
    s.feed(b"123456")
    with pytest.raises(LineTooLong, match="max_line_bytes=10"):
        s.feed(b"78901")


def test_line_too_long_when_pending_completes() -> None:
    s = LineSplitter(max_line_bytes=5)
    s.feed(b"123")
    with pytest.raises(LineTooLong):
        s.feed(b"456\n")


def test_invalid_limit_rejected() -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        LineSplitter(0)


def test_long_line_in_many_small_chunks_is_linear() -> None:
    # A quadratic `buf += chunk` rescan would copy ~50 GB here.
    s = LineSplitter(max_line_bytes=2 << 20)
    chunk = b"x" * 10
    start = time.perf_counter()
    for _ in range(100_000):
        assert s.feed(chunk) == []
    (line,) = s.feed(b"\n")
    assert len(line) == 1_000_000
    assert time.perf_counter() - start < 5.0


newline_heavy = st.binary() | st.lists(
    st.sampled_from([b"a", b"bc", b"\r", b"\n", b"\r\n", b"\xff", b" "])
).map(b"".join)


@given(data=newline_heavy, points=st.lists(st.integers(min_value=0), max_size=20))
def test_any_split_matches_bytes_splitlines(data: bytes, points: list[int]) -> None:
    # bytes.splitlines breaks on exactly LF, CR and CRLF: it is the oracle.
    expected = data.splitlines()
    assert run([data]) == expected
    assert run(split_at(data, points)) == expected


@given(data=newline_heavy)
def test_bytewise_matches_whole(data: bytes) -> None:
    assert run(bytewise(data)) == run([data])
