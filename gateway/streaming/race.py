"""The race engine: start attempts by strategy, forward the first real token, cancel the rest.

Strategies (race, hedge, fallback, weighted) differ only in how many attempts
start at once and when the next one starts; everything else is shared. The
engine knows nothing of wire formats: an attempt is any async iterator of
event batches (`Opener`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from gateway.strategy import SPECULATIVE
from gateway.streaming.accounting import (
    AttemptRecord,
    RaceObserver,
    RaceRecord,
    account,
    stream_outcome,
)
from gateway.streaming.attempt import AttemptState, cut_now, open_attempt, run_here
from gateway.streaming.events import Event, Finish, UpstreamError, is_token
from gateway.streaming.plan import (
    HEARTBEAT,
    AllFailed,
    Heartbeat,
    Opener,
    RacePlan,
    Winner,
    ordered_candidates,
)
from gateway.streaming.policy import LoadBudget, choose_error
from gateway.streaming.relay import Framer, Relay, watch_for_token
from gateway.streaming.winner import WinnerStream
from gateway.value_class import value_class


@value_class
class _End:
    error: UpstreamError | None


class Race:
    """One request's race. Use `first()` until a Winner/AllFailed, then `next_batch()`;
    always `aclose()` in a finally block."""

    def __init__(
        self,
        plan: RacePlan,
        opener: Opener,
        *,
        budget: LoadBudget | None = None,
        observer: RaceObserver | None = None,
        rng: random.Random | None = None,
        queue_size: int = 64,
    ) -> None:
        self.plan = plan
        self._opener = opener
        self._budget = budget
        self._observer = observer
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()
        self._order = ordered_candidates(plan, rng or random.Random())
        self._next = 0
        self._attempts: list[AttemptState] = []
        self._errors: list[tuple[str, UpstreamError]] = []
        self._winner: AttemptState | None = None
        self._claimed = False  # an attempt has seen its first token (its batch is queued)
        self._stream_done = False
        self._after: WinnerStream | None = None  # the winner's stream, once handed over
        self._closed = False
        self._next_hedge_at: float | None = None
        self._heartbeat_at = self._t0 + plan.heartbeat_after_s if plan.heartbeat_after_s else None
        self.record = RaceRecord(plan.request_id, plan.route, plan.strategy, plan.region)
        self._speculative_ok = plan.strategy in SPECULATIVE and plan.k > 1
        # One attempt at a time and nothing to wake for meanwhile (no backup, no
        # heartbeat): each attempt runs to its first token in the caller's own task
        # (`_first_here`), saving a task and two loop hops on the way to the first token.
        self._here = not self._speculative_ok and self._heartbeat_at is None
        # Where attempt tasks hand their first batches over (none run when all run here).
        self._queue: asyncio.Queue[tuple[AttemptState, list[Event] | _End]] | None = (
            None if self._here else asyncio.Queue(queue_size)
        )
        self._waiting: AttemptState | None = None  # started here, not run yet
        if budget is not None:
            budget.note_request()

    @property
    def started_at(self) -> float:
        """When the race began (the loop's clock): attempt offsets count from here."""
        return self._t0

    # -- starting attempts -------------------------------------------------

    def _begin(self) -> None:
        self._start_next(speculative=False)
        if self.plan.strategy == "race":
            extra = min(self.plan.k, len(self._order)) - 1
            for started in range(extra):
                if not self._spend(wanted=extra - started):
                    break
                self._start_next(speculative=True)

    def start(self) -> None:
        """Begin now when the attempts run in the caller's task: the first is opened at
        once (`_start_next`), so on an idle connection its request leaves before the
        caller's remaining set-up. A race's attempts still open in their tasks (sent
        together, equal TTFTs tie: docs/architecture.md)."""
        if self._here and not self._attempts:
            self._begin()

    def _spend(self, wanted: int = 1) -> bool:
        """May one speculative attempt start? A refusal counts the `wanted` attempts it stops."""
        if not self._speculative_ok:
            return False
        budget = self._budget
        if budget is None or not budget.covers(self.plan.strategy) or budget.try_spend():
            return True
        self.record.budget_refused += wanted
        offset = self._loop.time() - self._t0
        for candidate in self._order[self._next : self._next + wanted]:
            self.record.refused.append((candidate.name, offset))
        self._speculative_ok = False  # degraded to one attempt with fallback
        return False

    def _start_next(self, speculative: bool) -> bool:
        if self._closed or self._next >= len(self._order):  # nothing starts after aclose()
            return False
        candidate = self._order[self._next]
        self._next += 1
        now = self._loop.time()
        record = AttemptRecord(
            deployment=candidate.name,
            start_offset_s=now - self._t0,
            price_input=candidate.price_input,
            price_output=candidate.price_output,
            prompt_estimate=self.plan.prompt_estimate,
            speculative=speculative,
        )
        attempt = AttemptState(candidate, record, now)
        if self._here:
            open_attempt(attempt, self._opener)  # its request may leave now (`start`)
            self._waiting = attempt
        else:
            attempt.task = self._loop.create_task(
                self._run(attempt), name=f"attempt:{candidate.name}"
            )
        self._attempts.append(attempt)
        self.record.attempts.append(record)
        if self.plan.strategy == "hedge" and self._speculative_ok:
            self._next_hedge_at = now + candidate.hedge_delay_s
        return True

    def _running(self) -> int:
        return sum(1 for a in self._attempts if not a.done)

    # -- one attempt -------------------------------------------------------

    async def _run(self, attempt: AttemptState) -> None:
        """An attempt in its own task: to its first token, then its batch goes to the
        race's queue and it waits for the verdict (a loser is cancelled meanwhile)."""
        queue = self._queue
        assert queue is not None  # attempt tasks run only when not all run here
        verdict = attempt.verdict = self._loop.create_future()
        watch = opened = None
        if self._speculative_ok:
            watch = lambda: self._watch(attempt)  # noqa: E731
            opened = lambda: self._watch(attempt, at_open=True)  # noqa: E731
        item: list[Event] | UpstreamError | None = None
        try:
            item = await run_here(attempt, self._opener, watch, opened)
            if isinstance(item, list):
                self._first_token_seen(attempt)  # in this task step: cut the others now
                await queue.put((attempt, item))
                await verdict
                return
        finally:
            if attempt.watch is not None:
                attempt.watch.stop()
            if isinstance(item, list) and not attempt.handed_over and attempt.stream:
                await attempt.stream.aclose()  # a loser, or the client left meanwhile
        await queue.put((attempt, _End(item)))

    def _first_token_seen(self, attempt: AttemptState) -> None:
        """The first attempt to see a token will be declared the winner (its batch is
        the first token batch in the queue): drop the others' connections now, in the
        iteration the token arrived, rather than after the request's task has run.
        They are cancelled here, not when the winner is declared: a cut attempt whose
        task runs before the winner's (its body's end, which the cut caused, already
        ready) must not reach the race as a failure of its deployment."""
        if attempt.watch is not None:
            attempt.watch.stop()
        if self._winner is not None or self._claimed or attempt.done:
            return  # a cancelled or failed attempt never claims
        self._claimed = True
        self._next_hedge_at = None  # a backup for an answer with its first token: none
        now = self._loop.time()
        if attempt.record.ttft_s is None:  # when the token came, not when its task ran
            attempt.record.ttft_s = now - attempt.started_at
        attempt.lift_deadline()  # its token is in hand, however late its task reads it
        for other in self._attempts:
            if other is not attempt and not other.done:
                self._cancel(other, now)

    def _watch(self, attempt: AttemptState, at_open: bool = False) -> None:
        """Watch an attempt's body for its first token (`relay.watch_for_token`) while
        others run beside it; once, when its decoder can tell what a token looks like
        (from the stream's opening for a decoder the watch can shadow)."""
        if attempt.watch is None and attempt.sources and not self._claimed:
            first_token = lambda: self._first_token_seen(attempt)  # noqa: E731
            attempt.watch = watch_for_token(attempt.sources[-1], first_token, at_open)

    # -- before the winner -------------------------------------------------

    async def first(self) -> Winner | AllFailed | Heartbeat:
        """Wait for the winner (or total failure); returns HEARTBEAT when one is due."""
        if not self._attempts:
            self._begin()
        if self._here:
            return await self._first_here()
        queue = self._queue
        assert queue is not None
        while True:
            if self._running() == 0 and not self._start_next(speculative=False):
                return self._all_failed()
            deadline = self._deadline()
            try:
                if deadline is None:
                    attempt, item = await queue.get()
                else:
                    async with asyncio.timeout_at(deadline):
                        attempt, item = await queue.get()
            except TimeoutError:
                now = self._loop.time()
                if self._next_hedge_at is not None and now >= self._next_hedge_at:
                    self._next_hedge_at = None
                    if (
                        self._running() < self.plan.k
                        and self._next < len(self._order)
                        and self._spend()
                    ):
                        self._start_next(speculative=True)
                if self._heartbeat_at is not None and now >= self._heartbeat_at:
                    self._heartbeat_at = now + max(self.plan.heartbeat_after_s or 0, 0.05)
                    return HEARTBEAT
                continue
            if attempt.done:
                continue  # stale item from an attempt already failed or cancelled
            if type(item) is _End:
                outcome = self._ended_without_token(attempt, item.error)
                if outcome is not None:
                    return outcome
                continue
            assert isinstance(item, list)  # the batch with the attempt's first token
            winner = self._first_batch(attempt, item)
            if winner is not None:
                return winner

    async def _first_here(self) -> Winner | AllFailed:
        """`first()` when each attempt runs in this task: one after the other, each to its
        first token (its stream then stays with the race) or its end."""
        while (attempt := self._waiting) is not None:
            self._waiting = None
            item = await run_here(attempt, self._opener)
            if isinstance(item, list):
                winner = self._first_batch(attempt, item)
                if not attempt.handed_over and attempt.stream is not None:
                    await attempt.stream.aclose()  # it failed with or right after its token
                if winner is not None:
                    return winner
            else:
                winner = self._ended_without_token(attempt, item)
                if winner is not None:
                    return winner
        return self._all_failed()  # _fail started the next one while there was one

    def _first_batch(self, attempt: AttemptState, batch: list[Event]) -> Winner | None:
        """An attempt's first-token batch: it wins, or an error before its token fails it."""
        for event in batch:
            if type(event) is UpstreamError:
                self._fail(attempt, event)
                return None
            if is_token(event):
                return self._declare(attempt, attempt.pending + batch, live=True)
        return None

    def _deadline(self) -> float | None:
        times = [t for t in (self._next_hedge_at, self._heartbeat_at) if t is not None]
        return min(times) if times else None

    def _ended_without_token(
        self, attempt: AttemptState, error: UpstreamError | None
    ) -> Winner | None:
        if error is None and any(type(e) is Finish for e in attempt.pending):
            # A complete answer with no output (e.g. content filtered): a valid result.
            winner = self._declare(attempt, attempt.pending)
            self._stream_done = True
            attempt.done = True
            return winner
        self._fail(
            attempt,
            error or UpstreamError(502, "upstream_error", "upstream ended without output", True),
        )
        return None

    def _fail(self, attempt: AttemptState, error: UpstreamError) -> None:
        attempt.done = True
        if attempt.record.outcome == "running":
            attempt.record.outcome = "failed"
        attempt.record.error = error
        attempt.record.end_offset_s = self._loop.time() - self._t0
        self._errors.append((attempt.candidate.name, error))
        if attempt.task is not None and not attempt.task.done():
            attempt.task.cancel()  # closes its upstream connection
        self._start_next(speculative=False)  # a failure before the first token is invisible

    def _declare(self, attempt: AttemptState, events: list[Event], live: bool = False) -> Winner:
        """`live`: the attempt waits for its verdict after its first token (in its task, or
        in the caller's when it ran there)."""
        now = self._loop.time()
        self._winner = attempt
        self._next_hedge_at = None
        self._heartbeat_at = None
        attempt.record.outcome = "won"
        if attempt.record.ttft_s is None:
            attempt.record.ttft_s = now - attempt.started_at
        self.record.winner = attempt.candidate.name
        self.record.ttft_s = now - self._t0
        events = self._account(attempt, events)
        if self._stream_done and attempt.task is not None:  # failed right after its token
            attempt.task.cancel()
        if live and not self._stream_done:
            attempt.handed_over = True
            if attempt.verdict is not None:  # its pump waits in its own task
                attempt.verdict.set_result(True)
        for other in self._attempts:
            if other is not attempt and not other.done:
                self._cancel(other, now)
        return Winner(attempt.candidate.name, events)

    def _cancel(self, attempt: AttemptState, now: float) -> None:
        attempt.done = True
        if attempt.record.outcome == "running":
            attempt.record.outcome = "cancelled"
            if attempt.record.ttft_s is None:
                attempt.record.censored_ttft_s = now - attempt.started_at
        attempt.record.end_offset_s = now - self._t0
        self._account(attempt, attempt.pending)  # a loser's usage, when it reported one
        cut_now(attempt.cuts)  # now, not when its task's cancellation comes round
        if attempt.task is not None:
            attempt.task.cancel()

    def _all_failed(self) -> AllFailed:
        error = choose_error([e for _, e in self._errors])
        self.record.status = error.status
        return AllFailed(error, list(self._errors))

    # -- after the winner --------------------------------------------------

    async def next_batch(self) -> list[Event] | None:
        """The winner's next events; None at its clean end. An UpstreamError ends the stream.

        The winner's stream was handed over at its first token, so this reads it in the
        caller's task; chunks that arrived together come out as one batch (one write).
        """
        winner = self._winner
        if winner is None or self._stream_done:
            return None
        after = self._follow(winner)
        batch = await after.read()
        if batch is None:  # the clean end
            self._stream_done = True
            winner.done = True
            return None
        events = self._account(winner, batch)
        if self._stream_done and (closing := after.closing()) is not None:
            await closing  # a mid-stream error: drop the upstream connection at once
        return events

    def relay(self, frame_of: Callable[[], Framer | None]) -> Relay | None:
        """The fast relay over the winner's stream, if it can take over now (see
        `streaming/relay.py`); None when it cannot. The caller runs it, then goes on
        with `next_batch()`. A stream whose decoder can never hand over is not asked
        again (the general path asks before every batch)."""
        winner = self._winner
        if winner is None or self._stream_done or not winner.handed_over:
            return None
        return self._follow(winner).relay(frame_of)

    def _follow(self, winner: AttemptState) -> WinnerStream:
        """The handed-over winner's stream (made at the first ask)."""
        if self._after is None:
            self._after = WinnerStream(winner)
        return self._after

    def _account(self, attempt: AttemptState, events: list[Event]) -> list[Event]:
        """Account an attempt's events (`accounting.account`); an UpstreamError ends the
        attempt (and the events after it are dropped)."""
        end = account(attempt.record, events)
        if end < 0:
            return events
        attempt.done = True
        if attempt is self._winner:
            self._stream_done = True
        return events[:end]

    # -- cleanup -----------------------------------------------------------

    async def aclose(self, client_gone: bool = False) -> RaceRecord:
        """Cancel whatever still runs, wait for it, and report the record once."""
        if self._closed:
            return self.record
        self._closed = True
        now = self._loop.time()
        tasks = []
        for attempt in self._attempts:
            if attempt.task is not None and not attempt.task.done():
                if not attempt.done and attempt is not self._winner:
                    self._cancel(attempt, now)
                attempt.task.cancel()
                tasks.append(attempt.task)
            elif self._here and not attempt.done and attempt is not self._winner:
                self._cancel(attempt, now)  # the client left while it ran in its task
        record = self.record
        record.total_s = now - self._t0
        winner_record = None if self._winner is None else self._winner.record
        if winner_record is not None:
            winner_record.end_offset_s = now - self._t0
        record.stream_outcome = stream_outcome(winner_record, self._stream_done, client_gone)
        closing: list[Any] = list(tasks)
        winner = self._winner
        if winner is not None and winner.handed_over and winner.stream is not None:
            # a stream read to its end needs no closing (and so no task for the closing)
            if (close := self._follow(winner).closing()) is not None:
                closing.append(close)
        try:
            if closing:
                await asyncio.shield(asyncio.gather(*closing, return_exceptions=True))
        finally:
            for attempt in self._attempts:
                attempt.release()
            if self._observer is not None:
                self._observer.on_race_end(record)
        return record
