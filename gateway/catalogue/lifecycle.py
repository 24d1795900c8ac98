"""A model's lifecycle as of a day: active, deprecated, shutting down soon, or retired.

`check-config` warns on deprecated and soon-retired models and fails on retired ones; the
running gateway logs the same at start and exports days-to-shutdown as a gauge.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from gateway.value_class import value_class

WARN_DAYS = 30  # "shutting down soon" within this many days

State = Literal["active", "deprecated", "shutdown_soon", "retired"]


@value_class
class Lifecycle:
    state: State
    days_left: int | None  # to the shutdown date (negative once past); None without a date
    shutdown_date: dt.date | None = None
    successor: str | None = None

    @property
    def label(self) -> str:
        """Short, for tables: `active`, `deprecated (2027-01-14, 39 d)`, `retired ...`."""
        if self.state == "active":
            return "active"
        if self.shutdown_date is None:
            return self.state
        return f"{self.state} ({self.shutdown_date.isoformat()}, {self.days_left} d)"

    def describe(self, model: str) -> str:
        """A sentence for warnings and errors."""
        if self.shutdown_date is None:
            text = f"model {model!r} is deprecated"
        elif self.state == "retired":
            text = f"model {model!r} was shut down on {self.shutdown_date.isoformat()}"
        else:
            text = (
                f"model {model!r} is deprecated and shuts down on "
                f"{self.shutdown_date.isoformat()} (in {self.days_left} days)"
            )
        if self.successor:
            text += f"; successor: {self.successor}"
        return text


def lifecycle_of(
    deprecated: bool,
    shutdown_date: dt.date | None,
    today: dt.date,
    successor: str | None = None,
    warn_days: int = WARN_DAYS,
) -> Lifecycle:
    if shutdown_date is None:
        return Lifecycle("deprecated" if deprecated else "active", None, None, successor)
    days = (shutdown_date - today).days
    if days <= 0:
        state: State = "retired"
    elif days <= warn_days:
        state = "shutdown_soon"
    else:
        state = "deprecated"  # a shutdown date is announced: the model is on its way out
    return Lifecycle(state, days, shutdown_date, successor)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
