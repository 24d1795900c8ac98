"""The last N request records, for the console's "Recent requests" page.

Recording is one deque append of the record and its wall time; the JSON view is built only
when asked. A record carries no prompt or answer text, and the view leaves out upstream
error messages too (an upstream may quote the prompt in one): status and type only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from gateway.record import RequestRecord
from gateway.streaming.accounting import AttemptRecord

DEFAULT_CAPACITY = 200


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def attempt_view(attempt: AttemptRecord) -> dict[str, Any]:
    error = attempt.error
    return {
        "deployment": attempt.deployment,
        "outcome": attempt.outcome,
        "speculative": attempt.speculative,
        "start_ms": _ms(attempt.start_offset_s),
        "ttft_ms": _ms(attempt.ttft_s),
        "censored_ttft_ms": _ms(attempt.censored_ttft_s),
        "end_ms": _ms(attempt.end_offset_s),
        "input_tokens": attempt.input_tokens,
        "output_tokens": attempt.output_tokens,
        "cost_usd": round(attempt.cost_usd, 8),
        "error": None if error is None else {"status": error.status, "type": error.type},
    }


def record_view(at: float, rec: RequestRecord) -> dict[str, Any]:
    race = rec.race
    attempts = race.attempts if race is not None else []
    return {
        "at": round(at, 3),
        "request_id": rec.request_id,
        "door": rec.door,
        "key": rec.key_id,
        "model": rec.model,
        "route": rec.route,
        "region": rec.region,
        "stream": rec.stream,
        "status": rec.status,
        "outcome": rec.outcome,
        "reason": rec.reason,
        "winner": rec.winner,
        "model_version": rec.model_version,
        "ttft_ms": _ms(race.ttft_s) if race is not None else None,
        "total_ms": _ms(rec.total_s),
        "input_tokens": sum(a.input_tokens for a in attempts if a.outcome == "won"),
        "output_tokens": rec.output_tokens,
        "cost_usd": round(rec.cost_usd, 8),
        "wasted_usd": round(rec.wasted_usd, 8),
        "attempts": [attempt_view(a) for a in attempts],
    }


class RecentRequests:
    """A ring buffer of the last `capacity` records (newest last)."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, clock: Callable[[], float] = time.time
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._clock = clock
        self._records: deque[tuple[float, RequestRecord]] = deque(maxlen=capacity)

    def record(self, rec: RequestRecord) -> None:
        self._records.append((self._clock(), rec))

    def __len__(self) -> int:
        return len(self._records)

    def latest(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest `limit` records as JSON-ready dicts, newest first."""
        newest = reversed(self._records)
        chosen = newest if limit is None else islice(newest, max(limit, 0))
        return [record_view(at, rec) for at, rec in chosen]
