"""The coalescing window (`stream.coalesce_ms`) over real sockets.

First the real `stream_answer` in a small aiohttp server, fed by a scripted answer whose
chunks "arrive" at virtual times: a read returns every chunk that has arrived, as
aiohttp's `readany` does, or moves virtual time on to the next arrival (waiting for the
upstream). The pacer sleeps on the same virtual clock, so how many writes leave, and
when, is exact. Then the whole gateway in front of the simulator, through every door.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.config.model import Config, StreamConfig
from gateway.server import answering, coalesce
from gateway.server.answering import SSEResponse, respond, stream_answer
from gateway.server.errors import upstream_error_response
from gateway.server.keys import GATEWAY
from gateway.streaming.encode import ChunkEncoder
from gateway.streaming.events import Event, Finish, TextDelta
from gateway.streaming.plan import HEARTBEAT, Heartbeat, Winner
from tests.stack import stack

pytestmark = pytest.mark.timeout(30)

WINDOW_MS = 2.0


class Timeline:
    """Virtual time, and what happened on it in order: ("write", t, bytes) from the
    response, ("sleep", t, seconds) from the pacer, ("read", t, texts) from the answer."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[tuple[str, float, Any]] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", self.now, seconds))
        self.now += seconds

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.log]

    def writes(self) -> list[tuple[float, bytes]]:
        return [(t, data) for kind, t, data in self.log if kind == "write"]


class ScriptedAnswer:
    """A winner's answer: `first` at time 0, then each (time, text) chunk arrives then."""

    def __init__(
        self, timeline: Timeline, first: str, later: list[tuple[float, str]], heartbeats: int = 0
    ) -> None:
        self.timeline = timeline
        self.first_text = first
        self.pending = list(later)
        self.heartbeats = heartbeats
        self.request_id = "req-coalesce"
        self.status = 0
        self.closed_with: bool | None = None  # client_gone, once closed
        self.closed = asyncio.Event()

    async def first(self) -> Winner | Heartbeat:
        if self.heartbeats:
            self.heartbeats -= 1
            return HEARTBEAT
        return Winner("fake", [TextDelta(self.first_text)])

    async def next_batch(self) -> list[Event] | None:
        timeline = self.timeline
        if not self.pending:
            return None
        timeline.now = max(timeline.now, self.pending[0][0])  # nothing yet: wait upstream
        arrived = [text for at, text in self.pending if at <= timeline.now]
        del self.pending[: len(arrived)]
        timeline.log.append(("read", timeline.now, arrived))
        events: list[Event] = [TextDelta(text) for text in arrived]
        if not self.pending:
            events.append(Finish("stop"))
        return events

    def relay(self, frame: object) -> None:
        return None  # no upstream stream to hand over: every batch goes through next_batch

    async def aclose(self, client_gone: bool = False) -> None:
        self.closed_with = client_gone
        self.closed.set()


@asynccontextmanager
async def serving(
    answer: ScriptedAnswer, timeline: Timeline, stream: StreamConfig, monkeypatch: Any
) -> AsyncIterator[str]:
    """A server whose one route streams `answer` with `stream_answer` under `stream`."""

    class Recorded(SSEResponse):
        async def write(self, data: bytes | bytearray | memoryview) -> None:
            timeline.log.append(("write", timeline.now, bytes(data)))
            await super().write(data)

    monkeypatch.setattr(answering, "SSEResponse", Recorded)
    paced = functools.partial(coalesce.pacer, clock=timeline.time, sleep=timeline.sleep)
    monkeypatch.setattr(coalesce, "pacer", paced)
    encoder = ChunkEncoder("chatcmpl-coalesce", 0, "fake", False)

    async def handler(request: web.Request) -> web.StreamResponse:
        request[GATEWAY] = SimpleNamespace(config=Config(stream=stream))  # type: ignore[assignment]
        return await respond(
            answer,  # type: ignore[arg-type]
            lambda: stream_answer(request, answer, encoder, upstream_error_response),  # type: ignore[arg-type]
        )

    app = web.Application()
    app.router.add_post("/stream", handler)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/stream"
    finally:
        await runner.cleanup()


def texts(raw: bytes) -> tuple[list[str], bool]:
    """The content deltas of a chat stream in order, and whether it ended with [DONE]."""
    out: list[str] = []
    events = [e for e in raw.split(b"\n\n") if e]
    for event in events:
        if event.startswith(b"data: {"):
            delta = orjson.loads(event[6:])["choices"][0]["delta"]
            if delta.get("content"):
                out.append(delta["content"])
    return out, events[-1] == b"data: [DONE]"


async def fetch(url: str) -> bytes:
    async with aiohttp.ClientSession() as http, http.post(url) as resp:
        assert resp.status == 200
        return await resp.read()


# ten chunks 1 ms apart (0.7, 1.7, ... 9.7 ms), off the 2 ms window edges on purpose
BURSTY = [(i / 1000 - 0.0003, f"t{i} ") for i in range(1, 11)]
EVERY_5MS = [(i * 0.005, f"t{i} ") for i in range(1, 11)]
ALL_TEXT = "t0 " + "".join(text for _, text in BURSTY)


async def test_chunks_arriving_within_a_window_leave_in_one_write(monkeypatch: Any) -> None:
    timeline = Timeline()
    answer = ScriptedAnswer(timeline, "t0 ", BURSTY)
    async with serving(answer, timeline, StreamConfig(coalesce_ms=WINDOW_MS), monkeypatch) as url:
        raw = await fetch(url)
    deltas, done = texts(raw)
    assert "".join(deltas) == ALL_TEXT and done
    # the first token is written before the pacer is ever awaited
    assert timeline.kinds()[0] == "write" and b"t0 " in timeline.log[0][2]
    assert timeline.log[0][1] == 0.0
    # then a read every 2 ms, each taking the two chunks that arrived meanwhile
    reads = [(t, got) for kind, t, got in timeline.log if kind == "read"]
    assert reads == [
        (pytest.approx(0.002 * n), [f"t{2 * n - 1} ", f"t{2 * n} "]) for n in range(1, 6)
    ]
    writes = timeline.writes()
    assert len(writes) == 1 + 5 + 1  # first token, one per window, [DONE]
    # no chunk waited more than one window
    arrivals = dict((text, at) for at, text in BURSTY)
    for t, got in reads:
        assert all(t - arrivals[text] <= WINDOW_MS / 1000 for text in got)
    assert answer.closed_with is False


async def test_off_by_default_every_batch_leaves_at_once(monkeypatch: Any) -> None:
    timeline = Timeline()
    answer = ScriptedAnswer(timeline, "t0 ", BURSTY)
    async with serving(answer, timeline, Config().stream, monkeypatch) as url:
        raw = await fetch(url)
    deltas, done = texts(raw)
    assert "".join(deltas) == ALL_TEXT and done
    assert "sleep" not in timeline.kinds()
    assert len(timeline.writes()) == 1 + 10 + 1
    # each chunk is written at its arrival time
    assert [t for t, _ in timeline.writes()[1:-1]] == [at for at, _ in BURSTY]


async def test_an_upstream_slower_than_the_window_is_never_held(monkeypatch: Any) -> None:
    timeline = Timeline()
    answer = ScriptedAnswer(timeline, "t0 ", EVERY_5MS)
    async with serving(answer, timeline, StreamConfig(coalesce_ms=WINDOW_MS), monkeypatch) as url:
        raw = await fetch(url)
    deltas, _ = texts(raw)
    assert deltas == ["t0 ", *(text for _, text in EVERY_5MS)]
    # one window after the first token; then every read waited longer than a window for
    # the upstream, so no read is paced any more: each chunk leaves when it arrives
    assert timeline.kinds().count("sleep") == 1
    assert [t for t, _ in timeline.writes()[1:-1]] == [at for at, _ in EVERY_5MS]


async def test_heartbeats_and_the_first_token_are_not_paced(monkeypatch: Any) -> None:
    timeline = Timeline()
    answer = ScriptedAnswer(timeline, "t0 ", BURSTY, heartbeats=2)
    async with serving(answer, timeline, StreamConfig(coalesce_ms=WINDOW_MS), monkeypatch) as url:
        raw = await fetch(url)
    deltas, done = texts(raw)
    assert "".join(deltas) == ALL_TEXT and done
    kinds = timeline.kinds()
    # two keep-alives, the winner's name, then the first token: all before any sleep
    assert kinds[:5] == ["write"] * 4 + ["sleep"]
    assert b"t0 " in timeline.log[3][2]


async def test_a_client_gone_during_the_window_ends_the_answer(monkeypatch: Any) -> None:
    timeline = Timeline()
    answer = ScriptedAnswer(timeline, "t0 ", BURSTY)
    slept = asyncio.Event()
    cancelled = asyncio.Event()

    async def forever(seconds: float) -> None:
        slept.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(timeline, "sleep", forever)
    async with serving(answer, timeline, StreamConfig(coalesce_ms=WINDOW_MS), monkeypatch) as url:
        async with aiohttp.ClientSession() as http:
            resp = await http.post(url)
            received = b""
            while b"t0 " not in received:  # the first token, written before any window
                received += await resp.content.readany()
            await slept.wait()
            resp.close()  # drop the connection while the handler waits out the window
            await asyncio.wait_for(answer.closed.wait(), 10)
    assert cancelled.is_set() and answer.closed_with is True
    assert "read" not in timeline.kinds()  # nothing more was asked of the upstream


# -- the whole gateway in front of the simulator -------------------------------------

TEXT = " ".join(f"w{i}" for i in range(40))
FAST_TEXT = {"ttft_ms": 5, "itl_ms": 1, "text": TEXT}
DOORS = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    "responses": ("/v1/responses", {"input": "hi"}),
    "messages": (
        "/v1/messages",
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100},
    ),
}


def door_text(door: str, raw: bytes) -> str:
    """The answer's text out of a door's SSE stream."""
    out: list[str] = []
    for event in raw.split(b"\n\n"):
        for line in event.split(b"\n"):
            if not line.startswith(b"data: {"):
                continue
            data = orjson.loads(line[6:])
            if door == "chat":
                out.append((data["choices"] or [{}])[0].get("delta", {}).get("content") or "")
            elif door == "responses" and data.get("type") == "response.output_text.delta":
                out.append(data["delta"])
            elif door == "messages" and data.get("type") == "content_block_delta":
                out.append(data["delta"].get("text", ""))
    return "".join(out)


@pytest.mark.parametrize("door", sorted(DOORS))
async def test_every_door_streams_the_same_text_with_a_window(door: str) -> None:
    path, body = DOORS[door]
    servers = {"a": {"kind": "openai", "models": {"m": FAST_TEXT}}}
    got = {}
    for window in (0, 5):
        async with stack(servers, stream={"coalesce_ms": window}) as s:
            assert s.gateway.config.stream.coalesce_ms == window
            async with aiohttp.ClientSession() as http:
                payload = {**body, "model": "m", "stream": True}
                headers = {"anthropic-version": "2023-06-01"}  # the Messages door wants it
                async with http.post(f"{s.url}{path}", json=payload, headers=headers) as resp:
                    assert resp.status == 200
                    got[window] = door_text(door, await resp.read())
    assert got[0] == got[5] == TEXT


async def test_the_window_is_not_upstream_idleness() -> None:
    """An idle timeout shorter than the window: the waits between reads are the gateway's
    own, so the stream must still end well (no `upstream stalled` error)."""
    servers = {"a": {"kind": "openai", "models": {"m": {"ttft_ms": 5, "itl_ms": 0, "tokens": 8}}}}
    deployments = {"m": {"idle_timeout_s": 0.05}}
    async with stack(servers, deployments=deployments, stream={"coalesce_ms": 300}) as s:
        async with aiohttp.ClientSession() as http:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            async with http.post(f"{s.url}/v1/chat/completions", json=body) as resp:
                raw = await resp.read()
    assert b'"error"' not in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    records = s.records("m")
    assert records and records[0].outcome == "completed"
