"""The gateway's HTTP surface under arbitrary methods, paths, headers and bodies.

One real gateway (with an OpenAI simulator behind it) serves the whole module. After
every generated request: the status is below 500; a non-2xx response that the
application produced is an OpenAI error envelope; /healthz still answers; and no
attempt task is left running. Requests aiohttp's client cannot express (broken request
lines, bad framing) go over a raw socket.

aiohttp rejects a malformed request head (bad request line, oversized or invalid
header) itself, before any middleware runs, with a plain-text 400: those responses are
recognised by the missing `x-request-id` and checked to be exactly that (see
test_known_bugs.py for the envelope they ought to have).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any, get_args
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import pytest_asyncio
from anthropic.types import RawMessageStreamEvent
from anthropic.types.shared import ErrorType
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tests.fuzz.strategies import dumps, json_values, mutated
from tests.fuzz.test_responses_fuzz import RESPONSES as RESPONSES_TEMPLATE
from tests.stack import FAST, Stack, no_gateway_tasks_left, stack

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVERS = {
    "oa": {
        "kind": "openai",
        "models": {
            "m1": {**FAST, "text": "Hello fuzz"},
            "e1": {"type": "embedding", "dimensions": 4, "ttft_ms": 1},
        },
    }
}
DEPLOYMENTS = {"e1": {"type": "embedding"}}
ANTHROPIC_ERROR_TYPES = frozenset(get_args(ErrorType))
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Framing and connection headers are the client library's business (raw-socket tests
# cover them); content-encoding has its own test.
RESERVED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "host",
        "expect",
        "upgrade",
        "te",
        "trailer",
        "content-encoding",
        "proxy-connection",
    }
)
CHAT: dict[str, Any] = {
    "model": "m1",
    "messages": [
        {"role": "system", "content": "short"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
    "temperature": 0.2,
    "max_tokens": 5,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
}

# llhttp knows a fixed set of methods: anything else is a protocol-level 400 (random
# method bytes are the raw-socket test's job).
methods = st.sampled_from(
    [
        "GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE",
        "PROPFIND", "PURGE", "QUERY", "SEARCH", "get", "Post", "BREW", "FOO",
    ]
)  # fmt: skip
paths = st.sampled_from(
    [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/chat/completions/",
        "/v1/chat/completions?stream=true",
        "/V1/Chat/Completions",
        "/v1//chat/completions",
        "/v1/responses",
        "/v1/responses/resp_unknown",
        "/v1/models",
        "/v1/models/m1",
        "/v1/embeddings",
        "/v1/feedback",
        "/healthz",
        "/metrics",
        "/admin/profiles",
        "/admin/deployments",
        "/admin/live?window=0",
        "/admin/recent?limit=x",
        "/admin/costs",
        "/admin/upstreams",
        "/ui",
        "/ui/",
        "/ui/assets/console.js",
        "/ui/assets/%2e%2e%2fadmin.py",
        "/",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/v1/chat/completions%00",
        "/v1/messages",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/messages/x",
    ]
) | st.text(max_size=40).map(lambda s: "/" + quote(s, safe="/?=&"))
header_names = st.sampled_from(
    [
        "Authorization",
        "x-api-key",
        "x-request-id",
        "x-gateway-region",
        "x-gateway-reasoning",
        "anthropic-version",
        "anthropic-beta",
        "Content-Type",
        "Accept",
        "Accept-Encoding",
        "User-Agent",
        "Cookie",
        "X-Forwarded-For",
    ]
) | st.text(alphabet=TOKEN, min_size=1, max_size=20).filter(lambda n: n.lower() not in RESERVED)
header_values = st.one_of(
    st.text(
        st.characters(codec="latin-1", exclude_categories=["Cc"]),
        max_size=60,
    ),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "text/event-stream",
            "multipart/form-data; boundary=x",
            "Bearer ",
            "Bearer x",
            "eu",
            "us",
            "true",
            "req_" + "a" * 64,
            "../../etc",
        ]
    ),
    st.integers(min_value=100, max_value=8_000).map(lambda n: "v" * n),
)
huge = st.integers(min_value=8_000, max_value=20_000).map(lambda n: "h" * n)  # past 8 KiB
headers = st.builds(
    lambda small, name, value, big: {**small, name: value} if big else small,
    st.dictionaries(header_names, header_values, max_size=6),
    header_names,
    huge,
    st.integers(min_value=0, max_value=7).map(lambda n: n == 0),
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    json_values.map(dumps),
    st.sampled_from([8, 40, 400]).flatmap(lambda rate: mutated(CHAT, rate)).map(dumps),
    st.sampled_from([8, 40, 400]).flatmap(lambda rate: mutated(CHAT, rate)).map(dumps),
    st.just(dumps({**CHAT, "stream": False})),
)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gateway() -> AsyncIterator[tuple[Stack, aiohttp.ClientSession]]:
    # force_close: each request on a fresh connection, so that one broken connection
    # (closed by the server after a protocol error) cannot fail the next example.
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        stack(SERVERS, deployments=DEPLOYMENTS) as s,
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
    ):
        yield s, http


def anthropic_path(path: str, headers: dict[str, str] | None = None) -> bool:
    """Where errors leave in Anthropic's shape: the Messages door's paths, and the models
    list asked for by an Anthropic client (`anthropic-version`)."""
    path = path.split("?")[0]
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return True
    asked = any(name.lower() == "anthropic-version" for name in headers or {})
    return asked and path.startswith("/v1/models")


async def check_envelope(
    resp: aiohttp.ClientResponse,
    method: str,
    path: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    raw = await resp.read()
    assert resp.status < 500, (resp.status, raw[:300])
    if resp.status < 400:
        return
    if "x-request-id" not in resp.headers:  # rejected while reading the head
        assert resp.status == 400, (resp.status, raw[:300])
        event("protocol-level 400")
    else:
        event(f"app-level {resp.status}")
    if method == "HEAD":
        return
    body = orjson.loads(raw)
    if anthropic_path(path, headers) and "x-request-id" in resp.headers:
        assert set(body) == {"type", "error"} and body["type"] == "error", body
        assert set(body["error"]) == {"type", "message"}, body
        assert body["error"]["type"] in ANTHROPIC_ERROR_TYPES, body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        return
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, body
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)


async def still_healthy(s: Stack, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{s.url}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}
    assert await no_gateway_tasks_left()


@FUZZ
@given(method=methods, path=paths, headers=headers, body=bodies)
async def test_any_request(
    gateway: tuple[Stack, aiohttp.ClientSession],
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
) -> None:
    s, http = gateway
    url = s.url + path
    try:
        async with http.request(method, url, headers=headers, data=body) as resp:
            await check_envelope(resp, method, path, headers)
    except aiohttp.ClientResponseError as exc:  # the client refused the server's reply
        # aiohttp's plain-text 400 for a malformed head carries a body even for HEAD (the
        # parser never learnt the method), which the client rightly rejects.
        if not (method == "HEAD" and "Data after" in exc.message):
            pytest.fail(f"unreadable response: {exc}")
        event("protocol-level 400 to HEAD, with a body")
    await still_healthy(s, http)


@FUZZ
@given(
    body=bodies,
    stream=st.booleans(),
    # Any other type is refused with 415 before parsing (test_any_request sends those).
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8"]),
)
async def test_chat_bodies(
    gateway: tuple[Stack, aiohttp.ClientSession], body: bytes, stream: bool, content_type: str
) -> None:
    """Near-valid chat bodies, all sent to the chat endpoint."""
    s, http = gateway
    headers = {"content-type": content_type}
    url = f"{s.url}/v1/chat/completions"
    async with http.post(url, data=body, headers=headers) as resp:
        await check_envelope(resp, "POST")
        if resp.status == 200:
            event("answered")
    await still_healthy(s, http)


MESSAGES: dict[str, Any] = {
    "model": "m1",
    "max_tokens": 5,
    "system": [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "s"},
                {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "42", "is_error": False},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                },
            ],
        },
    ],
    "stream": True,
    "temperature": 0.2,
    "top_k": 3,
    "stop_sequences": ["x"],
    "metadata": {"user_id": "u"},
    "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "auto"},
}
messages_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(dumps),
    st.sampled_from([8, 40, 400]).flatmap(lambda rate: mutated(MESSAGES, rate)).map(dumps),
    st.sampled_from([8, 40, 400]).flatmap(lambda rate: mutated(MESSAGES, rate)).map(dumps),
    st.just(dumps(MESSAGES)),
    st.just(dumps({**MESSAGES, "stream": False})),
)
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


@FUZZ
@given(body=messages_bodies, version=st.sampled_from([True, True, True, False]))
async def test_messages_bodies(
    gateway: tuple[Stack, aiohttp.ClientSession], body: bytes, version: bool
) -> None:
    """Near-valid Anthropic bodies to the Messages door: Anthropic's error shape below 500,
    or an answer whose every event is one of the anthropic SDK's stream events."""
    s, http = gateway
    headers = {"content-type": "application/json"}
    if version:
        headers["anthropic-version"] = "2023-06-01"
    async with http.post(f"{s.url}/v1/messages", data=body, headers=headers) as resp:
        if resp.status != 200:
            await check_envelope(resp, "POST", "/v1/messages")
            event(f"refused {resp.status}")
        elif resp.content_type == "text/event-stream":
            raw = await resp.read()
            for block in raw.decode().split("\n\n")[:-1]:
                name, data = block.split("\n")
                payload = orjson.loads(data.removeprefix("data: "))
                assert name == "event: " + payload["type"]
                if payload["type"] not in ("ping", "error"):
                    STREAM_EVENT.validate_python(payload)
            event("streamed")
        else:
            assert (await resp.json())["type"] == "message"
            event("answered")
    await still_healthy(s, http)


EMBED: dict[str, Any] = {"model": "e1", "input": ["a", "b"], "encoding_format": "base64"}
embed_bodies = st.one_of(
    st.sampled_from([3, 8, 40]).flatmap(lambda rate: mutated(EMBED, rate)).map(dumps),
    st.sampled_from([3, 8]).flatmap(lambda rate: mutated(CHAT, rate)).map(dumps),
    bodies,
)
RESPONSES = {**RESPONSES_TEMPLATE, "model": "m1"}
responses_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([8, 40, 400]).flatmap(lambda rate: mutated(RESPONSES, rate)).map(dumps),
    st.sampled_from([8, 40, 400]).flatmap(lambda rate: mutated(RESPONSES, rate)).map(dumps),
    st.sampled_from([True, False]).map(
        lambda on: dumps({"model": "m1", "input": "hi", "stream": on})
    ),
)


@FUZZ
@given(body=embed_bodies)
async def test_embeddings_bodies(gateway: tuple[Stack, aiohttp.ClientSession], body: bytes) -> None:
    """Near-valid embeddings bodies (and chat ones) sent to the embeddings endpoint."""
    s, http = gateway
    async with http.post(f"{s.url}/v1/embeddings", data=body) as resp:
        await check_envelope(resp, "POST")
        if resp.status == 200:
            event("answered")
            assert (await resp.json())["object"] == "list"
    await still_healthy(s, http)


@FUZZ
@given(body=responses_bodies)
async def test_responses_bodies(gateway: tuple[Stack, aiohttp.ClientSession], body: bytes) -> None:
    """Near-valid Responses bodies, sent to the Responses endpoint: the OpenAI envelope."""
    s, http = gateway
    async with http.post(f"{s.url}/v1/responses", data=body) as resp:
        await check_envelope(resp, "POST")
        if resp.status == 200:
            event("answered")
    await still_healthy(s, http)


# -- raw sockets: what no HTTP client library will send ------------------------------------


async def raw_exchange(url: str, data: bytes, wait_s: float = 0.5) -> bytes:
    """Send `data`; return what the server answers before closing or going quiet."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    out = b""
    try:
        writer.write(data)
        await writer.drain()
        while True:
            async with asyncio.timeout(wait_s):
                chunk = await reader.read(65536)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    return out


STATUS_LINE = re.compile(rb"^HTTP/\d\.\d (\d{3}) ", re.MULTILINE)


def check_raw(answer: bytes) -> None:
    """Every response in `answer` (pipelining may give several) has a status below 500."""
    if not answer:
        event("no answer (incomplete request)")
        return
    statuses = [int(m) for m in STATUS_LINE.findall(answer)]
    assert statuses and answer.startswith(b"HTTP/"), answer[:200]
    for status in statuses:
        assert status < 500, answer[:400]
        event(f"raw status {status}")


versions = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b"", b"HTTP/9"]
)
request_lines = st.one_of(
    st.tuples(methods.map(str.encode), paths.map(str.encode), versions),
    st.tuples(methods.map(str.encode), paths.map(str.encode), versions),
    st.tuples(
        st.text(TOKEN, min_size=1, max_size=8).map(str.encode) | st.binary(min_size=1, max_size=8),
        paths.map(str.encode) | st.binary(max_size=30),
        versions,
    ),
).map(lambda t: b" ".join(t)) | st.binary(max_size=60)
known_header_lines = st.sampled_from(
    [
        b"Host: x",
        b"Content-Length: 5",
        b"Content-Length: -1",
        b"Content-Length: 99999999999999999999",
        b"Content-Length: 1, 2",
        b"Transfer-Encoding: chunked",
        b"Transfer-Encoding: gzip, chunked",
        b"Transfer-Encoding: identity",
        b"Content-Type: application/json",
        b"Content-Type: application/json; charset=utf-16",
        b"Authorization: Bearer \xff\xfe",
        b"X-Request-Id: \xc3\xa9",
        b"X-Gateway-Region: EU",
        b"Connection: close",
        b"Connection: keep-alive, Upgrade",
        b"Upgrade: websocket",
        b"Upgrade: h2c",
        b"Expect: 100-continue",
        b"Host: ",
        b" folded: continuation",
        b"X-Nul: a\x00b",
        b"X-Long: " + b"b" * 9000,
    ]
)
raw_headers = st.lists(
    st.one_of(
        known_header_lines,
        known_header_lines,
        known_header_lines,
        st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)).map(
            lambda t: t[0] + b": " + t[1]
        ),
    ),
    max_size=6,
)
raw_bodies = st.one_of(
    st.binary(max_size=80),
    st.just(b"5\r\nhello\r\n0\r\n\r\n"),
    st.just(b"zz\r\nhello\r\n0\r\n\r\n"),
    st.just(dumps(CHAT)),
)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    line=request_lines,
    head=raw_headers,
    body=raw_bodies,
    ending=st.sampled_from([b"\r\n", b"\n"]),
    pipelined=st.booleans(),
)
async def test_raw_requests(
    gateway: tuple[Stack, aiohttp.ClientSession],
    line: bytes,
    head: list[bytes],
    body: bytes,
    ending: bytes,
    pipelined: bool,
) -> None:
    s, http = gateway
    data = ending.join([line, *head]) + ending + ending + body
    if pipelined:  # a valid request after the fuzzed one on the same connection
        data += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    check_raw(await raw_exchange(s.url, data))
    await still_healthy(s, http)


async def test_many_headers_and_long_values(gateway: tuple[Stack, aiohttp.ClientSession]) -> None:
    s, http = gateway
    lots = b"".join(b"X-H%d: v\r\n" % i for i in range(300))
    for data in (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lots + b"\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        answer = await raw_exchange(s.url, data)
        assert answer.startswith(b"HTTP/1.") and answer[9:12] == b"400", answer[:200]
    await still_healthy(s, http)


async def test_client_gone_mid_request(gateway: tuple[Stack, aiohttp.ClientSession]) -> None:
    """A client that disconnects while the answer streams leaves no attempt behind."""
    s, http = gateway
    body = dumps({**CHAT, "stream": True})
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    for cut in (len(head) // 2, len(head) + len(body) // 2, len(head) + len(body)):
        await raw_exchange(s.url, (head + body)[:cut], wait_s=0.01)
    await asyncio.sleep(0.05)
    await still_healthy(s, http)
