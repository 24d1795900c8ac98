"""One admitted request's answer, and who asked for it.

`Answer` wraps the race (or, on a `resume: true` route, the resumer around it): the first
outcome, the further batches with the governance output transform applied and upstream
errors scrubbed of secrets, and `aclose()`, which records the request once to every sink.
The pipeline (`pipeline.py`) builds it; the server's front doors drive it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field

from gateway.config.model import KeyConfig
from gateway.governance.gate import OutputTransform
from gateway.metrics import GatewayMetrics
from gateway.record import RecordSink, RequestRecord
from gateway.scrub import Scrubber
from gateway.sinks import emit
from gateway.streaming.events import Event, ResponseMeta, UpstreamError
from gateway.streaming.plan import AllFailed, Heartbeat, Winner
from gateway.streaming.race import Race
from gateway.streaming.relay import Framer, Relay
from gateway.streaming.resume import Resumer
from gateway.value_class import value_class


@value_class
class Caller:
    """Who asks: the request id, the gateway key's id (never the key), the request headers
    (region, reasoning hint), when the request arrived (`time.perf_counter()`), and the
    key's scope and policy (None: no key, as when auth is off)."""

    request_id: str
    key_id: str = "anonymous"
    headers: Mapping[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    key: KeyConfig | None = None


class Answer:
    """One admitted request's answer. `first()` until a Winner or AllFailed (a Heartbeat
    means: no winner yet, keep the client alive), then `next_batch()` until None; always
    `aclose()` in a finally block: it records the request, once. On a route with `resume`,
    the batches come through a `Resumer` (a cut text answer goes on on a backup)."""

    __slots__ = (
        "_closed",
        "_ended",
        "_metrics",
        "_race",
        "_resumer",
        "_scrub",
        "_sinks",
        "_source",
        "_started",
        "_trace",
        "record",
        "status",
        "transform",
    )

    def __init__(
        self,
        race: Race,
        transform: OutputTransform | None,
        record: RequestRecord,
        sinks: Sequence[RecordSink],
        metrics: GatewayMetrics,
        started: float,
        scrub: Scrubber,
        resumer: Resumer | None = None,
    ) -> None:
        self._race = race
        self._resumer = resumer
        self._source: Race | Resumer = race if resumer is None else resumer
        self._scrub = scrub
        self._started = started
        self.transform = transform
        self.record = record
        trace = record.trace  # keeps the answer's text only when the config opts in
        self._trace = trace if trace is not None and trace.output is not None else None
        self._sinks = sinks
        self._metrics = metrics
        self._closed = False
        self._ended = False
        self.status = 200  # the HTTP status the door sent; the server sets it
        metrics.in_flight.inc()

    @property
    def request_id(self) -> str:
        return self.record.request_id

    async def first(self) -> Winner | AllFailed | Heartbeat:
        outcome = await self._race.first()
        if type(outcome) is Winner:
            events = outcome.events
            for event in events:
                if type(event) is ResponseMeta and event.model:
                    self.record.model_version = event.model
                    break
            if self._resumer is not None:  # an error right after the first token may resume
                events = self._resumer.first_events(events)
            if events and type(events[-1]) is UpstreamError:  # the race cuts after an error
                events = [*events[:-1], self._scrub.error(events[-1])]
            if self.transform is not None:
                events = self.transform(events)
            if self._trace is not None:
                self._trace.collect(events)
            if events is not outcome.events:
                return Winner(outcome.deployment, events)
        elif type(outcome) is AllFailed:
            return AllFailed(self._scrub.error(outcome.error), outcome.errors)
        return outcome

    async def next_batch(self) -> list[Event] | None:
        """The winner's next events (an UpstreamError ends them); None at the end."""
        transform = self.transform
        if self._ended or (transform is not None and transform.stopped):
            return None
        batch = await self._source.next_batch()
        if batch is not None and type(batch[-1]) is UpstreamError:
            batch[-1] = self._scrub.error(batch[-1])
        if transform is not None:
            if batch is None:
                self._ended = True
                batch = transform.flush() or None
            else:
                batch = transform(batch)
        if self._trace is not None and batch is not None:
            self._trace.collect(batch)
        return batch

    def relay(self, frame_of: Callable[[], Framer | None]) -> Relay | None:
        """The fast relay for the rest of the answer, when nothing of the answer's own
        applies to it (no output transform, no trace of the text, no resume) and the
        race can hand the winner's stream over now; None otherwise."""
        if self.transform is not None or self._trace is not None or self._resumer is not None:
            return None
        return self._race.relay(frame_of)

    async def aclose(self, client_gone: bool = False) -> RequestRecord:
        rec = self.record
        if self._closed:
            return rec
        self._closed = True
        self._metrics.in_flight.dec()
        try:
            try:
                await self._race.aclose(client_gone=client_gone)
            finally:
                if self._resumer is not None:
                    await self._resumer.aclose(client_gone=client_gone)
        finally:
            race = self._race.record
            if self._resumer is not None:
                self._resumer.merge(race)
            for attempt in race.attempts:  # the record reaches logs, traces and admin views
                if attempt.error is not None:
                    attempt.error = self._scrub.error(attempt.error)
            if self.transform is not None and self.transform.matched:
                rec.output_filter = tuple(sorted(self.transform.matched))
            rec.race = race
            rec.outcome = race.stream_outcome
            rec.status = race.status if race.winner is None else self.status
            if race.winner is None and rec.outcome == "no_winner":
                rec.reason = None if race.status == 200 else "all_attempts_failed"
            rec.total_s = time.perf_counter() - self._started
            emit(self._sinks, rec)
        return rec
