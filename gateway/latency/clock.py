"""Time helpers for the latency profiles: epoch seconds and UTC hour of day."""

from __future__ import annotations

from datetime import UTC, datetime


def to_epoch(when: datetime | float) -> float:
    """Epoch seconds of ``when``; a naive datetime is taken to be UTC."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    return float(when)


def hour_of(epoch_s: float) -> int:
    """Hour of day (0-23, UTC) of an epoch timestamp."""
    return int(epoch_s // 3600) % 24
