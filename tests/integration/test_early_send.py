"""A lone attempt's request leaves as soon as it is built (`Race.start`, on an idle
keep-alive connection): the door's set-up after the pipeline (its encoder, the response
readied for the first token) runs while the upstream works, for every door. A race's
attempts, a new connection and a deployment with a rate limit keep the order they had:
the request is sent from the attempt, once connected or admitted. The answer on the wire
is the same."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.server.answering import FirstWrite
from gateway.streaming.http1.connection import Http1Connection
from tests.integration.test_coalesce import DOORS, door_text
from tests.stack import stack

TEXT = {"ttft_ms": 0, "itl_ms": 0, "tokens": 3, "text": "one two three"}
ROUTES = {
    "single": {"strategy": "fallback", "deployments": ["d"]},
    "limited": {"strategy": "fallback", "deployments": ["c"]},
    "race": {"strategy": "race", "k": 2, "deployments": ["a", "b"]},
}


def spy_order(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What happened, in order: `send` (a request written upstream) and `door` (the
    door's set-up after the pipeline opened the answer)."""
    order: list[str] = []
    send, init = Http1Connection.send, FirstWrite.__init__

    def sending(self: Http1Connection, *args: Any) -> Any:
        order.append("send")
        return send(self, *args)

    def door(self: FirstWrite, *args: Any) -> None:
        order.append("door")
        init(self, *args)

    monkeypatch.setattr(Http1Connection, "send", sending)
    monkeypatch.setattr(FirstWrite, "__init__", door)
    return order


@pytest.mark.parametrize("door", sorted(DOORS))
async def test_a_lone_attempt_is_sent_before_the_doors_set_up(
    door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = spy_order(monkeypatch)
    servers = {name: {"kind": "openai", "models": {name: TEXT}} for name in ("a", "b", "c", "d")}
    deployments = {"c": {"rpm": 10_000}}
    path, body = DOORS[door]
    headers = {"anthropic-version": "2023-06-01"}
    seen: dict[tuple[str, int], list[str]] = {}
    async with (
        stack(servers, routes=ROUTES, deployments=deployments) as s,
        aiohttp.ClientSession() as http,
    ):
        for route in ("single", "limited", "race"):
            for turn in range(2):  # the second finds the first one's connection idle
                order.clear()
                payload = {**body, "model": route, "stream": True}
                async with http.post(f"{s.url}{path}", json=payload, headers=headers) as resp:
                    assert resp.status == 200
                    assert door_text(door, await resp.read()) == "one two three"
                seen[route, turn] = list(order)
        pools = s.gateway.upstreams.pools
        reused = {name: pools[name].stats.reused for name in ("a", "b", "c", "d")}
    assert seen["single", 0] == ["door", "send"]  # a new connection: sent from the attempt
    assert seen["single", 1] == ["send", "door"]  # sent ahead, on the idle connection
    assert seen["limited", 0] == seen["limited", 1] == ["door", "send"]  # admitted first
    # a race's attempts are sent from their tasks, idle connection or not
    assert seen["race", 0] == seen["race", 1] == ["door", "send", "send"]
    assert reused["a"] + reused["b"] == 1 and reused["c"] == reused["d"] == 1  # kept and used
