"""CORS over real sockets: preflight before authentication, headers on errors and streams."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy

from tests.gateways import inside_one_minute
from tests.stack import FAST, stack

SERVERS = {
    "a": {
        "kind": "openai",
        "models": {
            "m": {**FAST, "text": "Hello there world"},
            "down": {**FAST, "error_rate_503": 1.0},
        },
    }
}
PAGE = "http://localhost:5173"
KEY = "k-browser"
CORS = {"allow_origins": ["http://localhost:*", "https://chat.example.com"]}
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CHAT = "/v1/chat/completions"


def browser_headers(origin: str = PAGE, key: str = KEY) -> dict[str, str]:
    return {"origin": origin, "authorization": f"Bearer {key}"}


async def preflight(
    http: aiohttp.ClientSession,
    url: str,
    origin: str = PAGE,
    asked: str = "authorization, content-type",
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    headers = {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": asked,
    }
    async with http.options(url, headers=headers) as resp:
        return resp.status, resp.headers, await resp.read()


def vary(headers: CIMultiDictProxy[str]) -> set[str]:
    return {v.strip().lower() for v in headers.get("vary", "").split(",") if v.strip()}


def assert_readable_by(headers: CIMultiDictProxy[str], origin: str) -> None:
    assert headers["access-control-allow-origin"] == origin
    exposed = {v.strip() for v in headers["access-control-expose-headers"].split(",")}
    assert {"x-request-id", "x-gateway-deployment", "retry-after"} <= exposed
    assert "origin" in vary(headers)


def assert_no_cors(headers: CIMultiDictProxy[str]) -> None:
    assert not [h for h in headers if h.lower().startswith("access-control-")], dict(headers)


async def test_preflight_is_answered_before_authentication_on_every_v1_path() -> None:
    async with (
        stack(SERVERS, auth={"keys": [KEY]}, cors=CORS) as s,
        aiohttp.ClientSession() as http,
    ):
        asked = "authorization, content-type, x-stainless-os, anthropic-version, x-evil"
        for path in (CHAT, "/v1/feedback", "/v1/models", "/v1/responses", "/v1/messages"):
            status, headers, body = await preflight(http, s.url + path, asked=asked)
            assert status == 204, (path, body)
            assert body == b""
            assert headers["access-control-allow-origin"] == PAGE
            assert "POST" in headers["access-control-allow-methods"]
            assert headers["access-control-allow-headers"] == (
                "authorization, content-type, x-stainless-os, anthropic-version"
            )
            assert headers["access-control-max-age"] == "600"
            assert {"origin", "access-control-request-headers"} <= vary(headers)
            assert "access-control-allow-private-network" not in headers
        async with http.options(
            s.url + CHAT,
            headers={
                "origin": "https://chat.example.com",
                "access-control-request-method": "POST",
                "access-control-request-private-network": "true",
            },
        ) as resp:
            assert resp.status == 204
            assert resp.headers["access-control-allow-private-network"] == "true"
            assert "access-control-allow-headers" not in resp.headers  # none asked for
    assert s.log.records == []


async def test_preflight_from_a_disallowed_origin_gets_no_cors_headers() -> None:
    async with (
        stack(SERVERS, auth={"keys": [KEY]}, cors=CORS) as s,
        aiohttp.ClientSession() as http,
    ):
        status, headers, body = await preflight(http, s.url + CHAT, origin="https://evil.example")
        assert status == 403
        assert orjson.loads(body)["error"]["code"] == "cors_origin_not_allowed"
        assert_no_cors(headers)
        assert "origin" in vary(headers)
        # A real request from that origin is served as before (non-browser clients send any
        # Origin), but the browser may not read it: no Access-Control-Allow-Origin.
        url = s.url + CHAT
        headers_in = browser_headers("https://evil.example")
        async with http.post(url, json=BODY, headers=headers_in) as resp:
            assert resp.status == 200
            assert_no_cors(resp.headers)
            assert "origin" in vary(resp.headers)


async def test_plain_options_and_other_paths_are_left_to_the_router() -> None:
    async with stack(SERVERS, cors=CORS) as s, aiohttp.ClientSession() as http:
        async with http.options(s.url + CHAT, headers={"origin": PAGE}) as resp:
            assert resp.status == 405  # not a preflight: no Access-Control-Request-Method
            assert (await resp.json())["error"]["code"] == "method_not_allowed"
            assert_readable_by(resp.headers, PAGE)
        status, headers, _ = await preflight(http, s.url + "/healthz")
        assert status == 405
        assert_no_cors(headers)
        async with http.get(s.url + "/healthz", headers={"origin": PAGE}) as resp:
            assert resp.status == 200
            assert_no_cors(resp.headers)


async def test_a_stream_carries_cors_headers_with_its_first_token() -> None:
    async with (
        stack(SERVERS, auth={"keys": [KEY]}, cors=CORS) as s,
        aiohttp.ClientSession() as http,
    ):
        body = {**BODY, "stream": True}
        async with http.post(s.url + CHAT, json=body, headers=browser_headers()) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert_readable_by(resp.headers, PAGE)
            assert resp.headers["x-gateway-deployment"] == "m"
            raw = await resp.read()
        assert raw.endswith(b"data: [DONE]\n\n")
        async with http.post(s.url + CHAT, json=BODY, headers=browser_headers()) as resp:
            assert resp.status == 200
            assert_readable_by(resp.headers, PAGE)


async def request(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, CIMultiDictProxy[str], Any]:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, resp.headers, await resp.json()


async def test_errors_are_readable_by_the_page() -> None:
    origin = "https://chat.example.com"
    async with (
        stack(
            SERVERS,
            auth={"keys": [KEY, "k-limited"]},
            cors=CORS,
            limits={"max_body_bytes": 2000},
            routing={"key_rpm": 1},
        ) as s,
        aiohttp.ClientSession() as http,
    ):
        url = s.url + CHAT
        good = browser_headers(origin)
        cases: list[tuple[int, str, dict[str, Any]]] = [
            (401, "invalid_api_key", {"json": BODY, "headers": browser_headers(origin, "wrong")}),
            (404, "model_not_found", {"json": {**BODY, "model": "nope"}, "headers": good}),
            (413, "request_too_large", {"json": {**BODY, "pad": "x" * 5000}, "headers": good}),
            (
                415,
                "unsupported_media_type",
                {"data": b"{}", "headers": {**good, "content-type": "text/plain"}},
            ),
            (503, None, {"json": {**BODY, "model": "down"}, "headers": good}),
        ]
        for expected, code, kwargs in cases:
            status, headers, body = await request(http, "POST", url, **kwargs)
            assert status == expected, body
            assert set(body["error"]) == {"message", "type", "param", "code"}
            if code is not None:
                assert body["error"]["code"] == code
            assert_readable_by(headers, origin)
        status, headers, body = await request(http, "GET", s.url + "/v1/nothing", headers=good)
        assert status == 404 and body["error"]["code"] == "not_found"
        assert_readable_by(headers, origin)
        limited = browser_headers(origin, "k-limited")
        await inside_one_minute(5)  # both requests in one rate-limit window
        status, headers, body = await request(http, "POST", url, json=BODY, headers=limited)
        assert status == 200
        assert_readable_by(headers, origin)
        status, headers, body = await request(http, "POST", url, json=BODY, headers=limited)
        assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
        assert_readable_by(headers, origin)
        assert "retry-after" in headers


async def test_any_origin() -> None:
    async with (
        stack(SERVERS, cors={"allow_origins": "*"}) as s,
        aiohttp.ClientSession() as http,
    ):
        status, headers, _ = await preflight(http, s.url + CHAT, origin="https://anywhere.example")
        assert status == 204
        assert headers["access-control-allow-origin"] == "*"
        async with http.post(s.url + CHAT, json=BODY, headers={"origin": "null"}) as resp:
            assert resp.status == 200
            assert resp.headers["access-control-allow-origin"] == "*"
            assert "origin" not in vary(resp.headers)  # the same answer for every origin


@pytest.mark.parametrize("extra", [{}, {"cors": None}], ids=["absent", "null"])
async def test_off_by_default(extra: dict[str, Any]) -> None:
    async with stack(SERVERS, **extra) as s, aiohttp.ClientSession() as http:
        status, headers, body = await preflight(http, s.url + CHAT)
        assert status == 405
        assert orjson.loads(body)["error"]["code"] == "method_not_allowed"
        assert_no_cors(headers)
        async with http.post(s.url + CHAT, json=BODY, headers={"origin": PAGE}) as resp:
            assert resp.status == 200
            assert_no_cors(resp.headers)
            assert "vary" not in resp.headers
