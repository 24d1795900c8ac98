"""A loser's upstream connection is dropped when the winner is decided, not when its
task's cancellation comes round: the cut does not wait behind the winner's work."""

from __future__ import annotations

import orjson

from gateway.doors.chat_parse import parse_chat_request
from gateway.pipeline import Caller
from gateway.streaming.plan import Winner
from tests.stack import stack

# The loser's response is open (headers and role chunk) long before the winner's token.
TRICKLE = {"ttft_ms": 3000, "itl_ms": 5, "tokens": 200, "prelude": True}
EARLY = {"ttft_ms": 500, "itl_ms": 1, "tokens": 5, "prelude": False, "text": "early bird wins"}


async def test_loser_connection_is_gone_in_the_iteration_that_decides_the_winner() -> None:
    servers = {
        "a": {"kind": "openai", "models": {"late": TRICKLE}},
        "b": {"kind": "openai", "models": {"early": EARLY}},
    }
    routes = {"chat": {"strategy": "race", "k": 2, "deployments": ["late", "early"]}}
    async with stack(servers, routes) as s:
        gateway = s.gateway
        raw = orjson.dumps(
            {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        )
        chat = parse_chat_request(raw, gateway.config.limits)
        answer = await gateway.pipeline.open(chat, Caller("req_cut"), "chat")
        late_pool = gateway.upstreams.pools["a"]
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
