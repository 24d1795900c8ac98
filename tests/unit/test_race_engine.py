"""The race engine (gateway/streaming/race.py) driven by scripted fake attempts.

Every fake attempt is an async generator the test advances through an
asyncio.Queue (see fake_attempts.py): no sockets, no wall-clock sleeps. Timer
rules (hedge delay, ttft/idle timeouts, heartbeat) use tiny delays and assert on
order and state only, or huge delays to prove that something does not start.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest
from aiohttp import StreamReader
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.providers.openai_stream import OpenAIStreamDecoder
from gateway.providers.quirks import BUILTIN_QUIRKS
from gateway.streaming import attempt as attempt_module
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.streaming.attempt import DirectReader, finished, offer_source, on_cut
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
    is_token,
)
from gateway.streaming.plan import HEARTBEAT, AllFailed, Candidate, RacePlan, Winner
from gateway.streaming.policy import LoadBudget, choose_error
from gateway.streaming.race import Race
from tests.readers import reader
from tests.unit.fake_attempts import (
    CUT,
    FakeClock,
    FakeUpstreams,
    LogEntry,
    RecordingObserver,
    settle,
    wait_set,
)

HUGE = 1000.0  # seconds: a timer that never fires during a test
# An OpenAI stream's role chunk and first token, for the race's token watch.
ROLE_CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
)
TOKEN_CHUNK = ROLE_CHUNK.replace(b'"role":"assistant","content":""', b'"content":"Hel"')


def make_race(
    ups: FakeUpstreams,
    strategy: str = "race",
    k: int = 2,
    candidates: list[Candidate] | None = None,
    *,
    heartbeat_after_s: float | None = None,
    prompt_estimate: int = 0,
    budget: LoadBudget | None = None,
    observer: RecordingObserver | None = None,
    rng: random.Random | None = None,
) -> Race:
    if candidates is None:
        candidates = [Candidate(name, hedge_delay_s=HUGE) for name in ups.attempts]
    plan = RacePlan(
        request_id="req_test",
        route="chat",
        strategy=strategy,
        candidates=candidates,
        k=k,
        heartbeat_after_s=heartbeat_after_s,
        prompt_estimate=prompt_estimate,
    )
    return Race(plan, ups.opener, budget=budget, observer=observer, rng=rng)


def watched_opener(
    ups: FakeUpstreams, name: str
) -> tuple[StreamReader, Callable[[Candidate], AsyncGenerator[list[Event], None]]]:
    """An opener over `ups` whose attempt `name` offers the race's token watch a body: an
    OpenAI stream past its role chunk. Feeding TOKEN_CHUNK to that body is a token the
    watch sees, in the caller's step, before the attempt's task yields it."""
    body, decoder = reader(), OpenAIStreamDecoder(BUILTIN_QUIRKS["openai"])
    assert decoder.feed(ROLE_CHUNK) and decoder.token_spec() is not None

    def opener(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
        inner = ups.opener(candidate)

        async def stream() -> AsyncGenerator[list[Event], None]:
            if candidate.name == name:
                offer_source(body, decoder)
            async for batch in inner:
                yield batch

        return stream()

    return body, opener


def attempt(race: Race, name: str) -> AttemptRecord:
    matches = [a for a in race.record.attempts if a.deployment == name]
    assert len(matches) == 1, f"{name} started {len(matches)} times"
    return matches[0]


def error_of(record: AttemptRecord) -> UpstreamError:
    assert record.error is not None
    return record.error


def only_test_task_left() -> bool:
    return asyncio.all_tasks() == {asyncio.current_task()}


async def drain(race: Race) -> list[list[Event]]:
    batches = []
    while (batch := await race.next_batch()) is not None:
        batches.append(batch)
    return batches


async def finish(race: Race, first: asyncio.Task[object] | None = None) -> RaceRecord:
    """Clean up like the handler does on the way out (client gone when first() still waits)."""
    gone = False
    if first is not None and not first.done():
        first.cancel()
        gone = True
        with contextlib.suppress(asyncio.CancelledError):
            await first
    return await race.aclose(client_gone=gone)


# -- race: first token wins --------------------------------------------------------------


async def test_race_starts_k_at_once_and_first_token_wins_over_earlier_non_tokens() -> None:
    ups = FakeUpstreams("a", "b")
    observer = RecordingObserver()
    race = make_race(ups, observer=observer)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a", "b"]  # both at once, before any event
    assert [a.speculative for a in race.record.attempts] == [False, True]

    # a is first to say anything, but only non-tokens: role header, meta, usage
    ups["a"].send(TextDelta(""), ResponseMeta(model="a-2024"))
    ups["a"].send(Usage(prompt=100))
    await settle()
    assert not first.done()
    ups["b"].send(ResponseMeta(model="b-1"), TextDelta(""))
    await settle()
    assert not first.done()
    ups["b"].send(TextDelta("Hel"))
    outcome = await first
    await asyncio.sleep(0)  # one loop round: the loser is closed at once

    assert isinstance(outcome, Winner)
    assert outcome.deployment == "b"
    assert outcome.events == [ResponseMeta(model="b-1"), TextDelta(""), TextDelta("Hel")]
    assert ups["a"].finished
    assert ups["a"].saw_cancel or ups["a"].saw_generator_exit
    loser = attempt(race, "a")
    assert loser.outcome == "cancelled"
    assert loser.censored_ttft_s is not None
    assert loser.ttft_s is None
    won = attempt(race, "b")
    assert won.outcome == "won"
    assert won.ttft_s is not None
    assert race.record.winner == "b"
    assert race.record.ttft_s is not None

    ups["b"].send(TextDelta("lo"))
    ups["b"].send(Finish("stop"), Usage(prompt=7, completion=2))
    ups["b"].end()
    assert await drain(race) == [[TextDelta("lo")], [Finish("stop"), Usage(prompt=7, completion=2)]]
    assert await race.next_batch() is None  # stays ended
    record = await race.aclose()
    assert record.stream_outcome == "completed"
    assert observer.records == [record]
    assert ups.unclosed() == []
    assert only_test_task_left()


async def test_losers_are_cut_when_the_winners_token_arrives_before_it_is_declared() -> None:
    """A loser's connection is dropped in the winner's own task step, through the cut the
    transport registered: not after the request's task has declared the winner."""
    ups = FakeUpstreams("a", "b")
    cuts: list[tuple[str, str | None]] = []

    def opener(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
        inner = ups.opener(candidate)

        async def stream() -> AsyncGenerator[list[Event], None]:
            on_cut(lambda: cuts.append((candidate.name, race.record.winner)))
            async for batch in inner:
                yield batch

        return stream()

    plan = RacePlan(
        request_id="req_test",
        route="chat",
        strategy="race",
        candidates=[Candidate(name, hedge_delay_s=HUGE) for name in ("a", "b")],
        k=2,
    )
    race = Race(plan, opener)
    first = asyncio.create_task(race.first())
    ups["a"].send(TextDelta(""))
    await settle()
    ups["b"].send(TextDelta("Hel"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    assert cuts == [("a", None)], "cut once, before the winner was declared"
    await race.aclose()
    assert ups.unclosed() == []


async def test_a_loser_cut_by_the_token_watch_is_cancelled_not_failed() -> None:
    """The winner's token, seen by the token watch in the data callback, cuts the loser
    before the winner's task has queued its batch. The end the cut causes (an aborted
    body reads as truncated) may reach the race first: it is the loser's cancellation,
    not its failure (a failure would count against its deployment's health)."""
    ups = FakeUpstreams("a", "b", cut_ends_stream=True)
    body, opener = watched_opener(ups, "b")
    race = make_race(ups, candidates=[Candidate(n, hedge_delay_s=HUGE) for n in ("a", "b")])
    race._opener = opener
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta(""))
    ups["b"].send(TextDelta(""))
    await settle()  # b's body is watched from here
    body.feed_data(TOKEN_CHUNK)
    # b's TTFT is when its token reached the gateway, not when b's task gets round to it
    assert race._attempts[1].record.ttft_s is not None
    await settle()  # a's end reaches the race before b's batch
    ups["b"].send(TextDelta("Hel"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    loser = attempt(race, "a")
    assert (loser.outcome, loser.error) == ("cancelled", None)
    assert loser.censored_ttft_s is not None
    record = await finish(race)
    assert record.winner == "b"
    assert ups.unclosed() == []


async def test_losers_late_items_never_leak_into_the_stream() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    first = asyncio.create_task(race.first())
    await settle()
    # both have a token in the engine's queue; a's is first
    ups["a"].send(TextDelta("a1"))
    ups["b"].send(TextDelta("b1"))
    ups["b"].send(TextDelta("b2"))
    outcome = await first
    assert isinstance(outcome, Winner)
    assert outcome.deployment == "a"
    assert outcome.events == [TextDelta("a1")]
    ups["a"].send(TextDelta("a2"))
    ups["a"].send(TextDelta("a3"), Finish("stop"))
    ups["a"].end()
    batches = await drain(race)
    assert batches == [[TextDelta("a2")], [TextDelta("a3"), Finish("stop")]]
    record = await race.aclose()
    assert record.stream_outcome == "completed"
    assert attempt(race, "b").outcome == "cancelled"
    assert ups.unclosed() == []
    assert only_test_task_left()


async def test_tool_call_and_reasoning_are_tokens_but_empty_deltas_are_not() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(ReasoningDelta(""), ToolCallDelta(0))
    await settle()
    assert not first.done()
    ups["b"].send(ToolCallDelta(0, id="call_1", name="lookup"))
    outcome = await first
    assert isinstance(outcome, Winner)
    assert outcome.deployment == "b"
    await finish(race)


# -- failures before the first token -------------------------------------------------------


async def test_failure_before_first_token_is_invisible() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a"]
    error = ups["a"].fail(500)
    await settle()
    assert ups.opened == ["a", "b"]
    assert ups["a"].finished
    ups["b"].send(TextDelta("hi"))
    outcome = await first
    assert isinstance(outcome, Winner)
    assert outcome.deployment == "b"
    assert outcome.events == [TextDelta("hi")]  # nothing of a's failure
    failed = attempt(race, "a")
    assert failed.outcome == "failed"
    assert failed.error == error
    assert attempt(race, "b").speculative is False
    ups["b"].end()
    assert await drain(race) == []
    record = await race.aclose()
    assert record.stream_outcome == "completed"
    assert record.status == 200
    assert only_test_task_left()


async def test_items_from_a_failed_attempt_are_ignored() -> None:
    ups = FakeUpstreams("a", "b", "c")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    # a misbehaving upstream keeps talking after its error, all in one go
    ups["a"].fail(500)
    ups["a"].send(TextDelta("zombie"))
    ups["a"].end()
    await settle()
    assert ups.opened == ["a", "b"]  # one failure starts one next attempt
    ups["b"].send(TextDelta("b"))
    outcome = await first
    assert isinstance(outcome, Winner)
    assert outcome.deployment == "b"
    assert outcome.events == [TextDelta("b")]
    assert len(race.record.attempts) == 2
    assert error_of(attempt(race, "a")).status == 500
    await finish(race)


async def test_clean_end_without_output_is_a_failure() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(ResponseMeta(model="a"), TextDelta(""))
    ups["a"].end()
    await settle()
    assert ups.opened == ["a", "b"]
    assert error_of(attempt(race, "a")).status == 502
    ups["b"].send(TextDelta("ok"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    await finish(race)


@pytest.mark.parametrize(
    ("errors", "status", "type_", "retry_after"),
    [
        ([(500, None), (400, None)], 400, "invalid_request_error", None),
        ([(400, None), (503, None)], 400, "invalid_request_error", None),
        ([(429, 30.0), (429, 2.0), (429, None)], 429, "rate_limit_error", 2.0),
        ([(401, None), (500, None)], 502, "upstream_auth_error", None),
        ([(503, None), (503, None)], 503, "server_error", None),
    ],
)
async def test_all_failed_uses_choose_error(
    errors: list[tuple[int, float | None]], status: int, type_: str, retry_after: float | None
) -> None:
    names = [f"u{i}" for i in range(len(errors))]
    ups = FakeUpstreams(*names)
    observer = RecordingObserver()
    race = make_race(ups, "race", k=2, observer=observer)
    first = asyncio.create_task(race.first())
    sent = []
    for name, (code, wait) in zip(names, errors, strict=True):
        await settle()
        err_type = {400: "invalid_request_error", 429: "rate_limit_error"}.get(code, "server_error")
        sent.append(ups[name].fail(code, err_type, retry_after_s=wait))
    outcome = await first
    assert isinstance(outcome, AllFailed)
    assert outcome.error.status == status
    assert outcome.error.type == type_
    assert outcome.error.retry_after_s == retry_after
    assert outcome.error == choose_error(sent)
    assert [name for name, _ in outcome.errors] == names
    assert ups.opened == names
    record = await race.aclose()
    assert record.status == status
    assert record.stream_outcome == "no_winner"
    assert all(a.outcome == "failed" for a in record.attempts)
    assert observer.records == [record]
    assert ups.unclosed() == []
    assert only_test_task_left()


async def test_no_candidates_is_all_failed() -> None:
    ups = FakeUpstreams()
    race = make_race(ups, candidates=[])
    outcome = await race.first()
    assert isinstance(outcome, AllFailed)
    assert outcome.error.status == 502
    assert (await race.aclose()).stream_outcome == "no_winner"


# -- timeouts ---------------------------------------------------------------------------------


async def test_ttft_timeout_fails_a_silent_attempt_and_starts_the_next() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(
        ups,
        "fallback",
        k=1,
        candidates=[Candidate("a", ttft_timeout_s=0.01), Candidate("b", ttft_timeout_s=HUGE)],
    )
    first = asyncio.create_task(race.first())
    ups["a"].send(ResponseMeta(model="a"))  # non-tokens do not stop the clock
    await wait_set(ups["b"].opened)
    assert ups["a"].finished and ups["a"].saw_cancel
    slow = attempt(race, "a")
    assert slow.outcome == "timed_out"
    assert error_of(slow).status == 504
    assert error_of(slow).type == "upstream_timeout"
    assert slow.ttft_s is None
    ups["b"].send(TextDelta("late but fine"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    await finish(race)
    assert only_test_task_left()


async def test_all_timed_out_is_504() -> None:
    ups = FakeUpstreams("a", "b")
    cands = [Candidate("a", ttft_timeout_s=0.01), Candidate("b", ttft_timeout_s=0.01)]
    race = make_race(ups, "race", k=2, candidates=cands)
    outcome = await race.first()
    assert isinstance(outcome, AllFailed)
    assert outcome.error.status == 504
    assert [a.outcome for a in race.record.attempts] == ["timed_out", "timed_out"]
    await race.aclose()
    assert ups.unclosed() == []


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["race", "hedge", "fallback"]),
    st.lists(st.sampled_from([None, 400, 429, 500, 502, 503]), min_size=1, max_size=4),
)
async def test_without_heartbeat_a_pre_token_failure_always_keeps_its_status(
    strategy: str, failures: list[int | None]
) -> None:
    """No heartbeat (the default): whatever fails how, first() answers only with the outcome,
    so the client's status is the chosen error's (None: a first-token timeout -> 504)."""
    names = [f"d{i}" for i in range(len(failures))]
    ups = FakeUpstreams(*names)
    cands = [
        Candidate(n, ttft_timeout_s=0.001 if f is None else HUGE, hedge_delay_s=0.001)
        for n, f in zip(names, failures, strict=True)
    ]
    race = make_race(ups, strategy, k=2, candidates=cands)
    for name, status in zip(names, failures, strict=True):
        if status is not None:
            ups[name].fail(status)
    outcome = await race.first()
    assert isinstance(outcome, AllFailed)
    assert sorted(name for name, _ in outcome.errors) == names  # every candidate was tried
    assert outcome.error == choose_error([e for _, e in outcome.errors])
    assert 400 <= outcome.error.status <= 599
    if all(f is None for f in failures):
        assert outcome.error.status == 504
    await race.aclose()
    assert ups.unclosed() == []


async def test_idle_timeout_after_winner_ends_stream_with_504() -> None:
    ups = FakeUpstreams("a")
    race = make_race(
        ups, "fallback", k=1, candidates=[Candidate("a", ttft_timeout_s=HUGE, idle_timeout_s=0.01)]
    )
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("x"))
    outcome = await first
    assert isinstance(outcome, Winner)
    batch = await race.next_batch()  # a says nothing more
    assert batch is not None and len(batch) == 1
    error = batch[0]
    assert isinstance(error, UpstreamError)
    assert error.status == 504 and error.type == "upstream_timeout"
    assert await race.next_batch() is None
    assert ups["a"].finished and ups["a"].saw_cancel
    record = await race.aclose()
    assert record.stream_outcome == "failed"
    assert record.attempts[0].outcome == "won"
    assert record.attempts[0].error == error


# -- after the winner ------------------------------------------------------------------------


async def test_mid_stream_error_truncates_the_batch_and_ends_the_stream() -> None:
    ups = FakeUpstreams("a", "b")
    observer = RecordingObserver()
    race = make_race(ups, observer=observer)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("one"))
    outcome = await first
    assert isinstance(outcome, Winner)
    error = UpstreamError(502, "upstream_connection_error", "reset", True)
    ups["a"].send(TextDelta("two"), error, TextDelta("never"))
    ups["a"].send(TextDelta("never either"))
    assert await race.next_batch() == [TextDelta("two"), error]
    assert await race.next_batch() is None
    await asyncio.sleep(0)
    assert ups["a"].finished  # the winner's upstream is dropped at once
    record = await race.aclose()
    assert record.stream_outcome == "failed"
    assert record.attempts[0].error == error
    assert record.attempts[0].outcome == "won"
    assert observer.records == [record]
    assert only_test_task_left()


async def test_the_winners_stream_is_handed_over_to_the_reading_task() -> None:
    """After the first token no attempt task is left: the caller reads the stream itself,
    so a chunk costs one task step instead of a queue hop between two tasks."""
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("one"))
    assert isinstance(await first, Winner)
    await settle()
    assert only_test_task_left()  # the winner's pump returned, the loser was cancelled
    ups["a"].send(TextDelta("two"))
    ups["a"].end()
    assert await drain(race) == [[TextDelta("two")]]
    record = await race.aclose()
    assert record.stream_outcome == "completed"
    assert record.attempts[0].tokens == 2
    assert ups.unclosed() == []


def opening_sends(ups: FakeUpstreams) -> tuple[list[str], Callable[[Candidate], Any]]:
    """An opener over `ups` that, as the upstream opener does on an idle keep-alive
    connection, sends when called: its connection's cut is registered then, before the
    stream is iterated. Returns the names whose connections were cut, and the opener."""
    cut: list[str] = []

    def opener(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
        on_cut(lambda: cut.append(candidate.name))
        return ups.opener(candidate)

    return cut, opener


async def test_start_sends_a_lone_attempt_before_first_and_reads_it_once() -> None:
    """`start()` opens the lone attempt at once (its request goes out while the caller
    sets up the rest); `first()` then reads that stream, not a second one."""
    ups = FakeUpstreams("a", "b")
    cut, opener = opening_sends(ups)
    race = Race(make_race(ups, "fallback", k=1).plan, opener)
    race.start()
    assert ups.opened == ["a"] and not ups["a"].started  # opened, not read yet
    race.start()  # once only
    assert ups.opened == ["a"]
    ups["a"].send(TextDelta("one"))
    ups["a"].end()
    winner = await race.first()
    assert isinstance(winner, Winner) and winner.deployment == "a"
    assert await drain(race) == []
    record = await race.aclose()
    assert ups.opened == ["a"] and cut == []
    assert record.stream_outcome == "completed" and ups.unclosed() == []


async def test_a_lone_attempt_sent_by_start_is_cut_when_the_client_leaves_first() -> None:
    """The client leaves before `first()`: the stream was never read, so only the cut
    its connection registered at the send can drop it, and `aclose()` calls it."""
    ups = FakeUpstreams("a", "b")
    cut, opener = opening_sends(ups)
    race = Race(make_race(ups, "fallback", k=1).plan, opener)
    race.start()
    record = await race.aclose(client_gone=True)
    assert cut == ["a"]
    assert [a.outcome for a in record.attempts] == ["cancelled"]
    assert ups.opened == ["a"] and ups.unclosed() == []


async def test_start_leaves_a_races_attempts_to_their_tasks() -> None:
    """Sent together, a race's requests would tie at equal TTFTs (see `Race.start`)."""
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "race", k=2)
    race.start()
    assert ups.opened == [] and race.record.attempts == []
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a", "b"]
    await finish(race, first)
    assert ups.unclosed() == []


async def test_winner_idle_after_its_first_token_is_a_stall_error() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, k=1, candidates=[Candidate("a", idle_timeout_s=0.02)])
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("one"))
    assert isinstance(await first, Winner)
    ups["a"].hang()
    batch = await race.next_batch()
    assert batch is not None and type(batch[-1]) is UpstreamError
    assert batch[-1].status == 504 and "stalled" in batch[-1].message
    assert await race.next_batch() is None
    assert ups["a"].finished  # the stalled upstream is dropped
    record = await race.aclose()
    assert record.stream_outcome == "failed"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    assert only_test_task_left()


async def test_winner_reading_cancelled_by_the_client_closes_the_upstream() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, k=1, candidates=[Candidate("a")])
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("one"))
    assert isinstance(await first, Winner)
    reading = asyncio.create_task(race.next_batch())
    await settle()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    record = await race.aclose(client_gone=True)
    assert record.stream_outcome == "client_cancelled"
    assert ups.unclosed() == []
    assert only_test_task_left()


async def test_finish_without_tokens_is_a_winner_with_the_stream_done() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(ResponseMeta(model="a"), TextDelta(""))
    ups["a"].send(Finish("content_filter"), Usage(prompt=9))
    ups["a"].end()
    outcome = await first
    assert isinstance(outcome, Winner)
    assert outcome.deployment == "a"
    assert outcome.events == [
        ResponseMeta(model="a"),
        TextDelta(""),
        Finish("content_filter"),
        Usage(prompt=9),
    ]
    assert await race.next_batch() is None
    await asyncio.sleep(0)
    assert ups["b"].finished
    record = await race.aclose()
    assert record.stream_outcome == "completed"
    assert record.winner == "a"
    assert attempt(race, "b").outcome == "cancelled"
    assert only_test_task_left()


# -- hedge ---------------------------------------------------------------------------------


async def test_hedge_starts_the_next_only_after_the_delay() -> None:
    ups = FakeUpstreams("a", "b", "c")
    cands = [Candidate(n, hedge_delay_s=0.05) for n in "abc"]
    race = make_race(ups, "hedge", k=2, candidates=cands)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a"]  # not yet: the delay has not passed
    await wait_set(ups["b"].opened)
    assert ups.opened == ["a", "b"]
    assert [a.speculative for a in race.record.attempts] == [False, True]
    ups["a"].send(TextDelta("a wins anyway"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "a"
    await finish(race)
    assert ups.opened == ["a", "b"]
    assert ups.unclosed() == []


async def test_no_hedge_starts_once_the_first_token_is_claimed() -> None:
    """The token watch claims a's first token in the data callback; the hedge delay runs
    out before a's task has queued the batch. No backup starts for an answer that has its
    first token (it would be cut at once, its prompt billed for nothing)."""
    ups = FakeUpstreams("a", "b")
    body, opener = watched_opener(ups, "a")

    delay = 0.01
    race = make_race(ups, "hedge", candidates=[Candidate(n, hedge_delay_s=delay) for n in "ab"])
    race._opener = opener
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta(""))
    await settle()  # a's body is watched from here
    body.feed_data(TOKEN_CHUNK)  # claimed
    await asyncio.sleep(delay * 2)  # a later timer: the hedge's has fired before it
    await settle()
    ups["a"].send(TextDelta("Hel"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "a"
    assert ups.opened == ["a"]
    await finish(race)
    assert ups.unclosed() == []


async def test_a_claimed_first_token_is_not_lost_to_the_ttft_timeout() -> None:
    """The watch claims b's token (the others are cut); b's task gets round to it only
    after b's TTFT deadline (the loop's lag, under load). The token is in hand: the
    deadline no longer applies, and b wins instead of timing out with nothing left."""
    ups = FakeUpstreams("a", "b")
    body, opener = watched_opener(ups, "b")

    deadline = 0.01
    candidates = [Candidate(n, hedge_delay_s=HUGE, ttft_timeout_s=deadline) for n in "ab"]
    race = make_race(ups, candidates=candidates)
    race._opener = opener
    first = asyncio.create_task(race.first())
    await settle()
    ups["b"].send(TextDelta(""))
    await settle()  # b's body is watched from here
    body.feed_data(TOKEN_CHUNK)  # claimed: a is cut
    await asyncio.sleep(deadline * 2)  # a later timer: b's deadline has come and gone
    await settle()
    ups["b"].send(TextDelta("Hel"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    assert attempt(race, "b").outcome == "won"
    await finish(race)
    assert ups.unclosed() == []


async def test_hedge_with_huge_delay_does_not_start_the_next() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "hedge", k=2)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(ResponseMeta(model="a"))
    await settle()
    ups["a"].send(TextDelta("x"))
    outcome = await first
    assert isinstance(outcome, Winner)
    assert ups.opened == ["a"]
    assert len(race.record.attempts) == 1
    await finish(race)


async def test_hedge_failure_starts_the_next_at_once() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "hedge", k=2)  # huge hedge delays: only a failure can start b
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].fail(503)
    await settle()
    assert ups.opened == ["a", "b"]
    assert attempt(race, "b").speculative is False
    ups["b"].send(TextDelta("b"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    await finish(race)


async def test_hedge_never_runs_more_than_k() -> None:
    ups = FakeUpstreams("a", "b", "c", "d")
    cands = [Candidate(n, hedge_delay_s=0.001) for n in "abcd"]
    race = make_race(ups, "hedge", k=2, candidates=cands, heartbeat_after_s=0.01)
    # Each heartbeat is due after the hedge timers armed before it, so after a few
    # heartbeats every hedge timer has fired at least once.
    for _ in range(3):
        assert await race.first() is HEARTBEAT
    assert ups.opened == ["a", "b"]
    ups["a"].fail(500)
    for _ in range(2):
        assert await race.first() is HEARTBEAT
    assert ups.opened == ["a", "b", "c"]  # the failure freed a slot; still at most 2
    assert ups.max_live == 2
    ups["c"].send(TextDelta("c"))
    while (outcome := await race.first()) is HEARTBEAT:
        pass
    assert isinstance(outcome, Winner) and outcome.deployment == "c"
    await finish(race)
    assert ups.opened == ["a", "b", "c"]
    assert ups.unclosed() == []


# -- weighted --------------------------------------------------------------------------------


async def test_weighted_draws_by_weight_and_falls_back() -> None:
    for seed in range(20):
        ups = FakeUpstreams("a", "b")
        cands = [Candidate("a", weight=0.0), Candidate("b", weight=1.0)]
        race = make_race(ups, "weighted", k=2, candidates=cands, rng=random.Random(seed))
        first = asyncio.create_task(race.first())
        await settle()
        assert ups.opened == ["b"]  # zero weight is never drawn; one attempt at a time
        ups["b"].fail(500)
        await settle()
        assert ups.opened == ["b", "a"]
        ups["a"].send(TextDelta("a"))
        outcome = await first
        assert isinstance(outcome, Winner) and outcome.deployment == "a"
        await finish(race)
        assert ups.unclosed() == []


async def test_weighted_equal_weights_draw_both() -> None:
    firsts = set()
    for seed in range(30):
        ups = FakeUpstreams("a", "b")
        race = make_race(ups, "weighted", k=1, rng=random.Random(seed))
        first = asyncio.create_task(race.first())
        await settle()
        firsts.add(ups.opened[0])
        await finish(race, first)
    assert firsts == {"a", "b"}


# -- heartbeat -------------------------------------------------------------------------------


async def test_heartbeat_then_winner() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, heartbeat_after_s=0.01)
    assert await race.first() is HEARTBEAT
    assert not ups["a"].finished and not ups["b"].finished  # still racing
    ups["b"].send(TextDelta("b"))
    while (outcome := await race.first()) is HEARTBEAT:
        pass
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    await finish(race)
    assert ups.unclosed() == []


async def test_heartbeat_then_all_failed() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, heartbeat_after_s=0.01)
    assert await race.first() is HEARTBEAT
    ups["a"].fail(500)
    ups["b"].fail(400, "invalid_request_error")
    while (outcome := await race.first()) is HEARTBEAT:
        pass
    assert isinstance(outcome, AllFailed)
    assert outcome.error.status == 400
    await finish(race)


# -- load budget -------------------------------------------------------------------------------


async def one_request(ups: FakeUpstreams, budget: LoadBudget, k: int = 2) -> RaceRecord:
    race = make_race(ups, "race", k=k, budget=budget)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("a"))
    outcome = await first
    assert isinstance(outcome, Winner)
    return await finish(race)


async def test_budget_half_alternates_race_and_single_attempt() -> None:
    clock = FakeClock()
    budget = LoadBudget(0.5, window_s=60.0, clock=clock)
    counts, limited = [], []
    for _ in range(6):
        ups = FakeUpstreams("a", "b")
        record = await one_request(ups, budget)
        counts.append(len(ups.opened))
        limited.append(record.budget_limited)
        assert [a.speculative for a in record.attempts] == [False, True][: len(ups.opened)]
    assert counts == [2, 1, 2, 1, 2, 1]
    assert limited == [False, True, False, True, False, True]
    assert budget.spent == 3 and budget.refused == 3
    clock.now = 1000.0  # the window has forgotten all of it
    ups = FakeUpstreams("a", "b")
    await one_request(ups, budget)
    assert ups.opened == ["a", "b"]


async def test_route_without_share_races_k_on_every_request() -> None:
    """No max_extra_load: a race of k starts k attempts every time, however many requests."""
    budget = LoadBudget.for_route(None, min_extra_per_s=0.0)  # not even a floor to lean on
    for _ in range(20):
        ups = FakeUpstreams("a", "b", "c")
        record = await one_request(ups, budget, k=3)
        assert ups.opened == ["a", "b", "c"]
        assert record.budget_refused == 0
    assert budget.refused == 0


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 3.0), min_size=1, max_size=40))
async def test_floor_races_every_request_at_one_per_second_or_less(gaps: list[float]) -> None:
    """With a share of 0 and a floor of 1/s, requests at most one a second always race."""
    clock = FakeClock()
    budget = LoadBudget(0.0, window_s=60.0, clock=clock, min_extra_per_s=1.0)
    for gap in gaps:
        clock.now += 1.0 + gap
        ups = FakeUpstreams("a", "b")
        record = await one_request(ups, budget)
        assert ups.opened == ["a", "b"]
        assert record.budget_refused == 0


async def test_budget_refusal_counts_every_attempt_it_stops() -> None:
    clock = FakeClock()
    budget = LoadBudget(0.0, window_s=10.0, clock=clock, min_extra_per_s=0.1)  # 1 per window
    observer = RecordingObserver()
    ups = FakeUpstreams("a", "b", "c", "d")
    race = make_race(ups, "race", k=4, budget=budget, observer=observer)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a", "b"]  # the floor's one extra, then refused
    ups["b"].send(TextDelta("b"))
    assert isinstance(await first, Winner)
    record = await finish(race)
    assert record.budget_refused == 2  # c and d were not started
    assert record.budget_limited
    assert observer.records == [record]
    assert budget.refused == 1 and budget.spent == 1


async def test_budget_zero_never_more_than_one_attempt() -> None:
    budget = LoadBudget(0.0, clock=FakeClock())
    for _ in range(3):
        ups = FakeUpstreams("a", "b")
        record = await one_request(ups, budget)
        assert ups.opened == ["a"]
        assert record.budget_limited


async def test_budget_zero_hedge_never_hedges() -> None:
    ups = FakeUpstreams("a", "b")
    budget = LoadBudget(0.0, clock=FakeClock())
    cands = [Candidate(n, hedge_delay_s=0.001) for n in "ab"]
    race = make_race(ups, "hedge", k=2, candidates=cands, budget=budget, heartbeat_after_s=0.01)
    for _ in range(2):
        assert await race.first() is HEARTBEAT
    assert ups.opened == ["a"]
    assert race.record.budget_limited
    await finish(race)


async def test_failure_driven_attempts_are_never_refused() -> None:
    budget = LoadBudget(0.0, clock=FakeClock())
    ups = FakeUpstreams("a", "b", "c")
    race = make_race(ups, "race", k=2, budget=budget)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a"]
    ups["a"].fail(500)
    await settle()
    ups["b"].fail(503)
    await settle()
    ups["c"].send(TextDelta("c"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "c"
    assert ups.opened == ["a", "b", "c"]
    assert [a.speculative for a in race.record.attempts] == [False, False, False]
    assert budget.refused == 1 and budget.spent == 0
    assert race.record.budget_limited
    await finish(race)


async def test_hedge_spends_budget_only_for_attempts_it_starts() -> None:
    budget = LoadBudget(1.0, clock=FakeClock())
    ups = FakeUpstreams("a", "b")
    cands = [Candidate(n, hedge_delay_s=0.001) for n in "ab"]
    race = make_race(ups, "hedge", k=2, candidates=cands, budget=budget, heartbeat_after_s=0.02)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].fail(500)  # b starts at once as a fallback (not speculative): hedge timer armed
    assert await first is HEARTBEAT  # b's hedge timer (0.001 s) fired before the heartbeat
    assert ups.opened == ["a", "b"]  # no candidate left to hedge with
    assert [a.speculative for a in race.record.attempts] == [False, False]
    assert budget.spent == 0  # nothing started, nothing spent
    assert budget.refused == 0
    await finish(race)


# -- aclose -----------------------------------------------------------------------------------


async def test_client_gone_before_first_token_closes_every_attempt() -> None:
    ups = FakeUpstreams("a", "b", "c")
    observer = RecordingObserver()
    race = make_race(ups, "race", k=3, observer=observer)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(ResponseMeta(model="a"))
    await settle()
    first.cancel()  # the client disconnected while we waited for the first token
    with pytest.raises(asyncio.CancelledError):
        await first
    record = await race.aclose(client_gone=True)
    assert ups.opened == ["a", "b", "c"]
    assert ups.unclosed() == []
    assert all(a.saw_cancel or a.saw_generator_exit for a in ups.attempts.values())
    assert only_test_task_left()
    assert record.stream_outcome == "client_cancelled"
    assert record.winner is None
    for a in record.attempts:
        assert a.outcome == "cancelled"
        assert a.censored_ttft_s is not None and a.ttft_s is None
    assert observer.records == [record]
    assert await race.aclose(client_gone=True) is record  # idempotent
    assert observer.records == [record]


async def test_client_gone_during_winner_stream_closes_the_winner() -> None:
    ups = FakeUpstreams("a", "b")
    observer = RecordingObserver()
    race = make_race(ups, observer=observer)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("1"))
    assert isinstance(await first, Winner)
    ups["a"].send(TextDelta("2"))
    assert await race.next_batch() == [TextDelta("2")]
    consumer = asyncio.create_task(race.next_batch())
    await settle()
    consumer.cancel()  # the client went away while we waited for the next batch
    with pytest.raises(asyncio.CancelledError):
        await consumer
    record = await race.aclose(client_gone=True)
    assert ups.unclosed() == []
    assert ups["a"].saw_cancel or ups["a"].saw_generator_exit
    assert only_test_task_left()
    assert record.stream_outcome == "client_cancelled"
    assert record.attempts[0].outcome == "won"
    assert record.attempts[1].outcome == "cancelled"
    await race.aclose()
    assert observer.records == [record]


async def test_aclose_without_client_gone_before_winner_is_no_winner() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    record = await race.aclose()  # never even started
    assert record.stream_outcome == "no_winner"
    assert ups.opened == []
    assert only_test_task_left()


async def test_aclose_waits_for_an_attempt_with_buffered_batches() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("x"))
    assert isinstance(await first, Winner)
    for i in range(5):  # queued but never read: the consumer stops early
        ups["a"].send(TextDelta(str(i)))
    await settle()
    record = await race.aclose()
    assert record.stream_outcome == "client_cancelled"
    assert ups.unclosed() == []
    assert only_test_task_left()


# -- accounting ------------------------------------------------------------------------------


async def test_wasted_tokens_and_cost_for_cancelled_losers() -> None:
    ups = FakeUpstreams("a", "b", "c")
    cands = [
        Candidate("a", price_input=2.0, price_output=8.0),
        Candidate("b", price_input=1.0, price_output=4.0),
        Candidate("c", price_input=3.0, price_output=6.0),
    ]
    race = make_race(ups, "race", k=3, candidates=cands, prompt_estimate=250)
    first = asyncio.create_task(race.first())
    await settle()
    ups["b"].send(Usage(prompt=100))  # b reported its prompt size before losing
    await settle()
    ups["a"].send(Usage(prompt=40), TextDelta("x"))
    outcome = await first
    assert isinstance(outcome, Winner) and outcome.deployment == "a"
    ups["a"].send(TextDelta("y"), TextDelta("z"))
    ups["a"].send(Finish("stop"), Usage(prompt=40, completion=3))
    ups["a"].end()
    await drain(race)
    record = await race.aclose()
    b, c = attempt(race, "b"), attempt(race, "c")
    assert b.input_tokens == 100 and b.output_tokens == 0
    assert c.input_tokens == 250  # no usage: prompt estimate
    assert record.wasted_tokens == 350
    assert record.wasted_cost_usd == pytest.approx((100 * 1.0 + 250 * 3.0) / 1e6)
    won = attempt(race, "a")
    assert won.usage == Usage(prompt=40, completion=3)
    assert won.output_tokens == 3
    assert won.cost_usd == pytest.approx((40 * 2.0 + 3 * 8.0) / 1e6)
    assert [a.deployment for a in record.losers] == ["b", "c"]


async def test_winner_usage_from_before_the_first_token_is_kept() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(Usage(prompt=12))
    ups["a"].send(TextDelta("x"))
    assert isinstance(await first, Winner)
    ups["a"].end()
    await drain(race)
    record = await race.aclose()
    assert record.attempts[0].input_tokens == 12
    assert record.wasted_tokens == 0


async def test_winner_tokens_counted_without_usage() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, "fallback", k=1, candidates=[Candidate("a", price_output=1.0)])
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("a"), TextDelta("b"))
    assert isinstance(await first, Winner)
    ups["a"].send(TextDelta("c"))
    ups["a"].end()
    await drain(race)
    record = await race.aclose()
    assert record.attempts[0].tokens == 3
    assert record.attempts[0].output_tokens == 3


# -- engine bugs found and fixed (regression tests) ------------------------------------


async def test_winning_batch_is_truncated_after_an_error() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    error = UpstreamError(502, "upstream_connection_error", "reset", True)
    ups["a"].send(TextDelta("hi"), error, TextDelta("after the error"))
    outcome = await first
    assert isinstance(outcome, Winner)
    assert outcome.events == [TextDelta("hi"), error]
    assert await race.next_batch() is None
    record = await finish(race)
    assert record.stream_outcome == "failed"
    assert ups.unclosed() == []


async def test_error_in_the_winning_batch_is_a_failed_stream() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    error = UpstreamError(502, "upstream_connection_error", "reset", True)
    ups["a"].send(TextDelta("hi"), error)  # as stream_events yields a reset mid-body
    ups["a"].end()
    outcome = await first
    assert isinstance(outcome, Winner)
    assert error in outcome.events
    # the handler sees the error in Winner.events and stops reading, then closes the race
    record = await race.aclose()
    assert record.attempts[0].error == error
    assert record.stream_outcome == "failed"


async def test_attempt_raising_is_a_failure_and_the_next_starts() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].raise_(ValueError("line too long"))  # e.g. the SSE decoder's LineTooLong
    await settle()
    assert ups["a"].finished
    assert ups.opened == ["a", "b"]
    broken = attempt(race, "a")
    assert broken.outcome == "failed"
    assert error_of(broken).status == 502
    ups["b"].send(TextDelta("b"))
    outcome = await asyncio.wait_for(first, 5)  # the guard only turns a hang into a failure
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    await finish(race)
    assert only_test_task_left()


async def test_attempt_raising_after_the_winner_ends_the_stream_with_an_error() -> None:
    ups = FakeUpstreams("a")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("x"))
    assert isinstance(await first, Winner)
    ups["a"].raise_(ValueError("event too large"))
    batch = await asyncio.wait_for(race.next_batch(), 5)
    assert batch is not None and isinstance(batch[-1], UpstreamError)
    assert await race.next_batch() is None
    record = await race.aclose()
    assert record.stream_outcome == "failed"


async def test_cancelled_loser_has_either_ttft_or_censored_ttft() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups)
    first = asyncio.create_task(race.first())
    await settle()
    ups["a"].send(TextDelta("a"))
    ups["b"].send(TextDelta("b"))  # b's token is queued just behind a's
    assert isinstance(await first, Winner)
    await finish(race)
    loser = attempt(race, "b")
    assert loser.outcome == "cancelled"
    assert (loser.ttft_s is None) != (loser.censored_ttft_s is None)


# -- property: random scripts and interleavings ---------------------------------------------

# "watched": a token the token watch sees first, claimed in a data callback before the
# attempt's task yields it (`claim_as_the_watch`)
STEPS = st.sampled_from(["meta", "token", "token", "watched", "finish", "error", "end", "hang"])
ERROR_STATUSES = [500, 503, 429, 400, 401, 504]


def step_batch(name: str, step: str, j: int) -> list[Event] | None:
    tag = f"<{name}#{j}>"
    if step == "meta":
        return [ResponseMeta(model=name, fingerprint=tag), TextDelta("")]
    if step in ("token", "watched"):
        return [TextDelta(tag)]
    if step == "finish":
        return [Finish("stop"), Usage(prompt=3, completion=j)]
    if step == "error":
        status = ERROR_STATUSES[j % len(ERROR_STATUSES)]
        return [UpstreamError(status, "server_error", tag, True, retry_after_s=float(j))]
    return None


def origin(event: Event) -> str | None:
    if isinstance(event, TextDelta) and event.text:
        return event.text[1:].split("#")[0]
    if isinstance(event, ResponseMeta):
        return event.model
    if isinstance(event, UpstreamError):
        return event.message[1:].split("#")[0]
    return None


def expected_winner(ups: FakeUpstreams) -> str | None:
    """Replay the fakes' global log: the first token (or clean end after a Finish) wins."""
    failed: set[str] = set()
    seen: dict[str, list[Event]] = {}
    for entry in ups.log:
        if entry.name in failed:
            continue
        if entry.kind == "claim":
            return entry.name
        if entry.kind == "batch":
            for event in entry.events:
                if isinstance(event, UpstreamError):
                    failed.add(entry.name)
                    break
                if is_token(event):
                    return entry.name
            else:
                seen.setdefault(entry.name, []).extend(entry.events)
        elif entry.kind == "end":
            if any(isinstance(e, Finish) for e in seen.get(entry.name, [])):
                return entry.name
            failed.add(entry.name)
    return None


def upto_first_error(events: list[Event]) -> list[Event]:
    for i, event in enumerate(events):
        if isinstance(event, UpstreamError):
            return events[: i + 1]
    return events


def claim_as_the_watch(race: Race, ups: FakeUpstreams, name: str, claims: list[int]) -> None:
    """`name`'s next batch is a token the token watch sees first: the race hears of it in a
    data callback (here: in the test's own step, as a callback runs in the loop's turn),
    before the attempt's task yields the batch. Only where the watch runs
    (attempts side by side) and where it could see it (nothing else pending before the
    token, no error yielded before); an effective claim is logged, with the number of
    attempts opened at that moment in `claims`."""
    fake = ups[name]
    if not race._speculative_ok or not fake.commands.empty():
        return
    if any(isinstance(event, UpstreamError) for event in fake.events):
        return
    state = next(a for a in race._attempts if a.candidate.name == name)
    before = race._claimed
    race._first_token_seen(state)  # now: tasks already woken in this turn run after it
    if race._claimed and not before:
        ups.log.append(LogEntry(name, "claim"))
        claims.append(len(ups.opened))


async def run_scenario(
    scripts: list[list[str]], schedule: list[tuple[int, bool]], strategy: str, k: int
) -> None:
    names = [f"u{i}" for i in range(len(scripts))]
    ups = FakeUpstreams(*names, cut_ends_stream=True)
    observer = RecordingObserver()
    race = make_race(ups, strategy, k=k, observer=observer, rng=random.Random(len(schedule)))
    results: list[object] = []
    received: list[Event] = []
    ended: list[str] = []
    claims: list[int] = []  # attempts opened when a token was claimed

    async def consume() -> None:
        outcome = await race.first()
        results.append(outcome)
        if isinstance(outcome, Winner):
            received.extend(outcome.events)
            while (batch := await race.next_batch()) is not None:
                received.extend(batch)
            ended.append("done")

    consumer = asyncio.create_task(consume())
    await settle()
    position = [0] * len(scripts)
    for choice, burst in schedule:
        i = choice % len(scripts)
        fake = ups[names[i]]
        if not fake.started or fake.finished or position[i] >= len(scripts[i]):
            continue
        j = position[i]
        step = scripts[i][j]
        position[i] += 1
        batch = step_batch(names[i], step, j)
        if step == "watched" and "hang" not in scripts[i][:j]:  # a hung stream sends nothing
            claim_as_the_watch(race, ups, names[i], claims)
        if batch is not None:
            fake.send(*batch)
        elif step == "end":
            fake.end()
        else:
            fake.hang()
        if not burst:  # a burst lets the next step land before the engine reacts
            await settle()
    await settle()

    # once a winner exists, every other attempt has been closed already
    if results and isinstance(results[0], Winner):
        losers = [n for n in ups.opened if n != results[0].deployment]
        assert all(ups[n].finished for n in losers), ups.unclosed()
    # a cut is the race's doing: never an attempt's failure
    assert all(a.error is not CUT for a in race.record.attempts), race.record.attempts
    # nothing starts once a first token is claimed (the claimer's token is next)
    if claims:
        assert len(ups.opened) == claims[0], (ups.opened, claims)
    # each failure before a winner started exactly one more attempt, while any remained
    failures = sum(1 for a in race.record.attempts if a.outcome == "failed")
    width = min(k, len(names)) if strategy == "race" else 1
    assert len(race.record.attempts) == min(len(names), width + failures)

    client_gone = not consumer.done()
    if client_gone:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    record = await race.aclose(client_gone=client_gone)
    assert await race.aclose() is record

    # nothing left behind: no task, no open upstream, observer told once
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert ups.unclosed() == []
    assert observer.records == [record]
    assert all(a.opens <= 1 for a in ups.attempts.values())
    assert ups.max_live <= (k if strategy == "race" else 1)

    # at most one winner, and the right one
    won = [a for a in record.attempts if a.outcome == "won"]
    assert len(won) <= 1
    assert len(results) <= 1
    winner = expected_winner(ups)
    assert record.winner == winner
    if results and isinstance(results[0], Winner):
        assert results[0].deployment == winner
    if winner is None:
        assert record.stream_outcome in ("no_winner", "client_cancelled")
        assert received == []
        if results:
            outcome = results[0]
            assert isinstance(outcome, AllFailed)
            assert len(record.attempts) == len(names)
            assert all(a.outcome == "failed" for a in record.attempts)
            assert outcome.error == choose_error([e for _, e in outcome.errors])
            assert record.stream_outcome == "no_winner"
        return

    # every event the client got is the winner's, in order, nothing lost
    assert won[0].deployment == winner
    assert all(origin(e) in (None, winner) for e in received)
    expected = upto_first_error(ups[winner].events)
    if ended:
        assert received == expected
        failed = any(isinstance(e, UpstreamError) for e in received)
        assert record.stream_outcome == ("failed" if failed else "completed")
    else:
        assert received == expected[: len(received)]
        assert record.stream_outcome == "client_cancelled"
    text = "".join(e.text for e in received if isinstance(e, TextDelta))
    assert text == "".join(e.text for e in expected[: len(received)] if isinstance(e, TextDelta))
    for a in record.attempts:
        if a.outcome == "cancelled":
            assert (a.censored_ttft_s is None) != (a.ttft_s is None)
            if not any(is_token(e) for e in ups[a.deployment].events):
                assert a.ttft_s is None


@example(  # a's earlier non-tokens are part of the winning events
    scripts=[["meta", "meta", "token", "finish", "end"], ["hang"]],
    schedule=[(0, False)] * 5,
    strategy="race",
    k=2,
)
@example(  # b's batch lands in the queue right behind a's winning token
    scripts=[["token", "token", "end"], ["meta", "token", "end"]],
    schedule=[(0, True), (1, True), (1, False), (0, False), (0, False)],
    strategy="race",
    k=2,
)
@example(  # a keeps talking after its error; b (started by the failure) wins
    scripts=[["error", "token", "end"], ["token", "end"], ["token"]],
    schedule=[(0, True), (0, True), (0, False), (1, False), (1, False)],
    strategy="race",
    k=1,
)
@example(  # failures widen the race one by one; everyone fails
    scripts=[["error"], ["end"], ["meta", "error"], ["error"]],
    schedule=[(0, False), (1, False), (2, False), (2, False), (3, False)],
    strategy="race",
    k=2,
)
@example(  # a winner that only sends a Finish, and one that fails mid-stream
    scripts=[["finish", "end"], ["token", "error", "token"]],
    schedule=[(1, False), (1, False), (0, False), (0, False)],
    strategy="fallback",
    k=1,
)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    scripts=st.lists(st.lists(STEPS, min_size=1, max_size=6), min_size=2, max_size=4),
    schedule=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=40),
    strategy=st.sampled_from(["race", "fallback", "weighted"]),
    k=st.integers(1, 4),
)
def test_random_scripts_and_interleavings(
    scripts: list[list[str]], schedule: list[tuple[int, bool]], strategy: str, k: int
) -> None:
    asyncio.run(run_scenario(scripts, schedule, strategy, k))


async def test_a_stream_read_to_its_end_is_closed_without_a_task() -> None:
    """`Race.aclose` skips closing a winner's stream that ran to its end; one that did not
    still has its `finally` run (its connection released), by `aclose()`."""
    cleaned: list[str] = []

    async def stream() -> AsyncGenerator[list[Event], None]:
        try:
            yield [TextDelta("a")]
        finally:
            cleaned.append("done")

    ended = stream()
    reader = DirectReader(ended, 30.0)
    assert await reader.read() == [TextDelta("a")] and await reader.read() is None
    assert finished(ended) and reader.closed_already() and cleaned == ["done"]

    cut = stream()
    reader = DirectReader(cut, 30.0)
    assert await reader.read() == [TextDelta("a")]  # suspended at its yield
    assert not finished(cut) and not reader.closed_already() and cleaned == ["done"]
    await reader.aclose()
    assert finished(cut) and cleaned == ["done", "done"]


async def test_attempts_one_at_a_time_run_in_the_callers_own_task() -> None:
    """With no backup and no heartbeat to wake for, an attempt runs to its first token in
    the task that awaits `first()`: no attempt task, and the context it ran in is left as
    it was (nothing opened later in that task registers cuts or sources with it)."""
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "fallback", k=1)
    ups["a"].fail(500)
    ups["b"].send(ResponseMeta(model="b"))
    ups["b"].send(TextDelta("hi"))
    outcome = await race.first()
    assert isinstance(outcome, Winner) and outcome.deployment == "b"
    assert outcome.events == [ResponseMeta(model="b"), TextDelta("hi")]
    assert all(a.task is None for a in race._attempts)
    assert attempt_module._CUTS.get() is None and attempt_module._SOURCES.get() is None
    assert ups["a"].finished and attempt(race, "a").outcome == "failed"
    ups["b"].send(TextDelta(" there"))
    ups["b"].end()
    assert await drain(race) == [[TextDelta(" there")]]
    record = await race.aclose()
    assert record.stream_outcome == "completed" and ups.unclosed() == []
    assert only_test_task_left()


async def test_client_gone_while_an_attempt_runs_in_the_callers_task() -> None:
    ups = FakeUpstreams("a", "b")
    observer = RecordingObserver()
    race = make_race(ups, "fallback", k=1, observer=observer)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a"]
    first.cancel()  # the client disconnected while we waited for the first token
    with pytest.raises(asyncio.CancelledError):
        await first
    record = await race.aclose(client_gone=True)
    assert ups.opened == ["a"] and ups.unclosed() == []
    assert record.stream_outcome == "client_cancelled" and record.winner is None
    (only,) = record.attempts
    assert only.outcome == "cancelled" and only.censored_ttft_s is not None
    assert observer.records == [record]
    assert only_test_task_left()


async def test_nothing_starts_after_aclose_even_if_first_still_runs() -> None:
    ups = FakeUpstreams("a", "b")
    race = make_race(ups, "fallback", k=1)
    first = asyncio.create_task(race.first())
    await settle()
    assert ups.opened == ["a"]
    record = await race.aclose()  # closed from elsewhere while first() still waits on a
    ups["a"].fail(500)  # a failure would start the next attempt before the first token
    outcome = await first
    assert isinstance(outcome, AllFailed) and ups.opened == ["a"] and ups.unclosed() == []
    assert [a.deployment for a in record.attempts] == ["a"]
    assert only_test_task_left()
