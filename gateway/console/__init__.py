"""What the console shows that no other part keeps: the last requests, per-second rates of
the last minutes, and spend split between winners and losers. Each is a `RecordSink` fed
by the same one-record-per-request stream as metrics and spend; each is bounded in memory
and per instance (a console shows the instance it is served from)."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.console.ledger import CostLedger
from gateway.console.live import LiveRates
from gateway.console.recent import RecentRequests
from gateway.record import RecordSink

__all__ = ["ConsoleSinks", "CostLedger", "LiveRates", "RecentRequests"]


class ConsoleSinks:
    """The console's three sinks, built together and added to the gateway's sinks."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.recent = RecentRequests(clock=clock)
        self.live = LiveRates(clock=clock)
        self.ledger = CostLedger(clock=clock)

    @property
    def sinks(self) -> list[RecordSink]:
        return [self.recent, self.live, self.ledger]
