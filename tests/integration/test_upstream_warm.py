"""Bounded upstream reads: a warm-up answer (`UpstreamPool.warm`) or a one-shot call's
answer is read whole; one longer than its bound is not read on, and its connection is
dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.streaming import upstream
from gateway.streaming.adapter import UpstreamRequest
from gateway.streaming.events import UpstreamError
from gateway.streaming.upstream import UpstreamPool
from tests.served import serving


@pytest.fixture
async def models_server() -> AsyncIterator[str]:
    async def models(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", "100"))
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(size // 1000):
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    async with serving(app) as (_, url):
        yield url


def _warmup(url: str, size: int) -> UpstreamRequest:
    return UpstreamRequest("GET", f"{url}/v1/models?size={size}", {}, b"")


@pytest.mark.parametrize(
    ("size", "warmed", "kept"),
    [
        (10_000, True, 1),  # read whole: its connection stays idle in the pool
        (200_000, False, 0),  # past the bound: not read on, its connection dropped
    ],
)
async def test_a_warm_up_answer_is_read_up_to_the_bound(
    models_server: str, monkeypatch: pytest.MonkeyPatch, size: int, warmed: bool, kept: int
) -> None:
    monkeypatch.setattr(upstream, "MAX_WARM_BODY", 10_000)
    pool = UpstreamPool("p")
    try:
        assert await pool.warm(_warmup(models_server, size)) is warmed
        assert (pool.stats.warmed, pool.stats.warm_failed) == (int(warmed), int(not warmed))
        assert pool.open_connections() == kept
    finally:
        await pool.close()


@pytest.mark.parametrize("size", [10_000, 200_000])
async def test_a_one_shot_answer_is_read_up_to_its_bound(
    models_server: str, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The same bounded read serves an embeddings call's answer: whole, or a 502 past it."""
    monkeypatch.setattr(upstream, "MAX_ONE_SHOT_BODY", 10_000)
    pool = UpstreamPool("p")
    try:
        body = await upstream._read_whole(pool, None, _warmup(models_server, size))  # type: ignore[arg-type]
        if size <= 10_000:
            assert body == b"x" * size
        else:
            assert isinstance(body, UpstreamError) and body.status == 502
            assert body.message == "upstream body too large"
            assert pool.open_connections() == 0  # not read on: dropped
    finally:
        await pool.close()
