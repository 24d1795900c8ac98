"""A cut HTTP/1.1 connection replaced in the background (`Http1Pool(replace_cut=True)`),
against scripted servers on real sockets: the next request finds it idle, a request that
comes while it opens waits for it rather than dialing, and nothing is left behind when
it fails, when its claimer leaves, at the limit, or when the pool closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.streaming.dial import ConnectFailed
from gateway.streaming.http1.handles import Response
from gateway.streaming.http1.pool import Http1Pool
from gateway.streaming.upstream import PoolStats
from tests.integration.test_http1_pool import (
    CHUNKED_SSE,
    SSE,
    Server,
    body_of,
    read_request,
    until,
)
from tests.integration.test_http1_pool import serve as serve  # a fixture

Start = Callable[..., Awaitable[Server]]
Rigs = Callable[..., Awaitable["Rig"]]


@pytest.fixture
def raw(serve: Start) -> Start:
    """Start a scripted server (the pool tests' `serve`)."""
    return serve


def streaming_until_cut(server: Server) -> Callable[..., object]:
    """Each request gets the head and one event, then the answer stays open until the
    client goes (a race's loser, cut mid-answer); requests are recorded."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await read_request(reader):
            server.requests.append(request)
            if b"X-Whole: 1" in request:
                writer.write(CHUNKED_SSE)
                await writer.drain()
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
                b"%x\r\n%s\r\n" % (len(SSE), SSE)
            )
            await writer.drain()
            await reader.read()  # until the client goes

    return handle


class GatedDial:
    """Wraps a pool's `_connect`: dials after the first wait for `gate` (or fail with
    `fail`), so a test can hold a refill while it opens."""

    def __init__(self, pool: Http1Pool, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = pool._connect
        self.gate = asyncio.Event()
        self.fail = False
        self.dials = 0
        self.held = False  # the next dial waits for the gate
        monkeypatch.setattr(pool, "_connect", self)

    async def __call__(self, target: object) -> object:
        self.dials += 1
        if self.held:
            self.held = False
            await self.gate.wait()
            if self.fail:
                raise ConnectFailed("cannot connect")
        return await self.real(target)  # type: ignore[arg-type]


@dataclass
class Rig:
    """A scripted server (`streaming_until_cut`) and a pool to it, with the pool's counts
    and the cuts it gave out."""

    server: Server
    pool: Http1Pool
    stats: PoolStats
    cuts: list[Callable[[], None]]

    async def cut_one(self) -> None:
        """One request whose answer is open, then cut (a race's loser)."""
        response = await self.pool.request("POST", self.server.url(), {}, b"")
        assert response.status == 200
        self.cuts[-1]()

    async def cut_one_held(self, dial: GatedDial, fail: bool = False) -> None:
        """`cut_one` with its refill held at its dial (failing once let go, with `fail`)."""
        response = await self.pool.request("POST", self.server.url(), {}, b"")
        assert response.status == 200
        dial.held, dial.fail = True, fail
        self.cuts[-1]()

    def whole(self) -> Awaitable[Response]:
        """A request answered whole."""
        return self.pool.request("POST", self.server.url(), {"X-Whole": "1"}, b"")


@pytest.fixture
async def rigs(raw: Start) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """Make a `Rig`; its pool replaces cut connections unless told otherwise (keywords go
    to `Http1Pool`), and is closed at the end."""
    pools: list[Http1Pool] = []

    async def make(**pool_options: Any) -> Rig:
        server = await raw(streaming_until_cut)
        stats = PoolStats()
        cuts: list[Callable[[], None]] = []
        options = {"replace_cut": True, **pool_options}
        pool = Http1Pool(stats, on_connection=cuts.append, **options)
        pools.append(pool)
        return Rig(server, pool, stats, cuts)

    yield make
    for pool in pools:
        await pool.close()


def refill_tasks() -> list[asyncio.Task[object]]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "").endswith("_refill_open")
    ]


async def test_a_cut_connection_is_replaced_and_the_next_request_uses_it(rigs: Rigs) -> None:
    r = await rigs()
    await r.cut_one()
    await until(lambda: r.pool.open_connections() == 1)  # the replacement, idle
    assert (r.server.connections, r.stats.opened, r.stats.replaced) == (2, 2, 1)
    assert len(r.server.requests) == 1  # it carried no request: a bare connect
    response = await r.whole()
    assert await body_of(response) == SSE
    response.release()
    assert (r.server.connections, r.stats.opened, r.stats.reused) == (2, 2, 1)


async def test_without_replace_cut_the_next_request_dials(rigs: Rigs) -> None:
    r = await rigs(replace_cut=False)
    await r.cut_one()
    assert r.pool.open_connections() == 0
    response = await r.whole()
    assert await body_of(response) == SSE
    response.release()
    assert (r.stats.opened, r.stats.reused, r.stats.replaced) == (2, 0, 0)


async def test_a_request_during_the_refill_waits_for_it_instead_of_dialing(
    rigs: Rigs, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await rigs()
    dial = GatedDial(r.pool, monkeypatch)
    await r.cut_one()
    await until(lambda: r.pool.open_connections() == 1)  # the first refill, idle
    dial.held = True
    r.cuts[-1]()  # a second cut of the same request: nothing more
    await r.cut_one()  # this one's refill is held
    await until(lambda: dial.dials == 3)  # the second refill, held at its dial
    assert len(refill_tasks()) == 1
    request = asyncio.ensure_future(r.whole())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not request.done() and dial.dials == 3  # waiting for the refill, not dialing
    dial.gate.set()
    response = await request
    assert await body_of(response) == SSE
    response.release()
    assert (r.stats.opened, r.stats.replaced, dial.dials) == (3, 2, 3)
    assert r.pool.open_connections() == 1  # the first refill was cut in turn; this one idles


async def test_a_claimer_that_leaves_hands_the_refill_to_the_pool(
    rigs: Rigs, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await rigs()
    dial = GatedDial(r.pool, monkeypatch)
    await r.cut_one_held(dial)
    request = asyncio.ensure_future(r.pool.request("POST", r.server.url(), {}, b""))
    for _ in range(20):
        await asyncio.sleep(0)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    dial.gate.set()
    await until(lambda: r.pool.open_connections() == 1)  # idle, not lost
    assert r.pool._held() == 1 and not refill_tasks()


async def test_a_refill_that_cannot_connect_is_counted_and_frees_its_place(
    rigs: Rigs, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await rigs()
    dial = GatedDial(r.pool, monkeypatch)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        await r.cut_one_held(dial, fail=True)
        claimer = asyncio.ensure_future(r.whole())
        dial.gate.set()
        answer = await claimer  # the refill failed: it dialed its own
        assert await body_of(answer) == SSE
        answer.release()
        assert (r.stats.replace_failed, r.stats.replaced, r.stats.opened) == (1, 0, 2)
        assert r.pool._held() == 1 and reported == []
    finally:
        loop.set_exception_handler(None)


async def test_at_the_limit_a_waiting_request_takes_the_place_not_a_refill(rigs: Rigs) -> None:
    r = await rigs(limit=1)
    response = await r.pool.request("POST", r.server.url(), {}, b"")
    waiting = asyncio.ensure_future(r.whole())
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()
    r.cuts[-1]()
    assert response.status == 200
    answer = await waiting
    assert await body_of(answer) == SSE
    answer.release()
    assert (r.stats.replaced, r.stats.opened, r.server.connections) == (0, 2, 2)
    assert not refill_tasks()


async def test_close_cancels_a_refill_still_opening(
    rigs: Rigs, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = await rigs()
    dial = GatedDial(r.pool, monkeypatch)
    await r.cut_one_held(dial)
    assert len(refill_tasks()) == 1
    await r.pool.close()
    assert not refill_tasks() and r.pool._held() == 0
    assert r.server.connections == 1  # the held dial never connected
