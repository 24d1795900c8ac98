"""The upstream request's bytes: where a URL points, what the Host header says, what the
client writes itself, and the refusal of anything that would break the message."""

from __future__ import annotations

import pytest

from gateway.streaming.http1.request import encode_request, parse_target

POINTS = [  # url, pool key, Host header, request target, an IP address
    ("https://api.openai.com/v1/chat", ("https", "api.openai.com", 443), "api.openai.com",
     "/v1/chat", False),
    ("http://127.0.0.1:8080", ("http", "127.0.0.1", 8080), "127.0.0.1:8080", "/", True),
    ("http://[::1]:9/x?a=1", ("http", "::1", 9), "[::1]:9", "/x?a=1", True),
    ("HTTPS://API.Example.COM:443/p#frag", ("https", "api.example.com", 443),
     "api.example.com", "/p", False),
    ("https://bücher.example/v1", ("https", "xn--bcher-kva.example", 443),
     "xn--bcher-kva.example", "/v1", False),
    ("http://h/models/gémini:go?key=a%2Fb", ("http", "h", 80), "h",
     "/models/g%C3%A9mini:go?key=a%2Fb", False),
]  # fmt: skip


@pytest.mark.parametrize(("url", "key", "host_header", "path", "numeric"), POINTS)
def test_where_a_url_points(
    url: str, key: tuple[str, str, int], host_header: str, path: str, numeric: bool
) -> None:
    target = parse_target(url)
    assert (target.key, target.host_header, target.path, target.numeric) == (
        key,
        host_header,
        path,
        numeric,
    )
    assert target.tls == (key[0] == "https")


@pytest.mark.parametrize("url", ["ftp://h/x", "http:///x", "/v1/chat", "unix:///tmp/s"])
def test_only_absolute_http_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_target(url)


def test_the_message_the_client_writes() -> None:
    target = parse_target("http://127.0.0.1:8080/v1/chat")
    message = encode_request(
        "POST",
        target,
        {"Authorization": "Bearer k", "host": "other", "Connection": "close", "Accept": "x/y"},
        b"{}",
    )
    head, body = message.split(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/chat HTTP/1.1" and lines[1] == "Host: 127.0.0.1:8080"
    assert "Authorization: Bearer k" in lines and "Accept: x/y" in lines
    assert "Accept-Encoding: gzip, deflate" in lines and "Content-Length: 2" in lines
    assert not any(line.lower().startswith(("connection", "host: other")) for line in lines)
    assert body == b"{}"
    get = encode_request("GET", target, {}, b"").decode()
    assert "Content-Length" not in get and "Accept: */*" in get


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {"X": "a\r\nInjected: 1"}),
        ("POST", {"X": "a\rb"}),
        ("POST", {"Bad Name": "x"}),
        ("POST", {"X:Y": "x"}),
        ("GET /x HTTP/1.1\r\n", {}),
    ],
)
def test_what_would_break_the_message_is_refused(method: str, headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        encode_request(method, parse_target("http://h/"), headers, b"")


def test_user_info_in_the_url_is_basic_auth_unless_the_caller_authorizes() -> None:
    target = parse_target("http://us%40er:p%3Ass@h:8/x")
    assert target.host_header == "h:8" and "p:ss" not in repr(target)
    message = encode_request("GET", target, {}, b"").decode()
    assert "Authorization: Basic dXNAZXI6cDpzcw==" in message  # base64 of "us@er:p:ss"
    own = encode_request("GET", target, {"authorization": "Bearer k"}, b"").decode()
    assert "Basic" not in own and "authorization: Bearer k" in own
    assert parse_target("http://h/x").basic_auth is None
