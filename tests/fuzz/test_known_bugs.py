"""Bugs the fuzzers found in code this suite does not own, one deterministic case each.

Every case is `xfail(strict=True)`: when the fix lands the case passes, strict turns the
XPASS into a failure, and whoever fixed it deletes the marker (and, for adapter bugs,
the matching entry of invariants.KNOWN, so the fuzzers guard the fix from then on).
A fixed case stays here as a regression test; its docstring says what the bug was.
"""

from __future__ import annotations

import asyncio
import inspect
import math

import aiohttp
import orjson
import pytest

from gateway.server import answering, app, feedback
from gateway.server import limits as server_limits
from gateway.server.errors import upstream_error_response
from gateway.streaming.events import UpstreamError
from gateway.streaming.lines import LineTooLong
from gateway.streaming.sse import EventTooLarge, SSEDecoder
from tests.fuzz.invariants import (
    API_KEY,
    MAX_ERROR_MESSAGE,
    OPENAI_FAMILY,
    classify,
    error_violations,
    event_violations,
    provider,
)
from tests.stack import FAST, stack

DEEP = b"[" * 300 + b"]" * 300  # orjson reads 1024 levels but writes only 254


def xfail(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


def stream(kind: str, raw: bytes) -> set[str]:
    decoder = provider(kind).decoder()
    try:
        return event_violations(decoder.feed(raw) + decoder.close())
    except Exception as exc:
        return {classify(exc)}


def response(kind: str, body: bytes) -> set[str]:
    try:
        return event_violations(provider(kind).parse_response(body))
    except Exception as exc:
        return {classify(exc)}


def error(kind: str, status: int, body: bytes) -> set[str]:
    try:
        return error_violations(provider(kind).parse_error(status, {}, body))
    except Exception as exc:
        return {classify(exc)}


# -- decoders and adapters -------------------------------------------------------------------


@pytest.mark.parametrize("kind", OPENAI_FAMILY)
def test_openai_stream_deep_tool_arguments(kind: str) -> None:
    """Was: openai_stream.ChunkMapper._tool_calls re-serializes dict/list arguments:
    orjson.dumps raises 'Recursion limit reached' (TypeError) past 254 levels"""
    chunk = b'{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":%s}}]}}]}'
    assert not stream(kind, b"data: " + chunk % DEEP + b"\n\n")


def test_openai_response_deep_tool_arguments() -> None:
    """Was: the same ChunkMapper path in OpenAICompatProvider.parse_response: orjson.dumps
    raises 'Recursion limit reached' (TypeError) past 254 levels"""
    body = b'{"choices":[{"message":{"tool_calls":[{"function":{"arguments":%s}}]}}]}' % DEEP
    assert not response("openai", body)


def test_anthropic_stream_deep_tool_input() -> None:
    """Was: anthropic_stream._block_start re-serializes a preset tool input: orjson.dumps raises
    'Recursion limit reached' (TypeError) past 254 levels"""
    data = b'{"index":0,"content_block":{"type":"tool_use","input":{"a":%s}}}' % DEEP
    assert not stream("anthropic", b"event: content_block_start\ndata: " + data + b"\n\n")


def test_anthropic_response_deep_tool_input() -> None:
    """Was: AnthropicProvider.parse_response re-serializes tool_use input: orjson.dumps raises
    'Recursion limit reached' (TypeError) past 254 levels"""
    body = b'{"content":[{"type":"tool_use","id":"t","name":"f","input":{"a":%s}}]}' % DEEP
    assert not response("anthropic", body)


def test_anthropic_response_content_not_a_list() -> None:
    """Was: AnthropicProvider.parse_response iterates `data.get('content') or ()`: a number
    raises"""
    assert not response("anthropic", b'{"content": 5, "stop_reason": "end_turn"}')


def test_anthropic_response_non_string_fields() -> None:
    """Was: AnthropicProvider.parse_response puts block['text'] / ['thinking'] / id / name into
    events without checking they are strings (TextDelta(text=5))"""
    body = b'{"content":[{"type":"text","text":5},{"type":"tool_use","id":1,"name":[]}]}'
    assert not response("anthropic", body)


def test_anthropic_response_error_redacts_key() -> None:
    """Was: AnthropicProvider.parse_response returns error_from_body() without redacting the key"""
    body = orjson.dumps({"type": "error", "error": {"type": "x", "message": f"key {API_KEY}"}})
    assert not response("anthropic", body)


def test_anthropic_stream_error_redacts_key() -> None:
    """Was: AnthropicStreamDecoder has no api key: an `event: error` echoing it is not redacted"""
    data = orjson.dumps({"type": "error", "error": {"type": "x", "message": f"key {API_KEY}"}})
    assert not stream("anthropic", b"event: error\ndata: " + data + b"\n\n")


def test_gemini_error_details_not_a_list() -> None:
    """Was: gemini_stream.error_from_body iterates `error.get('details') or ()`: a number raises"""
    assert not error("gemini", 400, b'{"error": {"message": "m", "details": 5}}')


def test_gemini_stream_error_details_not_a_list() -> None:
    """Was: the same error_from_body on an in-stream error chunk"""
    assert not stream("gemini", b'data: {"error": {"details": 5}}\n\n')


def test_gemini_retry_delay_is_finite() -> None:
    """Was: gemini_stream.parse_duration accepts '1e999s' (inf); errors.upstream_error_response
    then does math.ceil(inf) -> OverflowError -> a 500 to the client"""
    body = b'{"error": {"code": 429, "details": [{"retryDelay": "1e999s"}]}}'
    assert not error("gemini", 429, body)


@pytest.mark.parametrize(
    ("delay", "header"), [(math.inf, "86400"), (1e300, "86400"), (math.nan, None), (2.1, "3")]
)
def test_retry_after_renders_whatever_the_delay(delay: float, header: str | None) -> None:
    """Was: the error renderer did math.ceil(inf) -> OverflowError -> a 500 to the client."""
    response = upstream_error_response(UpstreamError(429, "x", "m", True, retry_after_s=delay), {})
    assert response.status == 429
    assert response.headers.get("retry-after") == header


def test_gemini_retry_delay_is_capped() -> None:
    body = b'{"error": {"code": 429, "details": [{"retryDelay": "1e300s"}]}}'
    assert provider("gemini").parse_error(429, {}, body).retry_after_s == 86400
    assert (
        provider("gemini").parse_error(429, {}, body.replace(b"1e300", b"1e999")).retry_after_s
        is None
    )


def test_gemini_stream_deep_function_args() -> None:
    """Was: gemini_stream.GeminiChunks._part re-serializes functionCall.args: orjson.dumps
    raises 'Recursion limit reached' (TypeError) past 254 levels"""
    data = b'{"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":%s}}}]}}]}'
    assert not stream("gemini", b"data: " + data % DEEP + b"\n\n")


def test_gemini_response_error_redacts_key() -> None:
    """Was: GeminiStreamDecoder / parse_response have no api key: an error echoing it is kept"""
    assert not response("gemini", orjson.dumps({"error": {"message": f"bad {API_KEY}"}}))


def test_ollama_tool_calls_not_a_list() -> None:
    """Was: ollama_stream.OllamaLines.handle iterates `message.get('tool_calls') or ()`"""
    assert not stream("ollama", b'{"message": {"tool_calls": 5}}\n')


def test_ollama_deep_tool_arguments() -> None:
    """Was: ollama_stream.OllamaLines._tool_call re-serializes arguments: orjson.dumps raises
    'Recursion limit reached' (TypeError) past 254 levels"""
    line = b'{"message":{"tool_calls":[{"function":{"name":"f","arguments":{"a":%s}}}]}}\n'
    assert not stream("ollama", line % DEEP)


def test_ollama_error_line_is_redacted_and_cut() -> None:
    """Was: OllamaLines.handle turns `{"error": ...}` into an UpstreamError as is: the key is
    not redacted and the message is not cut to 2000 characters"""
    assert not response("ollama", orjson.dumps({"error": f"bad key {API_KEY}"}))
    assert not stream("ollama", orjson.dumps({"error": "x" * 10_000}) + b"\n")


DEEP_STREAMS = {
    "openai": b'data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":%s}}]}}]}\n\n',
    "anthropic": b'event: content_block_start\ndata: {"index":0,"content_block":'
    b'{"type":"tool_use","input":{"a":%s}}}\n\n',
    "gemini": b'data: {"candidates":[{"content":{"parts":[{"functionCall":'
    b'{"name":"f","args":{"a":%s}}}]}}]}\n\n',
    "ollama": b'{"message":{"tool_calls":[{"function":{"name":"f","arguments":{"a":%s}}}]}}\n',
}


@pytest.mark.parametrize("kind", sorted(DEEP_STREAMS))
def test_deep_tool_arguments_are_a_protocol_error(kind: str) -> None:
    """Arguments that cannot be re-encoded end the stream with one protocol error, last."""
    decoder = provider(kind).decoder()
    events = decoder.feed(DEEP_STREAMS[kind] % DEEP) + decoder.close()
    errors = [e for e in events if type(e) is UpstreamError]
    assert [e.type for e in errors] == ["upstream_protocol_error"]
    assert events[-1] is errors[0]


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama"])
def test_key_cut_at_the_message_limit_leaves_no_prefix(kind: str) -> None:
    """The key is redacted before the message is cut, so no prefix of it survives the cut."""
    message = "x" * (MAX_ERROR_MESSAGE - 4) + API_KEY
    body = orjson.dumps({"error": {"message": message}})
    found = provider(kind).parse_error(400, {}, body)
    assert API_KEY[:4] not in found.message and found.message.endswith("***")


def test_sse_huge_retry_field() -> None:
    """Was: sse.SSEDecoder does int() on a `retry:` value of any length: past 4300 digits Python
    raises a plain ValueError (int max str digits), not LineTooLong/EventTooLarge; the provider
    decoders then fail the whole stream with that message as a protocol error"""
    decoder = SSEDecoder()
    try:
        events = decoder.feed(b"retry: " + b"9" * 5000 + b"\ndata: x\n\n")
    except (LineTooLong, EventTooLarge):
        events = []
    assert [e.data for e in events] == ["x"]


# -- the HTTP server -------------------------------------------------------------------------
# These are expected to fail only until app.py / handlers.py / feedback.py use
# gateway.server.limits; the condition looks at their source, so the wiring turns each case
# into an ordinary test by itself, with no marker to delete.

SERVERS = {"oa": {"kind": "openai", "models": {"m1": {**FAST}}}}
CHAT = orjson.dumps({"model": "m1", "messages": [{"role": "user", "content": "hi"}]})


def unwired(function: object, name: str, reason: str) -> pytest.MarkDecorator:
    """xfail(strict) while `function`'s source does not call `name`."""
    wired = name in inspect.getsource(function)  # type: ignore[arg-type]
    return pytest.mark.xfail(not wired, strict=True, reason=reason)


_READS = (
    "reads with request.read(): a corrupt Content-Encoding body raises aiohttp's "
    "RequestPayloadError -> 500 (use limits.read_body)"
)


async def exchange(url: str, data: bytes, wait_s: float) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    out = b""
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(wait_s):
            while chunk := await reader.read(65536):
                out += chunk
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    return out


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(
            "/v1/chat/completions",
            marks=unwired(answering.open_answer, "read_body", "chat_completions " + _READS),
        ),
        pytest.param(
            "/v1/feedback", marks=unwired(feedback.feedback, "read_body", "feedback " + _READS)
        ),
    ],
)
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_corrupt_compressed_body_is_a_400(path: str, encoding: str) -> None:
    async with stack(SERVERS) as s, aiohttp.ClientSession() as http:
        headers = {"content-encoding": encoding, "content-type": "application/json"}
        body = b"\x1f\x8b\x08\x00 this is not " + encoding.encode()
        async with http.post(f"{s.url}{path}", data=body, headers=headers) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["param"] == "body"


@unwired(
    answering.open_answer,
    "read_body",
    "chat_completions has no body deadline: a client that stops sending holds it forever",
)
async def test_stalled_body_gets_408(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_limits, "BODY_TIMEOUT_S", 0.3)
    async with stack(SERVERS) as s:
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        answer = await exchange(s.url, head + b'{"model"', wait_s=1.0)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert b'"request_timeout"' in answer


@unwired(
    app.start_server,
    "runner_kwargs",
    "start_server passes no keepalive_timeout: aiohttp's 3630 s lets a slow head linger",
)
async def test_slow_request_head_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_limits, "KEEPALIVE_TIMEOUT_S", 0.3)
    async with stack(SERVERS) as s:
        host, port = s.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        try:
            async with asyncio.timeout(1.0):
                assert await reader.read() == b""  # closed by the server, no answer
        finally:
            writer.close()


@unwired(
    app.start_server,
    "runner_kwargs",
    "start_server passes no max_headers: aiohttp's default of 128 applies, not 100",
)
async def test_header_count_limit() -> None:
    async with stack(SERVERS) as s:
        lots = b"".join(b"X-H%d: v\r\n" % i for i in range(server_limits.MAX_HEADERS + 1))
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        answer = await exchange(s.url, head + lots + b"\r\n", wait_s=2.0)
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")


async def test_malformed_head_gets_an_envelope() -> None:
    """Was: aiohttp answered a malformed request head with a plain-text 400."""
    async with stack(SERVERS) as s:
        answer = await exchange(
            s.url, b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 2
        )
        assert b'{"error"' in answer
