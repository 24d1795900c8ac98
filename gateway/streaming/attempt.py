"""One attempt, read to its first token, then, for the winner, read directly by the
request's own task.

`run_here` opens an attempt in the calling task and reads it to its first token. An
attempt that can have no company (one at a time, no backup or heartbeat to wake for) is
run so in the request's task itself: no task of its own, no queue hop. Otherwise each
attempt has its own task (`Race._run`), which hands its first-token batch to the race's
queue and waits for the verdict: the winner's stream is handed over to a `DirectReader`,
so every later chunk costs one task step, not a queue hop between two tasks.

Before the first token the attempt has `ttft_timeout_s` in all. The reader's idle
watchdog fails the stream when the upstream sends nothing for `idle_timeout_s`; time
spent waiting for a slow client does not count. The watchdog is one timer per idle
period, not per chunk: the hot path only stamps the time of the last batch.

Cutting a loser: cancelling its task only queues the cancellation behind every callback
already ready, which under saturation is the winner's work, while the loser's socket
keeps receiving. So the connection an attempt's request is sent on registers how to
drop it (`on_cut`, through a context variable set while the attempt is opened,
`Collecting`), and the race calls that in the same loop iteration as it decides the
winner.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextvars import ContextVar
from typing import NamedTuple, Protocol

from aiohttp import StreamReader

from gateway.streaming.accounting import AttemptRecord
from gateway.streaming.adapter import StreamDecoder
from gateway.streaming.events import Event, UpstreamError, is_token
from gateway.streaming.plan import Candidate

MAX_PENDING_EVENTS = 64  # non-token events kept per attempt before its first token

# The cut callbacks of the attempt whose task is running; None outside an attempt's task.
_CUTS: ContextVar[list[Callable[[], None]] | None] = ContextVar("attempt_cuts", default=None)
# Where the attempt's transport offers its stream to the fast relay (streaming/relay.py).
_SOURCES: ContextVar[list[RelaySource] | None] = ContextVar("attempt_sources", default=None)
# Told when the attempt's stream opens (the race may watch it from its first byte).
_OPENED: ContextVar[Callable[[], None] | None] = ContextVar("attempt_opened", default=None)


class TokenWatcher(Protocol):
    def stop(self) -> None: ...


class RelaySource(NamedTuple):
    """An open upstream stream as the fast relay can take it over: the response body's
    reader and the decoder reading it (which says when the relay may take over)."""

    reader: StreamReader
    decoder: StreamDecoder


def on_cut(callback: Callable[[], None]) -> None:
    """Called by the transport for each connection an attempt's request is sent on:
    `callback` drops it at once (synchronously) if the attempt loses. Outside an
    attempt's task (a direct call, a test) it does nothing."""
    cuts = _CUTS.get()
    if cuts is not None:
        cuts.append(callback)


def offer_source(reader: StreamReader, decoder: StreamDecoder) -> None:
    """Called by the transport once an attempt's stream is open and decoded by `decoder`:
    if the attempt wins, the race may relay the stream (outside an attempt: nothing)."""
    sources = _SOURCES.get()
    if sources is not None:
        sources.append(RelaySource(reader, decoder))
        opened = _OPENED.get()
        if opened is not None:
            opened()


class Collecting:
    """While an attempt's stream is opened: where `on_cut` and `offer_source` append.
    Undone on exit, so nothing opened later in the same task (another attempt, a
    resume) appends here."""

    __slots__ = ("_cuts", "_opened", "_sources")

    def __init__(
        self,
        cuts: list[Callable[[], None]],
        sources: list[RelaySource],
        opened: Callable[[], None] | None = None,
    ) -> None:
        self._cuts = _CUTS.set(cuts)
        self._sources = _SOURCES.set(sources)
        self._opened = _OPENED.set(opened)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        _CUTS.reset(self._cuts)
        _SOURCES.reset(self._sources)
        _OPENED.reset(self._opened)


def cut_now(cuts: list[Callable[[], None]]) -> None:
    """Drop an attempt's upstream connection in this loop iteration (a loser, a failure)."""
    while cuts:
        cuts.pop()()


def stalled(idle_timeout_s: float) -> UpstreamError:
    message = f"upstream stalled for more than {idle_timeout_s:g}s"
    return UpstreamError(504, "upstream_timeout", message, True)


def stream_failed(exc: Exception) -> UpstreamError:
    """A decoder or transport bug must end the attempt, not hang the race."""
    message = f"upstream stream failed: {type(exc).__name__}"
    return UpstreamError(502, "upstream_protocol_error", message, True)


class _IdleWatchdog:
    __slots__ = ("_handle", "_idle", "_loop", "_task", "fired", "last", "waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop, idle_s: float) -> None:
        self._loop = loop
        self._idle = idle_s
        self._task = asyncio.current_task()
        self.last = loop.time()
        self.waiting = False  # blocked on the client's pace, not the upstream's
        self.fired = False
        self._handle = loop.call_later(idle_s, self._check)

    def _check(self) -> None:
        remaining = self.last + self._idle - self._loop.time()
        if self.waiting or remaining > 0:
            self._handle = self._loop.call_later(max(remaining, self._idle / 4), self._check)
            return
        self.fired = True
        if self._task is not None:
            self._task.cancel()

    def cancel(self) -> None:
        self._handle.cancel()


def open_attempt(
    attempt: AttemptState, opener: Callable[[Candidate], AsyncGenerator[list[Event], None]]
) -> AsyncGenerator[list[Event], None]:
    """Open `attempt`'s stream. Its request may go out at once (the opener sends on an idle
    keep-alive connection): that connection's cut is collected here, so the race drops it
    even if the stream is never read (the client left first)."""
    with Collecting(attempt.cuts, attempt.sources):
        stream = attempt.stream = opener(attempt.candidate)
    return stream


async def run_here(
    attempt: AttemptState,
    opener: Callable[[Candidate], AsyncGenerator[list[Event], None]],
    watch: Callable[[], None] | None = None,
    opened: Callable[[], None] | None = None,
) -> list[Event] | UpstreamError | None:
    """Open `attempt` in the calling task (unless `open_attempt` did) and read it to its
    first token (`first_token`), its cuts and sources collected meanwhile (`opened` is
    called when its stream opens): the batch with that token (the stream, as
    `attempt.stream`, is then the caller's to close), or the error or clean end that came
    first (the stream is closed)."""
    stream = attempt.stream or open_attempt(attempt, opener)
    kept = False
    try:
        with Collecting(attempt.cuts, attempt.sources, opened):
            batch = await first_token(attempt, stream, watch)
        kept = isinstance(batch, list)
    except Exception as exc:
        batch = stream_failed(exc)
    finally:
        if not kept:
            await stream.aclose()
    return batch


async def first_token(
    attempt: AttemptState,
    stream: AsyncGenerator[list[Event], None],
    watch: Callable[[], None] | None = None,
) -> list[Event] | UpstreamError | None:
    """Read `stream` up to the batch holding its first token and return that batch; or
    the error that ended it before, or None for a clean end without a token. The events
    before the first token are kept in `attempt.pending` (at most MAX_PENDING_EVENTS, the
    last ones), not sent: nobody needs to wake up for a role chunk or a keep-alive.
    `watch` is called after each batch without a token (the race may then watch the body
    for its first token as the parser feeds it, `relay.TokenWatch`). The TTFT deadline is
    `attempt.deadline` while this runs, so a token the watch saw can lift it."""
    loop = asyncio.get_running_loop()
    record, pending = attempt.record, attempt.pending
    ttft_timeout_s = attempt.candidate.ttft_timeout_s
    deadline = attempt.deadline = asyncio.timeout(ttft_timeout_s)
    try:
        async with deadline:
            while True:
                batch = await anext(stream)
                for event in batch:
                    if is_token(event):
                        if record.ttft_s is None:  # the race's token watch may have seen it
                            record.ttft_s = loop.time() - attempt.started_at
                        return batch
                for event in batch:
                    if type(event) is UpstreamError:  # it ends the stream
                        return event
                pending.extend(batch)
                del pending[:-MAX_PENDING_EVENTS]
                if watch is not None:
                    watch()
    except StopAsyncIteration:
        return None
    except TimeoutError:
        record.outcome = "timed_out"
        message = f"no first token within {ttft_timeout_s:g}s"
        return UpstreamError(504, "upstream_timeout", message, True)
    finally:
        # The deadline refers to this task, and a cancelled task keeps this frame (through
        # its exception's traceback): neither the frame nor the attempt keeps it after.
        del deadline
        attempt.deadline = None


class DirectReader:
    """The winner's stream, read by the task that writes to the client.

    `read()` is awaited from that task only; its watchdog cancels that task when the
    upstream is idle too long, and turns the cancellation into an error batch.
    """

    __slots__ = ("_base", "_idle_s", "_loop", "_stream", "_task", "_watchdog")

    def __init__(self, stream: AsyncGenerator[list[Event], None], idle_timeout_s: float) -> None:
        self._stream = stream
        self._idle_s = idle_timeout_s
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._base = self._task.cancelling() if self._task is not None else 0
        self._watchdog = _IdleWatchdog(self._loop, idle_timeout_s)
        self._watchdog.waiting = True  # until read() is awaited, the pace is the client's

    async def read(self) -> list[Event] | None:
        """The next batch; None at the clean end; an error batch ends the stream."""
        watchdog = self._watchdog
        watchdog.last = self._loop.time()
        watchdog.waiting = False
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            task = self._task
            if watchdog.fired and task is not None and task.uncancel() <= self._base:
                return [stalled(self._idle_s)]
            raise
        except Exception as exc:
            return [stream_failed(exc)]
        finally:
            watchdog.waiting = True

    async def aclose(self) -> None:
        self._watchdog.cancel()
        await self._stream.aclose()

    def closed_already(self) -> bool:
        """True, with the watchdog stopped, when the stream has ended (its generator ran to
        its end, so `aclose()` has nothing left to do): no task is needed to close it."""
        if not finished(self._stream):
            return False
        self._watchdog.cancel()
        return True


def finished(stream: AsyncGenerator[list[Event], None]) -> bool:
    """The generator ran to its end (or was closed): it holds no frame, nothing to clean."""
    return getattr(stream, "ag_frame", True) is None


class AttemptState:
    """What the race keeps of one attempt: its candidate, record, task and stream, and
    the events it sent before its first token."""

    __slots__ = (
        "candidate",
        "cuts",
        "deadline",
        "done",
        "handed_over",
        "pending",
        "record",
        "sources",
        "started_at",
        "stream",
        "task",
        "verdict",
        "watch",
    )

    def __init__(self, candidate: Candidate, record: AttemptRecord, started_at: float) -> None:
        self.candidate = candidate
        self.record = record
        self.started_at = started_at
        self.pending: list[Event] = []
        self.cuts: list[Callable[[], None]] = []  # drop its upstream connection at once
        self.sources: list[RelaySource] = []  # its stream, as the fast relay can take it
        self.watch: TokenWatcher | None = None  # its body watched for the first token
        self.deadline: asyncio.Timeout | None = None  # its TTFT deadline, while it runs
        self.done = False
        self.task: asyncio.Task[None] | None = None
        self.stream: AsyncGenerator[list[Event], None] | None = None
        self.verdict: asyncio.Future[bool] | None = None  # resolved True: hand the stream over
        self.handed_over = False  # the race reads the stream itself (DirectReader)

    def lift_deadline(self) -> None:
        """Its first token is in hand (the race's token watch saw it): the TTFT deadline
        no longer applies, however late its task gets round to reading it."""
        deadline = self.deadline
        if deadline is not None and not deadline.expired():
            deadline.reschedule(None)

    def release(self) -> None:
        """Drop what ties the attempt to its task, stream and callbacks once its race is
        closed: each of them refers back to the attempt or its race, and a race left as a
        reference cycle waits for the cyclic collector, whose pauses under load (tens of
        ms for a young generation full of races) delay every stream and every cut."""
        self.task = None
        self.stream = None
        self.verdict = None
        self.watch = None
        self.deadline = None
        self.cuts.clear()
        self.sources.clear()
