"""Per-attempt and per-request records: what the race did and what it cost.

One small record per request, handed to observers (metrics, latency profiles,
health); nothing else keeps scattered counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from gateway.strategy import Strategy
from gateway.streaming.events import Event, Finish, TextDelta, UpstreamError, Usage, is_token

AttemptOutcome = Literal["won", "cancelled", "failed", "timed_out", "running"]
StreamOutcome = Literal["completed", "failed", "client_cancelled", "no_winner"]


@dataclass(slots=True)
class AttemptRecord:
    deployment: str
    start_offset_s: float  # since the request started
    price_input: float = 0.0  # USD per million tokens
    price_output: float = 0.0
    prompt_estimate: int = 0
    outcome: AttemptOutcome = "running"
    ttft_s: float | None = None  # time to first token, from the attempt's start
    censored_ttft_s: float | None = None  # lower bound when cancelled before a token
    end_offset_s: float | None = None
    tokens: int = 0  # token events seen (fallback when the upstream reports no usage)
    relayed: int = 0  # of those, forwarded by the fast relay (streaming/relay.py)
    usage: Usage | None = None
    finish_reason: str | None = None  # the upstream's normalized finish reason
    error: UpstreamError | None = None
    speculative: bool = False  # started by racing/hedging, not by a failure
    resumed_from: str | None = None  # a continuation: the deployment whose cut answer it resumed

    @property
    def input_tokens(self) -> int:
        return self.usage.prompt if self.usage and self.usage.prompt else self.prompt_estimate

    @property
    def output_tokens(self) -> int:
        return self.usage.output if self.usage and self.usage.output else self.tokens

    @property
    def cost_usd(self) -> float:
        return (self.input_tokens * self.price_input + self.output_tokens * self.price_output) / 1e6


@dataclass(slots=True)
class RaceRecord:
    request_id: str
    route: str
    strategy: Strategy
    region: str = ""
    attempts: list[AttemptRecord] = field(default_factory=list)
    winner: str | None = None
    ttft_s: float | None = None  # request start -> first token of the winner
    stream_outcome: StreamOutcome = "no_winner"
    status: int = 200
    budget_refused: int = 0  # speculative attempts the extra-load budget did not start
    resumes: int = 0  # times a cut answer was sent to a backup to continue (resume)
    refused: list[tuple[str, float]] = field(default_factory=list)  # (deployment, offset s)
    total_s: float = 0.0

    @property
    def budget_limited(self) -> bool:
        """The extra-load budget turned racing or hedging off for this request."""
        return self.budget_refused > 0

    @property
    def resumed(self) -> bool:
        """A cut answer was continued by a backup (a continuation won)."""
        return any(a.resumed_from is not None and a.outcome == "won" for a in self.attempts)

    @property
    def losers(self) -> list[AttemptRecord]:
        return [a for a in self.attempts if a.outcome != "won"]

    @property
    def wasted_tokens(self) -> int:
        total = 0
        for a in self.attempts:  # loops: a generator costs more than one or two attempts
            if a.outcome == "cancelled":
                total += a.input_tokens + a.output_tokens
        return total

    @property
    def wasted_cost_usd(self) -> float:
        total = 0.0
        for a in self.attempts:
            if a.outcome == "cancelled":
                total += a.cost_usd
        return total


class RaceObserver(Protocol):
    def on_race_end(self, record: RaceRecord) -> None: ...


def account(record: AttemptRecord, events: list[Event]) -> int:
    """The one accounting pass over an attempt's events: tokens, usage, finish reason and
    an UpstreamError; returns the index just past that error (the events after it do not
    count), or -1 when there is none."""
    for i, event in enumerate(events):
        kind = type(event)
        if kind is TextDelta:  # the usual event: a token when it has text
            if event.text:  # type: ignore[union-attr]
                record.tokens += 1
        elif kind is Usage:
            record.usage = event  # type: ignore[assignment]
        elif kind is UpstreamError:
            record.error = event  # type: ignore[assignment]
            return i + 1
        elif is_token(event):
            record.tokens += 1
        elif kind is Finish:
            record.finish_reason = event.reason  # type: ignore[union-attr]
    return -1


def stream_outcome(
    winner: AttemptRecord | None, stream_done: bool, client_gone: bool
) -> StreamOutcome:
    """How a race's answer ended: `winner` is the winning attempt's record (None: there
    was none); `stream_done`: its stream was read to its end (or to its error)."""
    if winner is None:
        return "client_cancelled" if client_gone else "no_winner"
    if client_gone and not stream_done:
        return "client_cancelled"
    if winner.error is not None:
        return "failed"
    return "completed" if stream_done else "client_cancelled"
