"""The upstream client's response-head parser: framing, keep-alive and content coding as
RFC 9112 has them, and a refusal for what a client must not guess at."""

from __future__ import annotations

import pytest

from gateway.streaming.http1.head import (
    CHUNKED,
    LENGTH,
    MAX_HEAD,
    NONE,
    UNTIL_CLOSE,
    ProtocolError,
    parse_head,
)


def head(*lines: str, method: str = "POST"):  # type: ignore[no-untyped-def]
    return parse_head("\r\n".join(lines).encode("latin-1"), method)


def test_a_chunked_stream_head() -> None:
    parsed = head(
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream; charset=utf-8",
        "transfer-encoding: chunked",
        "X-Request-Id: abc",
    )
    assert (parsed.status, parsed.reason, parsed.framing) == (200, "OK", CHUNKED)
    assert parsed.keep_alive and parsed.content_type == "text/event-stream"
    assert parsed.headers["x-request-id"] == "abc"  # names are case-insensitive
    assert parsed.content_encoding == ""


def test_content_length_and_repeated_equal_lengths() -> None:
    parsed = head("HTTP/1.1 200 OK", "Content-Length: 12")
    assert (parsed.framing, parsed.length) == (LENGTH, 12)
    assert head("HTTP/1.1 200 OK", "Content-Length: 7", "Content-Length: 7").length == 7
    assert head("HTTP/1.1 200 OK", "Content-Length: 7, 7").length == 7


@pytest.mark.parametrize(
    "lines",
    [
        ("HTTP/1.1 200 OK", "Content-Length: 7", "Content-Length: 8"),
        ("HTTP/1.1 200 OK", "Content-Length: -1"),
        ("HTTP/1.1 200 OK", "Content-Length: 0x10"),
        ("HTTP/1.1 200 OK", "Bad Name: x"),
        ("HTTP/1.1 200 OK", "Name : x"),
        ("HTTP/1.1 200 OK", "no colon"),
        ("HTTP/1.1 200 OK", " folded first"),
        ("HTTP/2 200",),
        ("HTTP/1.1 20 OK",),
        ("ICY 200 OK",),
        ("HTTP/1.1 200 OK", "Content-Encoding: br"),
        ("HTTP/1.1 200 OK", "Content-Encoding: gzip, gzip"),
    ],
)
def test_what_a_client_must_not_guess_at_is_refused(lines: tuple[str, ...]) -> None:
    with pytest.raises(ProtocolError):
        head(*lines)


def test_transfer_encoding_wins_over_length_and_must_end_chunked() -> None:
    both = head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "Content-Length: 5")
    assert both.framing == CHUNKED
    unframed = head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip")
    assert unframed.framing == UNTIL_CLOSE and not unframed.keep_alive


def test_no_length_means_until_close() -> None:
    parsed = head("HTTP/1.1 200 OK", "Content-Type: application/json")
    assert parsed.framing == UNTIL_CLOSE and not parsed.keep_alive


@pytest.mark.parametrize(
    ("status", "method"), [(204, "POST"), (304, "GET"), (200, "HEAD"), (103, "POST")]
)
def test_answers_without_a_body(status: int, method: str) -> None:
    parsed = head(f"HTTP/1.1 {status} X", "Content-Length: 10", method=method)
    assert parsed.framing == NONE and parsed.keep_alive
    assert parsed.informational == (status < 200)


def test_keep_alive_rules() -> None:
    assert not head("HTTP/1.1 200 OK", "Connection: close", "Content-Length: 0").keep_alive
    assert not head("HTTP/1.1 200 OK", "Connection: Upgrade, Close", "Content-Length: 0").keep_alive
    assert not head("HTTP/1.0 200 OK", "Content-Length: 0").keep_alive
    assert head("HTTP/1.0 200 OK", "Connection: keep-alive", "Content-Length: 0").keep_alive


def test_content_codings() -> None:
    assert head("HTTP/1.1 200 OK", "Content-Encoding: GZIP").content_encoding == "gzip"
    assert head("HTTP/1.1 200 OK", "Content-Encoding: x-gzip").content_encoding == "gzip"
    assert head("HTTP/1.1 200 OK", "Content-Encoding: deflate").content_encoding == "deflate"
    assert head("HTTP/1.1 200 OK", "Content-Encoding: identity").content_encoding == ""
    # no body: the coding does not matter
    assert head("HTTP/1.1 204 OK", "Content-Encoding: br").content_encoding == ""


def test_folded_values_are_joined_and_reasons_kept() -> None:
    parsed = head("HTTP/1.1 429 Too Many Requests", "Retry-After: 1,", "\t 2", "X: y", "x: z")
    assert parsed.headers["Retry-After"] == "1, 2" and parsed.headers.getall("X") == ["y", "z"]
    folded = head("HTTP/1.1 200 OK", "Transfer-Encoding: gzip,", " chunked")
    assert folded.framing == CHUNKED  # a folded framing field counts as joined
    assert parsed.reason == "Too Many Requests"
    assert head("HTTP/1.1 500").reason == ""
    assert head("HTTP/1.1 200 OK").content_type == "application/octet-stream"


def test_a_head_over_the_limit_is_refused() -> None:
    with pytest.raises(ProtocolError):
        head("HTTP/1.1 200 OK", "X: " + "a" * MAX_HEAD)
    with pytest.raises(ProtocolError):
        head("HTTP/1.1 200 OK", *[f"X{i}: y" for i in range(200)])
