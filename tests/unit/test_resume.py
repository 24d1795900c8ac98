"""Resume on a backup (gateway/streaming/resume.py), driven by scripted attempts.

An original attempt streams the start of a known text and is cut; a scripted backup
continues exactly from the prefix it is given (as a provider's continuation does). The
client's events (what the Answer would hand the encoder) must be one uninterrupted
answer: the whole text once, no error, one finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gateway.streaming.accounting import RaceRecord
from gateway.streaming.events import (
    Event,
    Finish,
    ReasoningDelta,
    ResponseMeta,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)
from gateway.streaming.plan import Candidate, Opener, RacePlan, Winner
from gateway.streaming.race import Race
from gateway.streaming.resume import Resumer, Seam, add_usage, carried_usage

CUT = UpstreamError(502, "upstream_connection_error", "upstream closed the stream", True)
Script = Sequence[list[Event] | str]  # batches; "hang" waits forever


async def scripted(script: Script) -> AsyncGenerator[list[Event], None]:
    for step in script:
        if step == "hang":
            await asyncio.get_running_loop().create_future()
        assert isinstance(step, list)
        yield list(step)


def chunks(text: str, sizes: Sequence[int]) -> list[str]:
    """`text` cut into pieces of the given sizes (cycled), never empty pieces."""
    out, i, k = [], 0, 0
    while i < len(text):
        size = max(1, sizes[k % len(sizes)]) if sizes else len(text)
        out.append(text[i : i + size])
        i, k = i + size, k + 1
    return out


def exact_backup(
    full: str, sizes: Sequence[int], usage: Usage | None = None
) -> Callable[[str], Script]:
    """A backup that continues `full` from any prefix of it, exactly (role/meta first)."""

    def continue_from(prefix: str) -> Script:
        assert full.startswith(prefix), (full, prefix)
        rest = full[len(prefix) :]
        batches: list[list[Event] | str] = [[ResponseMeta(model="backup-v1")]]
        batches += [[TextDelta(piece)] for piece in chunks(rest, sizes)]
        batches.append([Finish("stop"), usage or Usage(prompt=40, completion=7)])
        return batches

    return continue_from


class Continuations:
    """The pipeline's continuer, scripted: which backups can continue, and how."""

    def __init__(self, backups: dict[str, Callable[[str], Script]]) -> None:
        self.backups = backups
        self.calls: list[tuple[str, int, frozenset[str]]] = []
        self.opened: list[str] = []

    def __call__(
        self, prefix: str, produced_tokens: int, exclude: frozenset[str]
    ) -> tuple[list[Candidate], Opener]:
        self.calls.append((prefix, produced_tokens, exclude))
        able = [Candidate(name) for name in self.backups if name not in exclude]

        def opener(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
            self.opened.append(candidate.name)
            return scripted(self.backups[candidate.name](prefix))

        return able, opener


def race_of(
    scripts: dict[str, Script], strategy: str = "fallback", k: int = 1, idle_s: float = 30.0
) -> Race:
    plan = RacePlan(
        request_id="req_resume",
        route="chat",
        strategy=strategy,  # type: ignore[arg-type]
        candidates=[Candidate(name, idle_timeout_s=idle_s) for name in scripts],
        k=k,
        prompt_estimate=10,
    )
    return Race(plan, lambda c: scripted(scripts[c.name]))


async def answer(
    race: Race, resumer: Resumer | None
) -> tuple[list[Event], RaceRecord, list[list[Event]]]:
    """Every event the client gets, as the Answer hands them to an encoder, the batches,
    and the merged race record."""
    batches: list[list[Event]] = []
    try:
        outcome = await race.first()
        assert isinstance(outcome, Winner)
        first = outcome.events if resumer is None else resumer.first_events(outcome.events)
        batches.append(first)
        source = race if resumer is None else resumer
        while type(batches[-1][-1]) is not UpstreamError:
            batch = await source.next_batch()
            if batch is None:
                break
            batches.append(batch)
    finally:
        await race.aclose()
        if resumer is not None:
            await resumer.aclose()
            resumer.merge(race.record)
    return [e for b in batches for e in b], race.record, batches


def text_of(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def cut_script(sent: str, sizes: Sequence[int], error_in_last_batch: bool) -> Script:
    pieces = chunks(sent, sizes)
    batches: list[list[Event] | str] = [[ResponseMeta(model="orig-v1")]]
    batches += [[TextDelta(piece)] for piece in pieces]
    if error_in_last_batch:
        last = batches[-1]
        assert isinstance(last, list)
        last.append(CUT)
    else:
        batches.append([CUT])
    return batches


def broken(prefix: str) -> Script:
    """A backup that fails before its first token."""
    return [[UpstreamError(503, "overloaded", "busy", True)]]


TEXT_PIECES = st.sampled_from(
    ["Hello", " world", ",", " ", "\n", "\n\n", "\t", "  ", "é", "naïve", "日本", " x", "42", "."]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(TEXT_PIECES, min_size=1, max_size=30),
    cut=st.integers(1, 400),
    sent_sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    backup_sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    error_in_last_batch=st.booleans(),
)
@example(["Hello", " ", "world"], 6, [1], [1], False)  # cut after the space
@example(["Hello", "\n\n", "world"], 6, [3], [1], True)  # cut inside the whitespace run
async def test_any_cut_and_any_chunking_gives_the_uninterrupted_text(
    pieces: list[str],
    cut: int,
    sent_sizes: list[int],
    backup_sizes: list[int],
    error_in_last_batch: bool,
) -> None:
    full = "".join(pieces)
    cut = min(cut, len(full))
    sent = full[:cut]
    assume(sent.strip())  # a cut before any visible text is not resumable (other test)
    continuations = Continuations({"b": exact_backup(full, backup_sizes)})
    race = race_of({"a": cut_script(sent, sent_sizes, error_in_last_batch), "b": ["hang"]})
    resumer = Resumer(race, continuations, max_resumes=1)
    events, record, batches = await answer(race, resumer)
    assert text_of(events) == full
    assert not any(type(e) is UpstreamError for e in events)
    assert [e for e in events if type(e) is Finish] == [Finish("stop")]
    assert [e for e in events if type(e) is ResponseMeta] == [ResponseMeta(model="orig-v1")]
    assert all(batches), "an empty batch would reach the encoder"
    assert continuations.calls[0][0] == sent.rstrip()  # never a trailing-whitespace prefill
    assert continuations.calls[0][2] == frozenset({"a"})
    assert record.resumes == 1 and record.resumed and record.stream_outcome == "completed"
    resumed = [a for a in record.attempts if a.resumed_from == "a"]
    assert [(a.deployment, a.outcome) for a in resumed] == [("b", "won")]


@settings(max_examples=60, deadline=None)
@given(
    pieces=st.lists(TEXT_PIECES, min_size=2, max_size=20),
    cut=st.integers(1, 200),
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
)
async def test_a_backup_that_leaves_out_the_whitespace_it_was_not_sent_joins_cleanly(
    pieces: list[str], cut: int, sizes: list[int]
) -> None:
    """Some servers trim the open assistant message, and models do not always write the
    space again: at a word boundary the client's text still reads as the whole answer."""
    full = "".join(pieces)
    cut = min(cut, len(full) - 1)
    sent = full[:cut]
    assume(sent.strip() and not full[cut].isspace())
    rest = full[cut:]

    def trimmed(prefix: str) -> Script:
        return [[TextDelta(p)] for p in chunks(rest, sizes)] + [[Finish("stop")]]

    race = race_of({"a": cut_script(sent, sizes, False)})
    events, _, _ = await answer(race, Resumer(race, Continuations({"b": trimmed}), 1))
    assert text_of(events) == full


def test_seam_drops_the_whitespace_the_client_has_and_keeps_the_clients_where_they_differ() -> None:
    def join(overlap: str, *texts: str) -> str:
        seam = Seam(overlap, None)
        return text_of(seam.filter([TextDelta(t) for t in texts]))

    assert join(" ", " world") == "world"
    assert join(" ", " ", "world") == "world"
    assert join("\n\n", "\n", "\nNext") == "Next"
    assert join("\n\n", "\nNext") == "Next"  # less whitespace than the client has
    assert join(" ", "\n Next") == "Next"  # other whitespace: the client's stands
    assert join(" ", "world") == "world"
    assert join("", " world") == " world"  # nothing to reconcile: a leading space is text
    assert join(" ", "", " a", " b") == "a b"


def test_seam_keeps_raw_text_untouched_and_rebuilds_what_it_trims() -> None:
    seam = Seam(" ", None)
    raw = TextDelta(" wor\\u006cd", raw=" wor\\u006cd")
    trimmed = seam.filter([raw])[0]
    assert isinstance(trimmed, TextDelta) and trimmed.raw is None
    untouched = TextDelta("x", raw="x")
    assert seam.filter([untouched])[0] is untouched


def test_usage_after_the_seam_is_the_whole_answers() -> None:
    carried = Usage(prompt=10, completion=4, cached=2, reasoning=1)
    summed = add_usage(carried, Usage(prompt=15, completion=6, reasoning=2, total=30))
    assert summed == Usage(prompt=25, completion=10, cached=2, reasoning=3, total=44)
    beside = add_usage(
        carried, Usage(prompt=15, completion=6, reasoning=2, reasoning_in_completion=False)
    )
    assert (beside.completion, beside.reasoning, beside.total_tokens) == (12, 3, 37)


async def test_usage_sent_to_the_client_adds_the_cut_attempts_tokens() -> None:
    full = "one two three four"
    race = race_of({"a": cut_script("one two", [4], False)})
    backup = exact_backup(full, [3], usage=Usage(prompt=30, completion=3))
    resumer = Resumer(race, Continuations({"b": backup}), 1)
    events, record, _ = await answer(race, resumer)
    cut_attempt = record.attempts[0]
    assert cut_attempt.usage is None and cut_attempt.output_tokens == 2  # two text deltas
    expected = add_usage(carried_usage([cut_attempt]), Usage(prompt=30, completion=3))
    assert [e for e in events if type(e) is Usage] == [expected]
    assert expected.prompt == 10 + 30 and expected.completion == 2 + 3
    assert record.attempts[1].usage == Usage(prompt=30, completion=3)  # the record: as reported


async def test_a_cut_inside_a_tool_call_stays_an_in_stream_error() -> None:
    script: Script = [
        [TextDelta("Let me look that up.")],
        [ToolCallDelta(0, "call_1", "weather", '{"ci')],
        [CUT],
    ]
    continuations = Continuations({"b": exact_backup("x", [1])})
    race = race_of({"a": script})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert events[-1] == CUT
    assert continuations.calls == [] and record.resumes == 0
    assert record.stream_outcome == "failed"


async def test_a_cut_during_reasoning_before_any_text_is_not_resumed() -> None:
    continuations = Continuations({"b": exact_backup("x", [1])})
    race = race_of({"a": [[ReasoningDelta("thinking")], [TextDelta("  ")], [CUT]]})
    events, _, _ = await answer(race, Resumer(race, continuations, 1))
    assert events[-1] == CUT and continuations.calls == []


async def test_an_error_after_the_finish_is_not_resumed() -> None:
    continuations = Continuations({"b": exact_backup("x", [1])})
    race = race_of({"a": [[TextDelta("done")], [Finish("stop")], [CUT]]})
    events, _, _ = await answer(race, Resumer(race, continuations, 1))
    assert events[-1] == CUT and continuations.calls == []


async def test_without_a_backup_that_can_continue_the_original_error_stands() -> None:
    continuations = Continuations({})
    race = race_of({"a": cut_script("Hello there", [5], False)})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert events[-1] == CUT and text_of(events) == "Hello there"
    assert continuations.calls == [("Hello there", 3, frozenset({"a"}))]
    assert record.stream_outcome == "failed"


async def test_a_backup_failing_before_its_first_token_moves_on_to_the_next() -> None:
    full = "Hello there, general"
    continuations = Continuations({"b": broken, "c": exact_backup(full, [2])})
    race = race_of({"a": cut_script("Hello there", [5], False)})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert text_of(events) == full and continuations.opened == ["b", "c"]
    assert [(a.deployment, a.outcome, a.resumed_from) for a in record.attempts] == [
        ("a", "won", None),
        ("b", "failed", "a"),
        ("c", "won", "a"),
    ]
    assert record.resumes == 1 and record.stream_outcome == "completed"


async def test_every_backup_failing_gives_the_original_error() -> None:
    continuations = Continuations({"b": broken})
    race = race_of({"a": cut_script("Hello there", [5], False)})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert events[-1] == CUT
    assert record.resumes == 1 and not record.resumed and record.stream_outcome == "failed"


async def test_max_resumes_bounds_the_seams() -> None:
    full = "alpha beta gamma delta"

    def cut_again(prefix: str) -> Script:
        return [[TextDelta(full[len(prefix) : len(prefix) + 6])], [CUT]]

    for max_resumes, ends_in_error in ((1, True), (2, False)):
        continuations = Continuations({"b": cut_again, "c": exact_backup(full, [4])})
        race = race_of({"a": cut_script("alpha", [5], False)})
        events, record, _ = await answer(race, Resumer(race, continuations, max_resumes))
        if ends_in_error:
            assert events[-1] == CUT and text_of(events) == "alpha beta "
            assert record.resumes == 1
        else:
            assert text_of(events) == full and record.resumes == 2
            # the second seam continues all the client has, and b (which failed) is out
            assert continuations.calls[1][0] == "alpha beta"
            assert continuations.calls[1][2] == frozenset({"a", "b"})
            assert [a.resumed_from for a in record.attempts] == [None, "a", "b"]


async def test_a_cancelled_loser_can_resume_the_winner() -> None:
    full = "fast answer, then more"
    race = race_of(
        {"a": cut_script("fast answer", [4], False), "b": ["hang"]}, strategy="race", k=2
    )
    continuations = Continuations({"a": exact_backup(full, [1]), "b": exact_backup(full, [5])})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert text_of(events) == full
    assert continuations.calls[0][2] == frozenset({"a"})  # b was cancelled, not failed
    assert [(a.deployment, a.outcome) for a in record.attempts] == [
        ("a", "won"),
        ("b", "cancelled"),
        ("b", "won"),
    ]


async def test_an_idle_winner_is_resumed() -> None:
    full = "slow and then silent"
    script: Script = [[TextDelta("slow and")], "hang"]
    race = race_of({"a": script}, idle_s=0.01)
    continuations = Continuations({"b": exact_backup(full, [3])})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert text_of(events) == full
    assert record.attempts[0].error is not None
    assert record.attempts[0].error.type == "upstream_timeout"


async def test_an_error_in_the_first_token_batch_is_resumed() -> None:
    full = "Hi there"
    race = race_of({"a": [[TextDelta("Hi"), CUT]]})
    continuations = Continuations({"b": exact_backup(full, [2])})
    events, _, batches = await answer(race, Resumer(race, continuations, 1))
    assert batches[0] == [TextDelta("Hi")] and text_of(events) == full


async def test_a_backup_whose_continuation_is_empty_just_finishes() -> None:
    race = race_of({"a": cut_script("All of it.", [3], False)})
    continuations = Continuations({"b": exact_backup("All of it.", [3])})
    events, record, _ = await answer(race, Resumer(race, continuations, 1))
    assert text_of(events) == "All of it." and events[-2:][0] == Finish("stop")
    assert record.stream_outcome == "completed"


async def test_the_client_leaving_during_a_continuation_closes_it() -> None:
    race = race_of({"a": cut_script("Hello", [5], False)})
    continuations = Continuations({"b": lambda prefix: [[TextDelta(" there")], "hang"]})
    resumer = Resumer(race, continuations, 1)
    outcome = await race.first()
    assert isinstance(outcome, Winner)
    resumer.first_events(outcome.events)
    assert await resumer.next_batch() == [TextDelta(" there")]
    reading = asyncio.ensure_future(resumer.next_batch())
    await asyncio.sleep(0)
    reading.cancel()
    await race.aclose(client_gone=True)
    await resumer.aclose(client_gone=True)
    resumer.merge(race.record)
    assert race.record.stream_outcome == "client_cancelled"
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("attempt:")]
