"""`UpstreamPool.warm`: a warm-up answer is read whole and its connection kept idle; one
longer than the bound is not read on, and its connection is dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.streaming import upstream
from gateway.streaming.adapter import UpstreamRequest
from gateway.streaming.upstream import UpstreamPool


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
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def _warmup(url: str, size: int) -> UpstreamRequest:
    return UpstreamRequest("GET", f"{url}/v1/models?size={size}", {}, b"")


async def test_a_warm_up_answer_read_whole_leaves_its_connection_idle(
    models_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream, "MAX_WARM_BODY", 10_000)
    pool = UpstreamPool("p")
    try:
        assert await pool.warm(_warmup(models_server, 10_000))
        assert (pool.stats.warmed, pool.stats.warm_failed) == (1, 0)
        assert pool.open_connections() == 1
    finally:
        await pool.close()


async def test_a_warm_up_answer_past_the_bound_drops_its_connection(
    models_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream, "MAX_WARM_BODY", 10_000)
    pool = UpstreamPool("p")
    try:
        assert not await pool.warm(_warmup(models_server, 200_000))
        assert (pool.stats.warmed, pool.stats.warm_failed) == (0, 1)
        assert pool.open_connections() == 0
    finally:
        await pool.close()
