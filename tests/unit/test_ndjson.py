from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.streaming.lines import LineTooLong
from gateway.streaming.ndjson import NDJSONDecoder


def split_at(data: bytes, points: list[int]) -> list[bytes]:
    cuts = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(cuts)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def decode(chunks: list[bytes], max_line_bytes: int = 1 << 20) -> list[bytes]:
    dec = NDJSONDecoder(max_line_bytes)
    out = [line for chunk in chunks for line in dec.feed(chunk)]
    return out + dec.close()


OLLAMA = (
    b'{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
    b'"content":"Hi"},"done":false}\n'
    b'{"model":"llama3.2","created_at":"2025-01-01T00:00:01Z","message":{"role":"assistant",'
    b'"content":""},"done":true,"done_reason":"stop","total_duration":1200000000,'
    b'"load_duration":1000000,"prompt_eval_count":8,"prompt_eval_duration":20000000,'
    b'"eval_count":2,"eval_duration":40000000}\n'
)


def test_ollama_example_whole_and_bytewise() -> None:
    lines = decode([OLLAMA])
    assert decode(bytewise(OLLAMA)) == lines
    docs = [orjson.loads(line) for line in lines]
    assert [d["message"]["content"] for d in docs] == ["Hi", ""]
    assert docs[-1]["done"] is True
    assert docs[-1]["eval_count"] == 2


def test_feed_returns_completed_lines_only() -> None:
    dec = NDJSONDecoder()
    assert dec.feed(b'{"a":') == []
    assert dec.feed(b'1}\n{"b"') == [b'{"a":1}']
    assert dec.feed(b":2}") == []
    assert dec.close() == [b'{"b":2}']


def test_blank_and_whitespace_lines_skipped_and_stripped() -> None:
    data = b'\n  \n\t{"a":1}  \r\n\r\n   {"b":2}\n \t \n'
    assert decode([data]) == [b'{"a":1}', b'{"b":2}']
    assert decode(bytewise(data)) == [b'{"a":1}', b'{"b":2}']


def test_crlf_split_across_feeds() -> None:
    dec = NDJSONDecoder()
    assert dec.feed(b'{"a":1}\r') == [b'{"a":1}']
    assert dec.feed(b'\n{"b":2}\r\n') == [b'{"b":2}']
    assert dec.close() == []


def test_unterminated_last_line() -> None:
    assert decode([b'{"a":1}\n{"b":2}']) == [b'{"a":1}', b'{"b":2}']
    assert decode([b'{"a":1}\n   ']) == [b'{"a":1}']
    assert decode([b""]) == []


def test_bare_cr_also_ends_a_line() -> None:
    # Documented: LineSplitter semantics, a bare CR is a line ending too.
    assert decode([b'{"a":1}\r{"b":2}\r']) == [b'{"a":1}', b'{"b":2}']


def test_json_strings_with_escaped_newlines_stay_whole() -> None:
    doc = {"text": "line1\nline2\r\nline3"}
    assert decode([orjson.dumps(doc) + b"\n"]) == [orjson.dumps(doc)]


def test_line_too_long() -> None:
    dec = NDJSONDecoder(max_line_bytes=8)
    assert dec.feed(b'{"a":1}\n') == [b'{"a":1}']
    with pytest.raises(LineTooLong, match="max_line_bytes=8"):
        dec.feed(b'{"a":"123456"}\n')


def test_line_too_long_while_buffering() -> None:
    dec = NDJSONDecoder(max_line_bytes=8)
    dec.feed(b'{"a":')
    with pytest.raises(LineTooLong):
        dec.feed(b'"1234"')


def test_feed_after_close_raises() -> None:
    dec = NDJSONDecoder()
    dec.close()
    with pytest.raises(RuntimeError):
        dec.feed(b"{}\n")


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)
json_doc = st.dictionaries(st.text(), json_value, max_size=4)
separators = st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\n \n", b"\r\n\t\r\n"])


@given(
    docs=st.lists(st.tuples(json_doc, separators), max_size=8),
    terminated=st.booleans(),
    points=st.lists(st.integers(min_value=0), max_size=30),
)
def test_any_split_yields_same_documents(
    docs: list[tuple[dict[str, Any], bytes]], terminated: bool, points: list[int]
) -> None:
    data = b"".join(orjson.dumps(doc) + sep for doc, sep in docs)
    if docs and not terminated:
        data = data[: -len(docs[-1][1])]  # last document without a line ending
    expected = [doc for doc, _ in docs]
    for chunks in ([data], split_at(data, points), bytewise(data)):
        assert [orjson.loads(line) for line in decode(chunks)] == expected
