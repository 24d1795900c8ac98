"""Spend per key and per deployment, today and this month (UTC), and how much of it went to
losers: attempts that did not win their race (cancelled, failed, timed out) were billed too.

This instance's view since it started (the state backend's `SpendTracker` keeps the shared
per-key totals that budgets enforce; it does not split winners from losers). Only the
current day and month are kept: a new day drops yesterday, a new month last month.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from gateway.record import RequestRecord

Subject = Literal["key", "deployment"]


def _periods(wall: float) -> tuple[str, str, float, float]:
    """(day, month, start and end of the day in epoch seconds) of wall time `wall`, UTC."""
    now = datetime.fromtimestamp(wall, UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m"), start.timestamp(), end.timestamp()


def _view(usd: float, losers: float) -> dict[str, float]:
    return {
        "usd": round(usd, 8),
        "losers_usd": round(losers, 8),
        "losers_share": round(losers / usd, 4) if usd > 0 else 0.0,
    }


class CostLedger:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.since = clock()
        self._day, self._month, self._starts, self._ends = _periods(self.since)
        # (subject kind, name, period) -> [usd, losers' usd]
        self._spent: dict[tuple[Subject, str, str], list[float]] = {}

    def _now(self) -> tuple[str, str]:
        wall = self._clock()
        if not self._starts <= wall < self._ends:  # another day: drop what is not current
            self._day, self._month, self._starts, self._ends = _periods(wall)
            keep = (self._day, self._month)
            self._spent = {k: v for k, v in self._spent.items() if k[2] in keep}
        return self._day, self._month

    def _add(
        self, periods: tuple[str, str], kind: Subject, name: str, usd: float, lost: float
    ) -> None:
        for period in periods:
            slot = self._spent.get((kind, name, period))
            if slot is None:
                slot = self._spent[(kind, name, period)] = [0.0, 0.0]
            slot[0] += usd
            slot[1] += lost

    def record(self, rec: RequestRecord) -> None:
        race = rec.race
        if race is None or not race.attempts:
            return
        periods = self._now()
        total = losers = 0.0
        for attempt in race.attempts:
            cost = attempt.cost_usd
            lost = cost if attempt.outcome != "won" else 0.0
            total += cost
            losers += lost
            self._add(periods, "deployment", attempt.deployment, cost, lost)
        self._add(periods, "key", rec.key_id, total, losers)

    def spent(
        self, kind: Subject, name: str, period: Literal["day", "month"]
    ) -> tuple[float, float]:
        """(USD, losers' USD) of `name` today or this month."""
        day, month = self._now()
        slot = self._spent.get((kind, name, day if period == "day" else month))
        return (slot[0], slot[1]) if slot is not None else (0.0, 0.0)

    def names(self, kind: Subject) -> list[str]:
        self._now()
        return sorted({name for k, name, _ in self._spent if k == kind})

    def table(self, kind: Subject, also: Iterable[str] = ()) -> dict[str, Any]:
        """Per name seen (and per name in `also`, even at zero): today and this month."""
        return {
            name: {
                "day": _view(*self.spent(kind, name, "day")),
                "month": _view(*self.spent(kind, name, "month")),
            }
            for name in sorted(set(self.names(kind)) | set(also))
        }

    def snapshot(self, deployments: Iterable[str] = ()) -> dict[str, Any]:
        """Every key seen and every deployment (the given ones listed even at zero)."""
        day, month = self._now()
        return {
            "day": day,
            "month": month,
            "since": round(self.since, 3),
            "keys": self.table("key"),
            "deployments": self.table("deployment", deployments),
        }
