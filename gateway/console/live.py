"""Per-second counters of the last minutes, for the console's "Live" page.

A ring of one slot per second (`horizon_s` of them, 300 by default) is filled by the record
sink; a slot is reused, and reset, when its second comes round again, so memory is bounded
and recording is O(1). `snapshot(window_s)` sums the last `window_s` seconds: requests,
errors, refusals, cost and waste per second; TTFT p50/p95 per route (the client's time to
first token, exact over the window's samples, at most `MAX_TTFT_SAMPLES` per route and
second); and wins per deployment.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.record import RequestRecord

DEFAULT_HORIZON_S = 300
MAX_TTFT_SAMPLES = 512  # per route and second; beyond it new samples overwrite old ones
ERROR_OUTCOMES = ("failed", "no_winner")  # the gateway or every upstream failed the request


@dataclass(slots=True)
class Second:
    at: int  # epoch second
    requests: int = 0
    errors: int = 0
    rejected: int = 0
    client_cancelled: int = 0
    attempts: int = 0
    cost_usd: float = 0.0
    wasted_usd: float = 0.0
    wasted_tokens: int = 0
    routes: dict[str, int] = field(default_factory=dict)  # route -> requests
    wins: dict[str, int] = field(default_factory=dict)  # deployment -> races won
    ttft: dict[str, list[float]] = field(default_factory=dict)  # route -> TTFT seconds
    ttft_seen: dict[str, int] = field(default_factory=dict)  # route -> samples offered


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of `values` (sorted), None when empty."""
    if not values:
        return None
    return values[max(0, math.ceil(q * len(values)) - 1)]


class LiveRates:
    def __init__(
        self, horizon_s: int = DEFAULT_HORIZON_S, clock: Callable[[], float] = time.time
    ) -> None:
        if horizon_s < 1:
            raise ValueError(f"horizon_s must be >= 1, got {horizon_s}")
        self.horizon_s = horizon_s
        self._clock = clock
        self._slots: list[Second | None] = [None] * horizon_s

    def _slot(self, at: int) -> Second:
        i = at % self.horizon_s
        slot = self._slots[i]
        if slot is None or slot.at != at:
            slot = self._slots[i] = Second(at)
        return slot

    def record(self, rec: RequestRecord) -> None:
        slot = self._slot(int(self._clock()))
        slot.requests += 1
        if rec.outcome == "rejected":
            slot.rejected += 1
        elif rec.outcome in ERROR_OUTCOMES:
            slot.errors += 1
        elif rec.outcome == "client_cancelled":
            slot.client_cancelled += 1
        if rec.route is not None:
            slot.routes[rec.route] = slot.routes.get(rec.route, 0) + 1
        race = rec.race
        if race is None:
            return
        slot.attempts += len(race.attempts)
        slot.cost_usd += rec.cost_usd
        slot.wasted_usd += race.wasted_cost_usd
        slot.wasted_tokens += race.wasted_tokens
        if race.winner is not None:
            slot.wins[race.winner] = slot.wins.get(race.winner, 0) + 1
            if race.ttft_s is not None:
                self._add_ttft(slot, race.route, race.ttft_s)

    @staticmethod
    def _add_ttft(slot: Second, route: str, ttft_s: float) -> None:
        samples = slot.ttft.setdefault(route, [])
        seen = slot.ttft_seen.get(route, 0)
        slot.ttft_seen[route] = seen + 1
        if len(samples) < MAX_TTFT_SAMPLES:
            samples.append(ttft_s)
        else:
            samples[seen % MAX_TTFT_SAMPLES] = ttft_s

    def seconds(self, window_s: int) -> list[Second]:
        """The last `window_s` seconds, oldest first, the current one included (empty
        seconds as zero slots)."""
        now = int(self._clock())
        window_s = max(1, min(window_s, self.horizon_s))
        out = []
        for at in range(now - window_s + 1, now + 1):
            slot = self._slots[at % self.horizon_s]
            out.append(slot if slot is not None and slot.at == at else Second(at))
        return out

    def snapshot(self, window_s: int = 60) -> dict[str, Any]:
        seconds = self.seconds(window_s)
        totals = {
            "requests": 0,
            "errors": 0,
            "rejected": 0,
            "client_cancelled": 0,
            "attempts": 0,
            "cost_usd": 0.0,
            "wasted_usd": 0.0,
            "wasted_tokens": 0,
        }
        routes: dict[str, int] = {}
        wins: dict[str, int] = {}
        ttft: dict[str, list[float]] = {}
        series = []
        for s in seconds:
            series.append(
                {
                    "t": s.at,
                    "requests": s.requests,
                    "errors": s.errors,
                    "rejected": s.rejected,
                    "cost_usd": round(s.cost_usd, 8),
                    "wasted_usd": round(s.wasted_usd, 8),
                }
            )
            for name in totals:
                totals[name] += getattr(s, name)
            for route, n in s.routes.items():
                routes[route] = routes.get(route, 0) + n
            for dep, n in s.wins.items():
                wins[dep] = wins.get(dep, 0) + n
            for route, values in s.ttft.items():
                ttft.setdefault(route, []).extend(values)
        won = sum(wins.values())
        per_route = {}
        for route in sorted(set(routes) | set(ttft)):
            values = sorted(ttft.get(route, []))
            p50, p95 = quantile(values, 0.5), quantile(values, 0.95)
            per_route[route] = {
                "requests": routes.get(route, 0),
                "ttft_samples": len(values),
                "ttft_p50_ms": None if p50 is None else round(p50 * 1000, 1),
                "ttft_p95_ms": None if p95 is None else round(p95 * 1000, 1),
            }
        totals["cost_usd"] = round(totals["cost_usd"], 8)
        totals["wasted_usd"] = round(totals["wasted_usd"], 8)
        return {
            "now": seconds[-1].at,
            "window_s": len(seconds),
            "rps": round(totals["requests"] / len(seconds), 3),
            "totals": totals,
            "series": series,
            "routes": per_route,
            "wins": {
                dep: {"wins": n, "share": round(n / won, 4)} for dep, n in sorted(wins.items())
            },
        }
