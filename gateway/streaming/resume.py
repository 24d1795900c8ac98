"""Resume on a backup: a text answer cut after its first token goes on elsewhere.

When the winner fails mid-stream (a cut connection, an idle timeout, an in-stream
error) and what the client has so far is text (no tool call, no finish), the
`Resumer` asks its `Continuer` for the candidates that can continue a prefix and an
opener of their continuation requests (the original messages plus the text so far as
a trailing assistant message, in each provider's own way), and runs them one at a
time, like a fallback race. The first that produces a token carries the answer on,
through a `Seam` that joins its text to what the client already has; the client sees
one stream. A cut inside a tool call stays an in-stream error.

Wire-format-free: the continuer (the pipeline's, built on the providers) knows how to
ask; this module only knows events. An Answer reads through a Resumer only on routes
with `resume: true`; elsewhere it reads the race directly, at no cost.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

from gateway.streaming.accounting import AttemptRecord, RaceRecord
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


class Continuer(Protocol):
    def __call__(
        self, prefix: str, produced_tokens: int, exclude: frozenset[str]
    ) -> tuple[list[Candidate], Opener]:
        """The candidates (in plan order, none of `exclude`) that can continue `prefix`,
        and the opener of their continuation requests. `produced_tokens` were already
        spent on the answer (a max_tokens limit shrinks by them)."""
        ...


class Seam:
    """Joins a continuation's events to the answer the client already has.

    The prefix sent for continuation is the client's text without its trailing
    whitespace (Anthropic refuses a prefill ending in whitespace; chat templates often
    trim it; a tokenizer prefers the space on the next word), so the continuation may
    start by writing that whitespace again: the part the client already has is dropped;
    where the continuation's leading whitespace differs, the client's stands. After the
    seam: no second role or model header (ResponseMeta), no reasoning (the answer is
    already past it), and usage summed with the earlier attempts' (`carried`).
    """

    __slots__ = ("_carried", "_pending")

    def __init__(self, overlap: str, carried: Usage | None) -> None:
        self._pending: str | None = overlap or None  # whitespace the client has, unmatched
        self._carried = carried

    def filter(self, events: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                if self._pending is not None:
                    text = self._join(event.text)  # type: ignore[union-attr]
                    if not text:
                        continue
                    if text != event.text:  # type: ignore[union-attr]
                        event = TextDelta(text)
                out.append(event)
            elif kind is ResponseMeta or kind is ReasoningDelta:
                continue
            elif kind is Usage and self._carried is not None:
                out.append(add_usage(self._carried, event))  # type: ignore[arg-type]
            else:
                out.append(event)
        return out

    def _join(self, text: str) -> str:
        """The part of `text` the client does not have yet (while the seam is open)."""
        pending = self._pending
        if not text or pending is None:
            return text
        n = 0
        limit = min(len(text), len(pending))
        while n < limit and text[n] == pending[n]:
            n += 1
        if n == len(text):  # all of it is whitespace the client already has
            self._pending = pending[n:] or None
            return ""
        self._pending = None
        if n == len(pending):
            return text[n:]
        return text[n:].lstrip()  # other whitespace than the client's: the client's stands


def carried_usage(attempts: Sequence[AttemptRecord]) -> Usage:
    """What the earlier attempts of an answer cost, as one Usage (reasoning in completion)."""
    prompt = output = cached = reasoning = 0
    for attempt in attempts:
        prompt += attempt.input_tokens
        output += attempt.output_tokens
        if attempt.usage is not None:
            cached += attempt.usage.cached
            reasoning += attempt.usage.reasoning
    return Usage(prompt, output, cached, reasoning)


def add_usage(carried: Usage, usage: Usage) -> Usage:
    """`usage` with `carried` added: the client is told what the whole answer cost."""
    return Usage(
        prompt=carried.prompt + usage.prompt,
        completion=carried.output + usage.output,
        cached=carried.cached + usage.cached,
        reasoning=carried.reasoning + usage.reasoning,
        total=carried.total_tokens + usage.total_tokens,
    )


class Resumer:
    """Reads an answer from its race and, when the answer is cut, from a continuation.

    `first_events()` sees the winner's first events, `next_batch()` replaces the race's;
    `aclose()` closes the continuations, and `merge()` adds their attempts (with
    `resumed_from`) to the request's race record."""

    __slots__ = (
        "_continuations",
        "_continuer",
        "_held",
        "_max",
        "_queue_size",
        "_race",
        "_reading",
        "_rng",
        "_seam",
        "_text",
        "_textual",
    )

    def __init__(
        self,
        race: Race,
        continuer: Continuer,
        max_resumes: int,
        *,
        rng: random.Random | None = None,
        queue_size: int = 64,
    ) -> None:
        self._race = race
        self._reading = race  # the race whose winner the client reads now
        self._continuations: list[tuple[Race, str]] = []  # (race, the deployment it resumed)
        self._continuer = continuer
        self._max = max_resumes
        self._rng = rng
        self._queue_size = queue_size
        self._text: list[str] = []  # every text delta the client got
        self._textual = True  # no tool call and no finish so far
        self._held: UpstreamError | None = None  # a cut to resume at the next read
        self._seam: Seam | None = None

    def first_events(self, events: list[Event]) -> list[Event]:
        """The winner's first events as the client gets them (a resumable error held back)."""
        return self._observe(events)

    async def next_batch(self) -> list[Event] | None:
        """The answer's next events; an UpstreamError ends them; None at the end."""
        while True:
            held = self._held
            if held is not None:
                self._held = None
                batch = await self._resume(held)
            else:
                read = await self._reading.next_batch()
                if read is None:
                    return None
                batch = self._observe(read if self._seam is None else self._seam.filter(read))
            if batch:  # a batch the seam emptied (whitespace the client has) is not sent
                return batch

    def _observe(self, events: list[Event]) -> list[Event]:
        text = self._text
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                text.append(event.text)  # type: ignore[union-attr]
            elif kind is ToolCallDelta or kind is Finish:
                self._textual = False
        if events and type(events[-1]) is UpstreamError and self._resumable():
            self._held = events[-1]
            return events[:-1]
        return events

    def _resumable(self) -> bool:
        if not self._textual or len(self._continuations) >= self._max:
            return False
        return any(not piece.isspace() for piece in self._text if piece)

    async def _resume(self, error: UpstreamError) -> list[Event]:
        """Continue the answer on a backup: its first events, or `[error]` when none could."""
        sent = "".join(self._text)
        self._text = [sent]
        prefix = sent.rstrip()
        answered = self._answer_attempts()
        exclude = frozenset(
            attempt.deployment
            for race in self._races()
            for attempt in race.record.attempts
            if attempt.error is not None or attempt.outcome in ("failed", "timed_out")
        )
        produced = sum(attempt.output_tokens for attempt in answered)
        candidates, opener = self._continuer(prefix, produced, exclude)
        if not candidates:
            return [error]
        base = self._race.plan
        plan = RacePlan(
            request_id=base.request_id,
            route=base.route,
            strategy="fallback",
            candidates=candidates,
            k=1,
            prompt_estimate=base.prompt_estimate + len(prefix) // 4,
            region=base.region,
        )
        race = Race(plan, opener, rng=self._rng, queue_size=self._queue_size)
        self._continuations.append((race, answered[-1].deployment))
        outcome = await race.first()
        if type(outcome) is not Winner:  # every candidate failed before its first token
            return [error]
        self._reading = race
        self._seam = Seam(sent[len(prefix) :], carried_usage(answered))
        return self._observe(self._seam.filter(outcome.events))

    def _races(self) -> list[Race]:
        return [self._race, *(race for race, _ in self._continuations)]

    def _answer_attempts(self) -> list[AttemptRecord]:
        """The attempts whose output the answer carries, in order (each race's winner)."""
        return [
            attempt
            for race in self._races()
            for attempt in race.record.attempts
            if attempt.outcome == "won"
        ]

    async def aclose(self, client_gone: bool = False) -> None:
        for race, _ in self._continuations:
            await race.aclose(client_gone=client_gone and race is self._reading)

    def merge(self, record: RaceRecord) -> None:
        """Add the continuations' attempts (offsets from the request's start) to `record`;
        the stream's outcome is then that of the continuation that carried it last."""
        for race, resumed_from in self._continuations:
            offset = race.started_at - self._race.started_at
            for attempt in race.record.attempts:
                attempt.start_offset_s += offset
                if attempt.end_offset_s is not None:
                    attempt.end_offset_s += offset
                attempt.resumed_from = resumed_from
                record.attempts.append(attempt)
        record.resumes = len(self._continuations)
        if self._reading is not self._race:
            record.stream_outcome = self._reading.record.stream_outcome
