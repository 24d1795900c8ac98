"""Context-aware and capability-aware planning through the pipeline (fake upstreams, no
sockets): a candidate that cannot take the request is skipped before any attempt, counted
and logged; when none can, the client gets a 400 and the refusal is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from gateway.config import parse_config
from gateway.pipeline import Answer, Caller
from gateway.rejection import Rejected
from gateway.request import ChatRequest
from gateway.routing.fit import Needs, output_budget, unfit
from gateway.streaming.events import TextDelta
from gateway.streaming.plan import Winner
from tests.unit.test_pipeline import Harness, harness

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def config(a: dict[str, Any], b: dict[str, Any], **route: Any) -> dict[str, Any]:
    return {
        "providers": {"p": {"kind": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}},
        "deployments": {
            "a": {"provider": "p", "model": "small", **a},
            "b": {"provider": "p", "model": "large", **b},
        },
        "routes": {"chat": {"strategy": "fallback", "deployments": ["a", "b"], **route}},
        "latency": {"prewarm": {"enabled": False}},
    }


SMALL = {"context_window": 1000, "max_output_tokens": 100}
LARGE = {"context_window": 100_000, "max_output_tokens": 8000}


async def gateway(data: dict[str, Any]) -> AsyncIterator[Harness]:
    async for h in harness(data):
        yield h


async def open_chat(h: Harness, content: Any = "hi", **params: Any) -> Answer:
    chat = ChatRequest(
        model="chat", messages=[{"role": "user", "content": content}], stream=True, params=params
    )
    return await h.gateway.pipeline.open(chat, Caller("req_1", "key-1"), "chat")


def skipped(h: Harness) -> str:
    return "\n".join(
        line
        for line in h.gateway.metrics.render().decode().splitlines()
        if line.startswith("gateway_candidates_skipped_total")
    )


async def test_a_prompt_too_long_for_the_small_window_goes_to_the_next_without_an_attempt() -> None:
    async for h in gateway(config(SMALL, LARGE)):
        with capture_logs() as logs:
            answer = await open_chat(h, "x" * 4000)  # about 1004 prompt tokens
        h.fakes["b"].send(TextDelta("ok"))
        outcome = await answer.first()
        assert isinstance(outcome, Winner) and outcome.deployment == "b"
        await answer.aclose()
        assert h.fakes.opened == ["b"]  # "a" was never attempted
        assert skipped(h) == (
            'gateway_candidates_skipped_total{deployment="a",reason="context_window"} 1.0'
        )
        [log] = [e for e in logs if e["event"] == "candidate_skipped"]
        assert (log["deployment"], log["reason"], log["request_id"]) == (
            "a",
            "context_window",
            "req_1",
        )
        assert "1000-token context window" in log["detail"]


async def test_a_short_prompt_still_uses_the_small_window_first() -> None:
    async for h in gateway(config(SMALL, LARGE)):
        answer = await open_chat(h, "hi")
        h.fakes["a"].send(TextDelta("ok"))
        outcome = await answer.first()
        assert isinstance(outcome, Winner) and outcome.deployment == "a"
        await answer.aclose()
        assert skipped(h) == ""


async def test_when_no_window_fits_the_client_gets_context_length_exceeded() -> None:
    async for h in gateway(config(SMALL, {**SMALL, "context_window": 2000})):
        with pytest.raises(Rejected) as info:
            await open_chat(h, "x" * 12_000)
        exc = info.value
        assert (exc.status, exc.type, exc.code, exc.param) == (
            400,
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        )
        assert "a: about 3004 prompt + 100 output tokens exceed the 1000-token" in exc.message
        assert h.fakes.opened == []
        [rec] = h.records
        assert (rec.outcome, rec.status, rec.reason, rec.route) == (
            "rejected",
            400,
            "context_length_exceeded",
            "chat",
        )
        assert 'reason="context_window"} 1.0' in skipped(h)


async def test_requested_output_counts_and_may_exceed_the_models_output_limit() -> None:
    async for h in gateway(config(SMALL, LARGE)):
        with pytest.raises(Rejected) as info:
            await open_chat(h, "hi", max_tokens=9000)
        assert (info.value.code, info.value.param) == ("context_length_exceeded", "max_tokens")
    async for h in gateway(config(SMALL, LARGE)):
        answer = await open_chat(h, "x" * 2000, max_tokens=500)  # ~504 + 500 > 1000
        h.fakes["b"].send(TextDelta("ok"))
        assert isinstance(await answer.first(), Winner)
        await answer.aclose()
        assert h.fakes.opened == ["b"]


async def test_images_never_go_to_a_model_without_vision() -> None:
    a = {**LARGE, "capabilities": {"vision": False}}
    async for h in gateway(config(a, {**LARGE, "capabilities": {"vision": True}})):
        answer = await open_chat(h, [{"type": "text", "text": "what is it?"}, IMAGE])
        h.fakes["b"].send(TextDelta("a cat"))
        assert isinstance(await answer.first(), Winner)
        await answer.aclose()
        assert h.fakes.opened == ["b"]
        assert 'deployment="a",reason="vision"' in skipped(h)
    async for h in gateway(config(a, a)):
        with pytest.raises(Rejected) as info:
            await open_chat(h, [IMAGE])
        assert (info.value.status, info.value.code, info.value.param) == (
            400,
            "capability_not_supported",
            "messages",
        )
        assert h.fakes.opened == []


async def test_tools_only_go_to_models_with_tools_and_unknown_never_skips() -> None:
    no_tools = {"capabilities": {"tools": False}}
    async for h in gateway(config(no_tools, {})):  # "b" has no facts at all
        answer = await open_chat(h, "call f", tools=[TOOL])
        h.fakes["b"].send(TextDelta("ok"))
        assert isinstance(await answer.first(), Winner)
        await answer.aclose()
        assert h.fakes.opened == ["b"]
    async for h in gateway(config(no_tools, no_tools)):
        with pytest.raises(Rejected) as info:
            await open_chat(h, "call f", tools=[TOOL])
        assert (info.value.code, info.value.param) == ("capability_not_supported", "tools")


async def test_a_tier_that_cannot_fit_falls_through_to_the_routes_own_deployments() -> None:
    tiers = [{"name": "cheap", "when": {"max_prompt_tokens": 100_000}, "deployments": ["a"]}]
    async for h in gateway(config(SMALL, LARGE, tiers=tiers)):
        answer = await open_chat(h, "x" * 4000)
        h.fakes["b"].send(TextDelta("ok"))
        outcome = await answer.first()
        assert isinstance(outcome, Winner) and outcome.deployment == "b"
        await answer.aclose()
        assert h.fakes.opened == ["b"]


def test_output_budget_is_requested_else_default_capped_at_the_models_limit() -> None:
    c = parse_config(config({"max_output_tokens": 100}, {"max_tokens_default": 50}))
    a, b = c.deployments["a"], c.deployments["b"]
    needs = Needs(prompt_tokens=10, max_tokens=None)
    assert (output_budget(a, needs), output_budget(b, needs)) == (100, 50)
    assert output_budget(a, Needs(prompt_tokens=10, max_tokens=7)) == 7
    assert unfit(b, Needs(prompt_tokens=10**9, max_tokens=None)) is None  # unknown window
