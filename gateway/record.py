"""One request, recorded once: what it asked, what was decided, what the race did, what it
cost. Closing an `Answer` (or refusing a request) builds exactly one `RequestRecord` and
hands it to every `RecordSink`; nothing else on the request path keeps its own counters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from gateway.streaming.accounting import RaceRecord
from gateway.telemetry.context import TraceContext

Door = Literal["chat", "responses", "messages", "embeddings", "regress"]
RequestOutcome = Literal["completed", "failed", "client_cancelled", "no_winner", "rejected"]


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    door: Door
    key_id: str
    model: str | None  # as the client named it (None when the body could not be parsed)
    stream: bool = False
    route: str | None = None  # None: refused before a route was found
    tier: str | None = None  # the route's tier that planned it (None: the route itself)
    region: str | None = None
    region_unknown: str | None = None  # a region header naming no configured region
    status: int = 200  # the HTTP status the client got
    outcome: RequestOutcome = "no_winner"
    reason: str | None = None  # a refusal's code (rejected) or the upstream error's type
    race: RaceRecord | None = None
    model_version: str | None = None  # what the winning upstream said it is
    output_filter: tuple[str, ...] = ()  # output-filter patterns/detectors that matched
    setup_s: float = 0.0  # parse-to-race set-up time on the gateway
    total_s: float = 0.0
    trace: TraceContext | None = None  # when traces are on (telemetry.traces)

    @property
    def winner(self) -> str | None:
        return self.race.winner if self.race is not None else None

    @property
    def cost_usd(self) -> float:
        total = 0.0
        if self.race is not None:
            for attempt in self.race.attempts:  # a loop: a generator costs more than one
                total += attempt.cost_usd
        return total

    @property
    def wasted_usd(self) -> float:
        return self.race.wasted_cost_usd if self.race is not None else 0.0

    @property
    def output_tokens(self) -> int:
        total = 0
        if self.race is not None:
            # the winner's, plus its continuations' when a backup resumed a cut answer
            for attempt in self.race.attempts:
                if attempt.outcome == "won":
                    total += attempt.output_tokens
        return total


class RecordSink(Protocol):
    """Gets every request's record once, on the event loop: must not block or raise."""

    def record(self, rec: RequestRecord) -> None: ...
