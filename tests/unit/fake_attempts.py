"""Scripted fake upstream attempts for the race engine tests.

No sockets and no sleeps: every fake attempt is an async generator that waits
on an `asyncio.Queue` of commands fed by the test ("batch", "end", "hang",
"raise"), so the test decides exactly which attempt advances and when. Each
fake records whether it was opened, whether its `finally` ran, and whether it
was closed by cancellation (CancelledError) or by `aclose()` (GeneratorExit).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from gateway.streaming.accounting import RaceRecord
from gateway.streaming.attempt import on_cut
from gateway.streaming.events import Event, UpstreamError
from gateway.streaming.plan import Candidate

Command = tuple[str, object]
# What an aborted body reads as: the stream ends before its end (see `cut_ends_stream`).
CUT = UpstreamError(502, "upstream_stream_truncated", "cut by the race", True)


@dataclass(slots=True)
class LogEntry:
    """One thing a fake did, in global order across all fakes of a test."""

    name: str
    kind: str  # "open" | "batch" | "end" | "closed"
    events: list[Event] = field(default_factory=list)


class FakeAttempt:
    """One upstream attempt whose every step is triggered by the test."""

    def __init__(self, name: str, upstreams: FakeUpstreams) -> None:
        self.name = name
        self._upstreams = upstreams
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.opens = 0
        self.saw_cancel = False
        self.saw_generator_exit = False
        self.yielded: list[list[Event]] = []

    # -- test side ---------------------------------------------------------

    def send(self, *events: Event) -> None:
        """Make the attempt yield one batch."""
        self.commands.put_nowait(("batch", list(events)))

    def fail(
        self,
        status: int = 500,
        type_: str = "server_error",
        message: str = "upstream exploded",
        retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> UpstreamError:
        """Make the attempt yield a batch holding only an UpstreamError (as stream_events does)."""
        error = UpstreamError(status, type_, message, retryable, retry_after_s=retry_after_s)
        self.send(error)
        return error

    def end(self) -> None:
        """Make the attempt's stream end cleanly."""
        self.commands.put_nowait(("end", None))

    def hang(self) -> None:
        """Make the attempt wait forever (it still waits forever on an empty queue)."""
        self.commands.put_nowait(("hang", None))

    def raise_(self, exc: BaseException) -> None:
        """Make the attempt's stream raise (e.g. a decoder error)."""
        self.commands.put_nowait(("raise", exc))

    @property
    def started(self) -> bool:
        return self.opened.is_set()

    @property
    def finished(self) -> bool:
        """Its `finally` ran."""
        return self.closed.is_set()

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.yielded for event in batch]

    # -- engine side -------------------------------------------------------

    async def stream(self) -> AsyncGenerator[list[Event], None]:
        self.opens += 1
        self.opened.set()
        ups = self._upstreams
        if ups.cut_ends_stream:  # as a transport does once its response is open
            on_cut(lambda: self.commands.put_nowait(("batch", [CUT])))
        ups.log.append(LogEntry(self.name, "open"))
        ups.live += 1
        ups.max_live = max(ups.max_live, ups.live)
        try:
            while True:
                kind, arg = await self.commands.get()
                if kind == "batch":
                    assert isinstance(arg, list)
                    self.yielded.append(arg)
                    ups.log.append(LogEntry(self.name, "batch", arg))
                    yield arg
                elif kind == "end":
                    ups.log.append(LogEntry(self.name, "end"))
                    return
                elif kind == "hang":
                    await asyncio.get_running_loop().create_future()
                elif kind == "raise":
                    assert isinstance(arg, BaseException)
                    raise arg
        except asyncio.CancelledError:
            self.saw_cancel = True
            raise
        except GeneratorExit:
            self.saw_generator_exit = True
            raise
        finally:
            ups.live -= 1
            ups.log.append(LogEntry(self.name, "closed"))
            self.closed.set()


class FakeUpstreams:
    """A set of named fake attempts and the `opener` the engine calls."""

    def __init__(self, *names: str, cut_ends_stream: bool = False) -> None:
        """`cut_ends_stream`: a cut (the race dropping the attempt's connection) ends the
        fake's stream as an aborted body ends: after what was already sent, with `CUT`."""
        self.cut_ends_stream = cut_ends_stream
        self.attempts = {name: FakeAttempt(name, self) for name in names}
        self.opened: list[str] = []  # opener calls, in order
        self.log: list[LogEntry] = []
        self.live = 0  # opened and not yet closed
        self.max_live = 0

    def __getitem__(self, name: str) -> FakeAttempt:
        return self.attempts[name]

    def opener(self, candidate: Candidate) -> AsyncGenerator[list[Event], None]:
        self.opened.append(candidate.name)
        return self.attempts[candidate.name].stream()

    def unclosed(self) -> list[str]:
        """Names of fakes that were opened but whose `finally` has not run."""
        return [n for n, a in self.attempts.items() if a.started and not a.finished]


class RecordingObserver:
    def __init__(self) -> None:
        self.records: list[RaceRecord] = []

    def on_race_end(self, record: RaceRecord) -> None:
        self.records.append(record)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def settle(rounds: int = 12) -> None:
    """Let every ready callback run (a few loop iterations); no wall-clock wait."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def wait_set(event: asyncio.Event, guard_s: float = 5.0) -> None:
    """Wait for a timer-driven state change; `guard_s` only turns a hang into a failure."""
    await asyncio.wait_for(event.wait(), guard_s)
