"""What a race is asked to do (the plan and its candidates) and what it answers."""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

from gateway.strategy import Strategy
from gateway.streaming.events import Event, UpstreamError
from gateway.value_class import value_class


@value_class
class Candidate:
    name: str
    ttft_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    hedge_delay_s: float = 0.6
    weight: float = 1.0
    price_input: float = 0.0
    price_output: float = 0.0


@dataclass(slots=True)
class RacePlan:
    request_id: str
    route: str
    strategy: Strategy
    candidates: list[Candidate]
    k: int = 2
    heartbeat_after_s: float | None = None
    prompt_estimate: int = 0
    region: str = ""


@value_class
class Winner:
    deployment: str
    events: list[Event]


@value_class
class AllFailed:
    error: UpstreamError
    errors: list[tuple[str, UpstreamError]] = field(default_factory=list)


class Heartbeat:
    """No winner yet after the heartbeat delay: keep the client connection alive."""


HEARTBEAT = Heartbeat()
# An attempt's stream. Calling it may send the request at once (on an idle keep-alive
# connection): its connection's cut reaches `attempt.on_cut`, which drops it even if the
# stream is never iterated.
Opener = Callable[[Candidate], AsyncGenerator[list[Event], None]]


def ordered_candidates(plan: RacePlan, rng: random.Random) -> list[Candidate]:
    """The order attempts start in: the plan's, except that `weighted` draws its first."""
    candidates = list(plan.candidates)
    if plan.strategy == "weighted" and len(candidates) > 1:
        weights = [max(c.weight, 0.0) for c in candidates]
        if sum(weights) > 0:
            first = rng.choices(range(len(candidates)), weights=weights)[0]
            candidates.insert(0, candidates.pop(first))
    return candidates
