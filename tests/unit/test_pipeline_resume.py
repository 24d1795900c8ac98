"""Resume through the pipeline: an Answer on a `resume: true` route reads through a Resumer,
records both attempts once, and counts the resume; without `resume` a cut is an error."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from gateway.config import parse_config
from gateway.pipeline import Answer, Caller
from gateway.request import ChatRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.ratelimit import RateLimiter
from gateway.runtime import Gateway
from gateway.streaming.events import Event, Finish, TextDelta, UpstreamError, Usage
from gateway.streaming.plan import Candidate, Opener, Winner
from gateway.streaming.resume import Continuer
from tests.unit.fake_attempts import FakeUpstreams
from tests.unit.test_pipeline import FakeBuilder, Recorder

CUT = UpstreamError(502, "upstream_connection_error", "upstream closed the stream", True)


class ResumingBuilder(FakeBuilder):
    """The fake upstreams, plus continuations that write `rest` after any prefix."""

    def __init__(self, fakes: FakeUpstreams, rest: str) -> None:
        super().__init__(fakes)
        self.rest = rest
        self.prefixes: list[str] = []

    def continuer(
        self,
        chat: ChatRequest,
        candidates: list[Candidate],
        limiter: RateLimiter,
        health: HealthRegistry,
    ) -> Continuer:
        def continuer(
            prefix: str, produced_tokens: int, exclude: frozenset[str]
        ) -> tuple[list[Candidate], Opener]:
            self.prefixes.append(prefix)

            async def stream(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
                yield [TextDelta(self.rest)]
                yield [Finish("stop"), Usage(prompt=20, completion=4)]

            return [c for c in candidates if c.name not in exclude], stream

        return continuer


async def run(resume: bool) -> tuple[list[Event], Any, Gateway]:
    data: dict[str, Any] = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "deployments": {"a": {"provider": "p", "model": "a"}, "b": {"provider": "p", "model": "b"}},
        "routes": {"chat": {"strategy": "fallback", "deployments": ["a", "b"], "resume": resume}},
        "latency": {"prewarm": {"enabled": False}},
    }
    gateway = Gateway(parse_config(data))
    fakes = FakeUpstreams("a", "b")
    builder = ResumingBuilder(fakes, " the rest.")
    gateway.pipeline.upstreams = builder
    recorder = Recorder()
    gateway.sinks.append(recorder)
    await gateway.start()
    try:
        chat = ChatRequest(model="chat", messages=[{"role": "user", "content": "go"}], stream=True)
        answer: Answer = await gateway.pipeline.open(chat, Caller("req_r"), "chat")
        fakes["a"].send(TextDelta("Here is"))
        fakes["a"].send(TextDelta(" "), CUT)
        events: list[Event] = []
        try:
            outcome = await answer.first()
            assert isinstance(outcome, Winner)
            events += outcome.events
            while type(events[-1]) is not UpstreamError:
                batch = await answer.next_batch()
                if batch is None:
                    break
                events += batch
        finally:
            await answer.aclose()
        assert builder.prefixes == (["Here is"] if resume else [])
        return events, recorder.records[0], gateway
    finally:
        await gateway.close()


async def test_a_cut_answer_on_a_resume_route_completes_and_is_recorded_once() -> None:
    events, rec, gateway = await run(resume=True)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Here is the rest."
    assert not any(isinstance(e, UpstreamError) for e in events)
    assert (rec.status, rec.outcome, rec.winner) == (200, "completed", "a")
    attempts = [(a.deployment, a.outcome, a.resumed_from) for a in rec.race.attempts]
    assert attempts == [("a", "won", None), ("b", "won", "a")]
    assert rec.race.attempts[0].error is not None  # the cut stays on the record
    assert rec.output_tokens == 2 + 4  # the cut attempt's deltas + the backup's usage
    metrics = gateway.metrics.render().decode()
    assert 'gateway_resumes_total{outcome="resumed",route="chat"} 1.0' in metrics
    health = gateway.state.health  # the cut winner counts as a failure though resumed
    assert health.breaker("a").failures == 1 and health.breaker("b").failures == 0


async def test_without_resume_the_cut_is_an_in_stream_error() -> None:
    events, rec, _ = await run(resume=False)
    assert events[-1] == CUT
    assert rec.outcome == "failed" and len(rec.race.attempts) == 1
