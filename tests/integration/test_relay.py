"""The fast relay (gateway/streaming/relay.py) on real sockets: a scripted OpenAI-shaped
upstream sends one chunk at a time, each only after the client has read the one before,
so every text chunk after the first token is one the relay forwards (the relay is in
place before the client sees the first token: the handler installs it in the same step
as its first write). Each test says what the client reads and what the request's record
shows, including when the relay hands the stream back (a finish, an error, a stall, a
cut connection, a client gone) and when it must not run at all (an output transform)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway import compat_aiohttp
from gateway.config import parse_config
from gateway.record import RequestRecord
from gateway.runtime import Gateway
from gateway.server.app import start_server

HEAD = b'{"id":"chatcmpl-r","object":"chat.completion.chunk","created":1,"model":"up",'
CHOICE = b'"choices":[{"index":0,"delta":'


@pytest.fixture(autouse=True)
def nothing_left_diverted() -> Iterator[None]:
    """Every diverted or watched reader is given back, whatever way its stream ended."""
    yield
    assert compat_aiohttp._DIVERTED == {}


def chunk(delta: bytes, finish: bytes = b"null") -> bytes:
    return b"data: " + HEAD + CHOICE + delta + b',"finish_reason":' + finish + b"}]}\n\n"


def text(word: str) -> bytes:
    return chunk(b'{"content":' + orjson.dumps(word) + b"}")


ROLE = chunk(b'{"role":"assistant","content":""}')
FINISH = chunk(b"{}", b'"stop"')
USAGE = (
    b"data: " + HEAD + b'"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,'
    b'"total_tokens":12}}\n\n'
)
DONE = b"data: [DONE]\n\n"
CUT = b"<cut>"  # the upstream drops its connection here
SILENT = b"<silent>"  # the upstream says nothing more (and keeps the connection)


@dataclass
class Upstream:
    """Sends `script` one piece at a time, each when the test releases it."""

    script: list[bytes]
    release: asyncio.Queue[None] = field(default_factory=asyncio.Queue)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: bool = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            for piece in self.script:
                await self.release.get()
                if piece == CUT:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if piece == SILENT:
                    await asyncio.Event().wait()
                await response.write(piece)
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected = True
            raise
        finally:
            self.finished.set()
        return response


class Records:
    def __init__(self) -> None:
        self.items: list[RequestRecord] = []
        self.changed = asyncio.Event()

    def record(self, rec: RequestRecord) -> None:
        self.items.append(rec)
        self.changed.set()

    async def first(self) -> RequestRecord:
        async with asyncio.timeout(10):
            while not self.items:
                self.changed.clear()
                await self.changed.wait()
        return self.items[0]


@asynccontextmanager
async def relayed(
    script: list[bytes], **extra: Any
) -> AsyncIterator[tuple[str, Upstream, Records]]:
    upstream = Upstream(script)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.handle)
    up_runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await up_runner.setup()
    site = web.TCPSite(up_runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    deployment = {"provider": "up", "model": "up", "idle_timeout_s": 0.3}
    data = {
        "logging": {"level": "warning", "format": "json"},
        "latency": {"prewarm": {"enabled": False}},
        "routing": {"allow_direct_deployments": True},
        "providers": {
            "up": {"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k"}
        },
        "deployments": {"up": deployment},
        **extra,
    }
    gateway = Gateway(parse_config(data, env={}))
    records = Records()
    gateway.sinks.append(records)
    runner, url = await start_server(gateway, "127.0.0.1", 0)
    try:
        yield url, upstream, records
    finally:
        await runner.cleanup()
        await up_runner.cleanup()


async def read_event(content: aiohttp.StreamReader) -> bytes:
    """The client's next SSE event (up to its blank line)."""
    async with asyncio.timeout(10):
        return await content.readuntil(b"\n\n")


def delta_text(event: bytes) -> str:
    assert event.startswith(b"data: ") and event.endswith(b"\n\n"), event
    body = orjson.loads(event[6:])
    return "".join(c["delta"].get("content") or "" for c in body["choices"])


BODY = {
    "model": "up",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}
WORDS = ["Hello", " wörld", ' "quoted"', " back\\slash", " tab\tnew\nline", " end"]


async def test_relay_forwards_text_chunks_and_hands_back_the_end() -> None:
    script = [ROLE + text(WORDS[0]), *(text(w) for w in WORDS[1:]), FINISH, USAGE, DONE]
    async with relayed(script) as (url, upstream, records), aiohttp.ClientSession() as http:
        upstream.release.put_nowait(None)  # headers leave with the first token
        async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
            assert resp.status == 200
            first = await read_event(resp.content)  # the role chunk, then the first token
            second = await read_event(resp.content)
            assert delta_text(first) + delta_text(second) == WORDS[0]
            got = []
            for _ in WORDS[1:]:
                upstream.release.put_nowait(None)
                got.append(delta_text(await read_event(resp.content)))
            assert got == WORDS[1:]
            for _ in range(3):
                upstream.release.put_nowait(None)
            rest = await resp.read()
        events = [orjson.loads(e[6:]) for e in rest.split(b"\n\n") if e and e != DONE[:-2]]
        assert rest.endswith(DONE)
        assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]] == ["stop"]
        assert events[-1]["usage"]["completion_tokens"] == 9
        rec = await records.first()
    attempt = rec.race.attempts[0]  # type: ignore[union-attr]
    assert attempt.relayed == len(WORDS) - 1  # every text chunk after the first token
    assert attempt.tokens == len(WORDS)
    assert rec.outcome == "completed" and attempt.usage is not None


async def step(upstream: Upstream, content: aiohttp.StreamReader, events: int = 1) -> str:
    """Release the upstream's next piece and read the `events` it makes: their text."""
    upstream.release.put_nowait(None)
    return "".join([delta_text(await read_event(content)) for _ in range(events)])


async def test_relay_ends_a_stalled_stream_with_the_idle_error() -> None:
    script = [ROLE + text("a"), text("b"), SILENT]
    async with relayed(script) as (url, upstream, records), aiohttp.ClientSession() as http:
        upstream.release.put_nowait(None)
        async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
            assert delta_text(await read_event(resp.content)) == ""  # the role chunk
            assert delta_text(await read_event(resp.content)) == "a"
            assert await step(upstream, resp.content) == "b"
            upstream.release.put_nowait(None)
            raw = await resp.read()
        rec = await records.first()
    assert b'"type":"upstream_timeout"' in raw and b"stalled" in raw
    assert raw.endswith(DONE)
    attempt = rec.race.attempts[0]  # type: ignore[union-attr]
    assert attempt.relayed == 1 and attempt.error is not None
    assert rec.outcome == "failed"


async def test_relay_reports_a_cut_connection_like_the_general_path() -> None:
    script = [ROLE + text("a"), text("b"), text("c"), CUT]
    async with relayed(script) as (url, upstream, records), aiohttp.ClientSession() as http:
        upstream.release.put_nowait(None)
        async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
            assert delta_text(await read_event(resp.content)) == ""
            assert delta_text(await read_event(resp.content)) == "a"
            assert await step(upstream, resp.content) == "b"
            assert await step(upstream, resp.content) == "c"
            upstream.release.put_nowait(None)
            raw = await resp.read()
        rec = await records.first()
    assert b'"error"' in raw and raw.endswith(DONE)
    attempt = rec.race.attempts[0]  # type: ignore[union-attr]
    assert attempt.relayed == 2 and attempt.error is not None
    assert rec.outcome == "failed"


async def test_relay_hands_an_event_split_across_reads_back_whole() -> None:
    # A finish chunk cut in two: the relay holds its start, then gives both halves back.
    half = len(FINISH) // 2
    script = [ROLE + text("a"), text("b") + FINISH[:half], FINISH[half:] + DONE]
    async with relayed(script) as (url, upstream, records), aiohttp.ClientSession() as http:
        upstream.release.put_nowait(None)
        async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
            assert delta_text(await read_event(resp.content)) == ""
            assert delta_text(await read_event(resp.content)) == "a"
            assert await step(upstream, resp.content) == "b"
            upstream.release.put_nowait(None)
            raw = await resp.read()
        rec = await records.first()
    assert raw.count(b'"finish_reason":"stop"') == 1 and raw.endswith(DONE)
    assert rec.outcome == "completed"
    assert rec.race.attempts[0].relayed == 1  # type: ignore[union-attr]


async def test_client_gone_during_the_relay_drops_the_upstream() -> None:
    script = [ROLE + text("a"), text("b"), SILENT]
    async with relayed(script) as (url, upstream, records), aiohttp.ClientSession() as http:
        upstream.release.put_nowait(None)
        async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
            await read_event(resp.content)
            await read_event(resp.content)
            upstream.release.put_nowait(None)
            assert delta_text(await read_event(resp.content)) == "b"
            resp.connection.transport.abort()  # type: ignore[union-attr]
        rec = await records.first()
        async with asyncio.timeout(10):
            await upstream.finished.wait()
    assert rec.outcome == "client_cancelled"
    assert upstream.disconnected
    assert rec.race.attempts[0].relayed == 1  # type: ignore[union-attr]


async def test_no_relay_when_the_answer_is_transformed() -> None:
    output = {"action": "redact", "patterns": {"w": "wörld"}, "window": 8}
    script = [ROLE + text(WORDS[0]), *(text(w) for w in WORDS[1:]), FINISH, DONE]
    async with relayed(script, governance={"output": output}) as (url, upstream, records):
        for _ in script:
            upstream.release.put_nowait(None)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
                raw = await resp.read()
        rec = await records.first()
    assert "wörld".encode() not in raw and b"[REDACTED:w]" in raw
    attempt = rec.race.attempts[0]  # type: ignore[union-attr]
    assert attempt.relayed == 0 and attempt.tokens == len(WORDS)


async def test_no_relay_when_the_operator_asked_for_coalescing() -> None:
    script = [ROLE + text(WORDS[0]), *(text(w) for w in WORDS[1:]), FINISH, DONE]
    async with relayed(script, stream={"coalesce_ms": 2}) as (url, upstream, records):
        for _ in script:
            upstream.release.put_nowait(None)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
                raw = await resp.read()
        rec = await records.first()
    assert raw.endswith(DONE)
    attempt = rec.race.attempts[0]  # type: ignore[union-attr]
    assert attempt.relayed == 0 and attempt.tokens == len(WORDS)


async def test_the_messages_and_responses_doors_relay_too() -> None:
    """Each door's encoder frames the relayed text itself; the SDK-shaped events around it
    (block stops, sequence numbers, the final response's text) stay whole."""
    for path, body in (
        ("/v1/messages", {"model": "up", "max_tokens": 50, "stream": True, "messages": MSGS}),
        ("/v1/responses", {"model": "up", "stream": True, "input": "hi"}),
    ):
        script = [ROLE + text(WORDS[0]), *(text(w) for w in WORDS[1:]), FINISH, USAGE, DONE]
        async with relayed(script) as (url, upstream, records):
            async with aiohttp.ClientSession() as http:
                upstream.release.put_nowait(None)
                headers = {"anthropic-version": "2023-06-01"}
                async with http.post(url + path, json=body, headers=headers) as resp:
                    assert resp.status == 200
                    marker = (
                        b'"type":"text_delta"'
                        if path == "/v1/messages"
                        else b"event: response.output_text.delta"
                    )
                    got = b""
                    for seen in range(1, len(WORDS) + 1):  # one text chunk at a time
                        while got.count(marker) < seen:
                            got += await resp.content.readany()
                        upstream.release.put_nowait(None)
                    for _ in range(2):  # usage, [DONE]
                        upstream.release.put_nowait(None)
                    raw = got + await resp.read()
            rec = await records.first()
        assert rec.outcome == "completed", path
        assert rec.race.attempts[0].relayed == len(WORDS) - 1, path  # type: ignore[union-attr]
        assert rec.race.attempts[0].tokens == len(WORDS), path  # type: ignore[union-attr]
        joined = "".join(WORDS)
        if path == "/v1/responses":
            events = [orjson.loads(e.split(b"data: ", 1)[1]) for e in raw.split(b"\n\n") if e]
            assert [e["sequence_number"] for e in events] == list(range(len(events)))
            final = events[-1]["response"]["output"][0]["content"][0]["text"]
            assert final == joined
        else:
            deltas = [
                orjson.loads(e.split(b"data: ", 1)[1])["delta"]["text"]
                for e in raw.split(b"\n\n")
                if b'"text_delta"' in e
            ]
            assert "".join(deltas) == joined


MSGS = [{"role": "user", "content": "hi"}]


async def test_no_relay_when_the_operator_turned_it_off() -> None:
    script = [ROLE + text(WORDS[0]), *(text(w) for w in WORDS[1:]), FINISH, DONE]
    async with relayed(script, stream={"relay": False}) as (url, upstream, records):
        upstream.release.put_nowait(None)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/v1/chat/completions", json=BODY) as resp:
                got = [delta_text(await read_event(resp.content)) for _ in range(2)]
                for _ in script[1:]:
                    upstream.release.put_nowait(None)
                raw = await resp.read()
        rec = await records.first()
    assert "".join(got) == WORDS[0] and raw.endswith(DONE)
    attempt = rec.race.attempts[0]  # type: ignore[union-attr]
    assert attempt.relayed == 0 and attempt.tokens == len(WORDS)
