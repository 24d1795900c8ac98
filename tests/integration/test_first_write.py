"""A streamed answer's response, head and opening are readied while the upstream is silent
(server/answering's `FirstWrite`), for every door, with one attempt or a race; the
answer on the wire is the one it always was."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.server.answering import FirstWrite
from tests.integration.test_coalesce import DOORS, door_text
from tests.stack import stack

SILENT = {"ttft_ms": 300, "itl_ms": 0, "tokens": 3, "text": "one two three"}
ROUTES = {
    "single": {"strategy": "fallback", "deployments": ["a"]},
    "race": {"strategy": "race", "k": 2, "deployments": ["a", "b"]},
}


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("door", sorted(DOORS))
async def test_the_first_write_is_readied_in_the_silence(
    door: str, route: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    readied: list[bool] = []
    start = FirstWrite.start

    def spied(self: FirstWrite, deployment: str) -> Any:
        readied.append(self._response is not None and self._head is not None)
        return start(self, deployment)

    monkeypatch.setattr(FirstWrite, "start", spied)
    servers = {name: {"kind": "openai", "models": {name: SILENT}} for name in ("a", "b")}
    path, body = DOORS[door]
    async with stack(servers, routes=ROUTES) as s, aiohttp.ClientSession() as http:
        payload = {**body, "model": route, "stream": True}
        headers = {"anthropic-version": "2023-06-01"}
        async with http.post(f"{s.url}{path}", json=payload, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert resp.headers["x-gateway-deployment"] in ("a", "b")
            assert resp.headers["x-request-id"].startswith("req_")
            assert resp.headers["transfer-encoding"] == "chunked"
            text = door_text(door, await resp.read())
    assert readied == [True]
    assert text == "one two three"
