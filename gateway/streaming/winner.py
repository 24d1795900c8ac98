"""A race's winner after its first token: its stream, read by the caller's task.

The race hands the winner's stream over at its first token; from there the task that
writes to the client reads it itself, batch by batch (`read`: a `DirectReader` with the
idle watchdog, made at the first read), or lets the fast relay forward it while the
relay can (`relay`, asked before every batch; `streaming/relay.py`). The race keeps the
accounting and decides when the stream is done.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from gateway.streaming.attempt import AttemptState, DirectReader, finished, stalled
from gateway.streaming.events import Event
from gateway.streaming.relay import Framer, Relay, open_relay, relayable


class WinnerStream:
    __slots__ = ("_attempt", "_no_relay", "_reader", "_relay")

    def __init__(self, attempt: AttemptState) -> None:
        assert attempt.handed_over and attempt.stream is not None
        self._attempt = attempt
        self._reader: DirectReader | None = None
        self._relay: Relay | None = None  # the last fast relay run over the stream
        self._no_relay = False  # its decoder can never hand it over

    async def read(self) -> list[Event] | None:
        """The next batch; None at the clean end (see `DirectReader.read`)."""
        attempt = self._attempt
        idle_s = attempt.candidate.idle_timeout_s
        reader = self._reader
        if reader is None:
            assert attempt.stream is not None
            reader = self._reader = DirectReader(attempt.stream, idle_s)
        relay = self._relay
        if relay is not None and relay.stalled:  # the upstream went idle under the relay
            self._relay = None
            return [stalled(idle_s)]
        return await reader.read()

    def relay(self, frame_of: Callable[[], Framer | None]) -> Relay | None:
        """The fast relay over the stream, if it can take over now; None when it cannot.
        A stream whose decoder can never hand over is not asked again."""
        if self._no_relay:
            return None
        attempt = self._attempt
        if not attempt.sources or not relayable(attempt.sources[-1]):
            self._no_relay = True
            return None
        idle_s = attempt.candidate.idle_timeout_s
        relay = open_relay(attempt.sources[-1], frame_of, attempt.record, idle_s)
        if relay is not None:
            self._relay = relay
        return relay

    def closing(self) -> Coroutine[Any, Any, None] | None:
        """What closing the stream takes; None when it was read to its end (its generator
        holds no frame: nothing to close, and no task needed for the closing)."""
        reader = self._reader
        if reader is not None:
            return None if reader.closed_already() else reader.aclose()
        stream = self._attempt.stream
        return None if stream is None or finished(stream) else stream.aclose()
