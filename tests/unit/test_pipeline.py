"""The request pipeline with no sockets: fake upstreams (scripted attempts) behind a real
Gateway's wiring, so each admission, governance and recording rule is tested once here,
not per front door."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.config.model import KeyConfig
from gateway.pipeline import Answer, Caller
from gateway.providers.base import UpstreamRequest
from gateway.record import RequestRecord
from gateway.rejection import Rejected
from gateway.request import ChatRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.planner import Plan
from gateway.routing.ratelimit import RateLimiter
from gateway.runtime import Gateway
from gateway.streaming.events import Finish, ResponseMeta, TextDelta, Usage
from gateway.streaming.plan import AllFailed, Candidate, Opener, Winner
from gateway.upstreams import Built
from tests.unit.fake_attempts import FakeUpstreams

EMAIL = "jane.doe@example.com"


class FakeBuilder:
    """Stands in for `Upstreams`: every planned candidate takes the request; attempts are
    the test's scripted fakes."""

    def __init__(self, fakes: FakeUpstreams, refuse: tuple[str, ...] = ()) -> None:
        self.fakes = fakes
        self.refuse = refuse
        self.built: list[ChatRequest] = []

    def build(self, chat: ChatRequest, plan: Plan) -> Built:
        self.built.append(chat)
        candidates = [
            Candidate(p.deployment.name, price_input=1.0, price_output=2.0)
            for p in plan.candidates
            if p.deployment.name not in self.refuse
        ]
        requests = {c.name: UpstreamRequest("POST", "http://fake", {}, b"") for c in candidates}
        return Built(candidates, requests, ["logit_bias"] if self.refuse else [])

    def opener(
        self,
        requests: dict[str, UpstreamRequest],
        token_estimate: int,
        limiter: RateLimiter,
        health: HealthRegistry,
    ) -> Opener:
        return self.fakes.opener


class Recorder:
    def __init__(self) -> None:
        self.records: list[RequestRecord] = []

    def record(self, rec: RequestRecord) -> None:
        self.records.append(rec)


class Broken:
    def record(self, rec: RequestRecord) -> None:
        raise RuntimeError("sink down")


def config(**extra: Any) -> dict[str, Any]:
    return {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "deployments": {
            "a": {"provider": "p", "model": "a", "region": "eu"},
            "b": {"provider": "p", "model": "b", "region": "us"},
        },
        "routes": {"chat": {"strategy": "fallback", "deployments": ["a", "b"]}},
        "latency": {"prewarm": {"enabled": False}},
        **extra,
    }


class Harness:
    def __init__(self, gateway: Gateway, fakes: FakeUpstreams, recorder: Recorder) -> None:
        self.gateway = gateway
        self.fakes = fakes
        self.recorder = recorder

    @property
    def records(self) -> list[RequestRecord]:
        return self.recorder.records

    async def open(
        self,
        text: str = "hi",
        model: str = "chat",
        key: str = "key-1",
        scope: KeyConfig | None = None,
        **headers: str,
    ) -> Answer:
        chat = ChatRequest(model=model, messages=[{"role": "user", "content": text}], stream=True)
        caller = Caller("req_1", key, headers, key=scope)
        return await self.gateway.pipeline.open(chat, caller, "chat")


async def harness(data: dict[str, Any], refuse: tuple[str, ...] = ()) -> AsyncIterator[Harness]:
    gateway = Gateway(parse_config(data))
    fakes = FakeUpstreams("a", "b")
    gateway.pipeline.upstreams = FakeBuilder(fakes, refuse)
    recorder = Recorder()
    gateway.sinks.insert(0, Broken())  # a failing sink must not cost the others the record
    gateway.sinks.append(recorder)
    await gateway.start()
    try:
        yield Harness(gateway, fakes, recorder)
    finally:
        await gateway.close()


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async for x in harness(config()):
        yield x


async def test_an_answer_streams_and_records_once(h: Harness) -> None:
    answer = await h.open(**{"x-gateway-region": "us"})
    h.fakes["a"].send(ResponseMeta(model="a-2026"), TextDelta("Hel"))
    outcome = await answer.first()
    assert isinstance(outcome, Winner) and outcome.deployment == "a"
    h.fakes["a"].send(TextDelta("lo"), Finish("stop"), Usage(prompt=3, completion=2))
    h.fakes["a"].end()
    batches = []
    while (batch := await answer.next_batch()) is not None:
        batches.append(batch)
    assert next(e for b in batches for e in b) == TextDelta("lo")
    assert h.records == []  # nothing recorded before the close
    rec = await answer.aclose()
    assert await answer.aclose() is rec  # closing twice records once
    assert h.records == [rec]
    assert (rec.door, rec.route, rec.region, rec.winner) == ("chat", "chat", "us", "a")
    assert (rec.status, rec.outcome, rec.model_version) == (200, "completed", "a-2026")
    assert rec.key_id == "key-1" and rec.output_tokens == 2
    assert rec.cost_usd == pytest.approx((3 * 1.0 + 2 * 2.0) / 1e6)
    assert h.gateway.spend_by_deployment["a"] == pytest.approx(rec.cost_usd)
    assert h.gateway.versions["a"] == "a-2026"
    assert h.fakes.unclosed() == []


async def test_a_failure_before_the_token_moves_on_and_all_failed_is_recorded(
    h: Harness,
) -> None:
    answer = await h.open()
    h.fakes["a"].fail(503)
    h.fakes["b"].fail(500)
    outcome = await answer.first()
    assert isinstance(outcome, AllFailed) and h.fakes.opened == ["a", "b"]
    rec = await answer.aclose()
    assert (rec.status, rec.outcome, rec.winner) == (outcome.error.status, "no_winner", None)
    assert rec.reason == "all_attempts_failed" and len(rec.race.attempts) == 2  # type: ignore[union-attr]
    assert h.records == [rec]


async def test_client_gone_is_recorded_as_cancelled_and_attempts_are_closed(h: Harness) -> None:
    answer = await h.open()
    h.fakes["a"].send(TextDelta("x"))
    await answer.first()
    rec = await answer.aclose(client_gone=True)
    assert rec.outcome == "client_cancelled"
    assert h.fakes.unclosed() == []


async def test_unknown_model_is_refused_and_recorded(h: Harness) -> None:
    with pytest.raises(Rejected) as info:
        await h.open(model="nope")
    assert (info.value.status, info.value.code) == (404, "model_not_found")
    [rec] = h.records
    assert (rec.outcome, rec.status, rec.reason, rec.route) == (
        "rejected",
        404,
        "model_not_found",
        None,
    )
    assert h.fakes.opened == []
    metrics = h.gateway.metrics.render().decode()
    assert 'gateway_rejected_requests_total{door="chat",reason="model_not_found"} 1.0' in metrics


async def test_refusals_before_the_pipeline_are_recorded(h: Harness) -> None:
    h.gateway.pipeline.refuse(Caller("req_9"), "messages", None, Rejected(400, "bad json"))
    [rec] = h.records
    assert (rec.door, rec.outcome, rec.status, rec.reason) == (
        "messages",
        "rejected",
        400,
        "invalid_request_error",
    )


async def test_key_rate_limit_refuses_with_headers_before_any_attempt() -> None:
    async for h in harness(config(routing={"key_rpm": 1})):
        answer = await h.open(key="anonymous")
        await answer.aclose()
        with pytest.raises(Rejected) as info:
            await h.open(key="anonymous")
        assert info.value.status == 429 and info.value.code == "rate_limit_exceeded"
        assert "retry-after" in {k.lower() for k in info.value.headers}
        assert [r.outcome for r in h.records] == ["no_winner", "rejected"]
        assert h.records[1].route == "chat"


async def test_spent_key_budget_refuses() -> None:
    async for h in harness(config(routing={"key_daily_budget_usd": 0.000001})):
        answer = await h.open()
        h.fakes["a"].send(TextDelta("x"), Usage(prompt=1000, completion=1000))
        h.fakes["a"].end()
        await answer.first()
        while await answer.next_batch() is not None:
            pass
        await answer.aclose()
        with pytest.raises(Rejected) as info:
            await h.open()
        assert (info.value.status, info.value.code) == (429, "budget_exceeded")


async def test_a_key_out_of_scope_is_refused_before_its_limit_and_recorded() -> None:
    scoped = KeyConfig("team-a", b"", routes=("other",), rpm=1)
    routes = {"chat": {"deployments": ["a"]}, "other": {"deployments": ["b"]}}
    async for h in harness(config(routes=routes)):
        for _ in range(3):  # refused by scope each time: the rate limit is never reached
            with pytest.raises(Rejected) as info:
                await h.open(key="team-a", scope=scoped)
            assert (info.value.status, info.value.code) == (403, "route_not_allowed")
            assert info.value.type == "permission_error"
        answer = await h.open(model="other", key="team-a", scope=scoped)
        await answer.aclose()
        with pytest.raises(Rejected) as info:
            await h.open(model="other", key="team-a", scope=scoped)
        assert info.value.code == "rate_limit_exceeded"  # the key's own rpm: 1
        assert [(r.key_id, r.outcome, r.reason) for r in h.records[:3]] == [
            ("team-a", "rejected", "route_not_allowed")
        ] * 3
        assert "a" not in h.fakes.opened


async def test_a_deployment_named_directly_needs_permission() -> None:
    direct = KeyConfig("ops", b"", allow_direct_deployments=True)
    async for h in harness(config()):
        with pytest.raises(Rejected) as info:
            await h.open(model="a")
        assert (info.value.status, info.value.code) == (403, "direct_deployment_not_allowed")
        assert h.records[-1].reason == "direct_deployment_not_allowed"
        answer = await h.open(model="a", key="ops", scope=direct)
        await answer.aclose()
        assert h.records[-1].route == "a" and h.records[-1].outcome != "rejected"


async def test_governance_blocks_before_routing_and_says_why() -> None:
    async for h in harness(config(governance={"pii": {"email": "block"}})):
        with pytest.raises(Rejected) as info:
            await h.open(f"mail {EMAIL}")
        assert (info.value.status, info.value.code) == (400, "pii_detected")
        assert EMAIL not in info.value.message
        assert h.records[0].reason == "pii_detected" and h.fakes.opened == []


async def test_redaction_reaches_the_upstream_and_is_restored_for_the_client() -> None:
    async for h in harness(config(governance={"pii": {"email": "redact"}})):
        answer = await h.open(f"mail {EMAIL}")
        sent = h.gateway.pipeline.upstreams.built[0]  # type: ignore[attr-defined]
        assert EMAIL not in str(sent.messages) and "<EMAIL_1>" in str(sent.messages)
        h.fakes["a"].send(TextDelta("to <EMA"))
        outcome = await answer.first()
        h.fakes["a"].send(TextDelta("IL_1> ok"))
        h.fakes["a"].end()
        assert isinstance(outcome, Winner)
        text = "".join(e.text for e in outcome.events if isinstance(e, TextDelta))
        while (batch := await answer.next_batch()) is not None:  # the flush comes last
            text += "".join(e.text for e in batch if isinstance(e, TextDelta))
        assert text == f"to {EMAIL} ok"
        await answer.aclose()


async def test_residency_that_leaves_no_candidate_is_a_400() -> None:
    data = config()
    data["routes"]["chat"]["data_residency"] = ["apac"]
    async for h in harness(data):
        with pytest.raises(Rejected) as info:
            await h.open()
        assert info.value.code == "no_compliant_deployment"
        assert h.records[0].outcome == "rejected"


async def test_a_parameter_no_candidate_accepts_is_a_400_naming_it() -> None:
    async for h in harness(config(), refuse=("a", "b")):
        with pytest.raises(Rejected) as info:
            await h.open()
        assert (info.value.code, info.value.param) == ("unsupported_parameter", "logit_bias")
