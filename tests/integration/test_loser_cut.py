"""A loser's upstream connection is dropped when the winner is decided, not when its
task's cancellation comes round: the cut does not wait behind the winner's work."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from gateway.answer import Answer
from gateway.doors.chat_parse import parse_chat_request
from gateway.pipeline import Caller
from gateway.streaming import race as race_module
from gateway.streaming.attempt import cut_now as attempt_cut_now
from gateway.streaming.plan import Winner
from tests.stack import Stack, stack

# The loser's response is open (headers and role chunk) long before the winner's token.
TRICKLE = {"ttft_ms": 3000, "itl_ms": 5, "tokens": 200, "prelude": True}
EARLY = {"ttft_ms": 500, "itl_ms": 1, "tokens": 5, "prelude": False, "text": "early bird wins"}
ANTHROPIC_EARLY = {"ttft_ms": 300, "itl_ms": 1, "tokens": 5, "prelude": True}
ROUTES = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}


async def open_race(s: Stack, request_id: str) -> Answer:
    """A race k=2 over `late` (server a) and `early` (server b), opened but not started."""
    raw = orjson.dumps(
        {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    chat = parse_chat_request(raw, s.gateway.config.limits)
    return await s.gateway.pipeline.open(chat, Caller(request_id), "chat")


async def test_loser_connection_is_gone_in_the_iteration_that_decides_the_winner() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"late": TRICKLE}},
        "b": {"kind": "openai", "models": {"early": EARLY}},
    }
    async with stack(servers, ROUTES) as s:
        answer = await open_race(s, "req_cut")
        late_pool = s.gateway.upstreams.pools["a"]
        try:
            outcome = await answer.first()
            # No await between the decision and these checks: the loser's task has not run.
            assert isinstance(outcome, Winner) and outcome.deployment == "early"
            assert late_pool.open_connections() == 0, "the loser's connection is still held"
            loser = next(a for a in answer._race.record.attempts if a.deployment == "late")
            assert loser.outcome == "cancelled"
        finally:
            await answer.aclose()
        late = await s.log.wait_for(
            lambda rs: any(r.model == "late" and r.outcome == "client_disconnect" for r in rs)
        )
        assert next(r for r in late if r.model == "late").tokens_sent == 0


async def test_a_loser_whose_server_holds_its_headers_is_cut_with_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that writes nothing until its first token (its headers come with it, as
    Ollama's while a model loads) gives a loser no response to cut: its connection is
    dropped all the same, at the cut, not when the loser's task gets round to it."""
    held = {**TRICKLE, "headers_at_first_token": True}
    servers = {
        "a": {"kind": "openai", "models": {"late": held}},
        "b": {"kind": "openai", "models": {"early": EARLY}},
    }
    async with stack(servers, ROUTES) as s:
        late_pool = s.gateway.upstreams.pools["a"]
        held_after_cut: list[int] = []

        def cut_now(callbacks: list[Any]) -> None:
            attempt_cut_now(callbacks)
            held_after_cut.append(late_pool.open_connections())

        monkeypatch.setattr(race_module, "cut_now", cut_now)
        answer = await open_race(s, "req_cut_held")
        try:
            outcome = await answer.first()
            assert isinstance(outcome, Winner) and outcome.deployment == "early"
            assert held_after_cut[0] == 0, "the loser's connection outlived its cut"
            loser = next(a for a in answer._race.record.attempts if a.deployment == "late")
            assert loser.outcome == "cancelled"
        finally:
            await answer.aclose()


def cuts_seen(monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Task[Any] | None]:
    """The task each cut of a connection ran in (None: a data callback, no task)."""
    cuts: list[asyncio.Task[Any] | None] = []

    def cut_now(callbacks: list[Any]) -> None:
        if callbacks:
            cuts.append(asyncio.current_task())
        attempt_cut_now(callbacks)

    monkeypatch.setattr(race_module, "cut_now", cut_now)
    return cuts


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        ("anthropic", ANTHROPIC_EARLY),
        ("gemini", {"ttft_ms": 300, "itl_ms": 1, "tokens": 5}),
        ("ollama", {"ttft_ms": 300, "itl_ms": 1, "tokens": 5}),
    ],
)
async def test_a_winners_token_cuts_the_loser_in_the_data_callback(
    kind: str, shape: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only OpenAI's streams are watched for their first token: Anthropic's through its
    `token_spec`; Gemini's and Ollama's, which have nothing before their first token, from
    their opening through a copy of their decoder (`ShadowWatch`). The loser is cut in the
    data callback of the winner's token, before any task runs."""
    cuts = cuts_seen(monkeypatch)
    servers = {
        "a": {"kind": "openai", "models": {"late": TRICKLE}},
        "b": {"kind": kind, "models": {"early": shape}},
    }
    async with stack(servers, ROUTES) as s:
        answer = await open_race(s, f"req_cut_{kind}")
        try:
            outcome = await answer.first()
            assert isinstance(outcome, Winner) and outcome.deployment == "early"
            assert s.gateway.upstreams.pools["a"].open_connections() == 0
            assert cuts and cuts[0] is None  # from the data callback, not a task step
        finally:
            await answer.aclose()
