"""Pure statistics of a load run: per-request samples in, percentiles and rates out.

No I/O and no clock: everything here works on numbers already measured, so the
unit tests can feed synthetic samples.

Percentiles use linear interpolation between closest ranks (Hyndman & Fan
type 7, numpy's default "linear" method): for n sorted values the p-th
percentile sits at rank ``(n - 1) * p / 100``. With few samples the high
percentiles (p99, p99.9) interpolate towards the maximum; `count` is always
reported next to them so a reader can judge how much they are worth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.value_class import value_class

PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)

OK = None  # RequestSample.error of a successful request


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) of already sorted values; None when there are none."""
    if not 0.0 <= p <= 100.0 or math.isnan(p):
        raise ValueError(f"percentile must be within 0..100, got {p}")
    n = len(sorted_values)
    if n == 0:
        return None
    rank = (n - 1) * p / 100.0
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    frac = rank - low
    lo_v, hi_v = sorted_values[low], sorted_values[high]
    return lo_v + (hi_v - lo_v) * frac


def percentile_key(p: float) -> str:
    """50 -> "p50", 99.9 -> "p99.9"."""
    return f"p{p:g}"


@value_class
class Distribution:
    """Summary of one latency series, in milliseconds."""

    count: int
    mean: float | None
    min: float | None
    max: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["p99.9"] = out.pop("p999")
        return out


def distribution(values_ms: Iterable[float]) -> Distribution:
    """Count, mean, min, max and p50/p90/p99/p99.9 of values in ms."""
    data = sorted(values_ms)
    if not data:
        return Distribution(0, None, None, None, None, None, None, None)
    p50, p90, p99, p999 = (percentile(data, p) for p in PERCENTILES)
    return Distribution(
        count=len(data),
        mean=math.fsum(data) / len(data),
        min=data[0],
        max=data[-1],
        p50=p50,
        p90=p90,
        p99=p99,
        p999=p999,
    )


@dataclass(slots=True)
class RequestSample:
    """What one streaming request did. Times are seconds; offsets are from the run start.

    `start_s` is the request's *intended* start: in an open-loop run latencies
    are measured from it, so time spent waiting for a free slot in the client
    counts (no coordinated omission); `send_lag_s` is how late it actually went.
    """

    index: int
    start_s: float
    send_lag_s: float = 0.0
    status: int | None = None
    error: str | None = OK  # http_<status> | stream_error | connect_error | timeout | aborted
    error_detail: str | None = None
    ttft_s: float | None = None  # first chunk with content / reasoning / tool calls
    total_s: float | None = None  # until the end of the body (or the error)
    itl_s: list[float] = field(default_factory=list)  # gaps between token chunks
    tokens: int = 0  # chunks that carried content / reasoning / tool calls
    chars: int = 0  # characters of that output (comparable when servers chunk differently)
    events: int = 0  # SSE data events, [DONE] excluded
    request_id: str | None = None
    deployment: str | None = None  # x-gateway-deployment, when the server sends it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@value_class
class LoadSummary:
    """The numbers a reader wants from a run.

    `requests_per_s` counts successful requests over the wall time of the run
    (first intended start to last completion); `chunks_per_s` counts token
    chunks (chunks with content) of every request over the same time, and
    `chars_per_s` the characters in them (a server that merges deltas sends
    fewer, larger chunks: compare chars, not chunks, across servers).
    """

    requests: int
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    requests_per_s: float
    chunks_per_s: float
    chars_per_s: float
    tokens: int
    chars: int
    ttft_ms: Distribution
    itl_ms: Distribution
    total_ms: Distribution

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": dict(self.errors),
            "elapsed_s": self.elapsed_s,
            "requests_per_s": self.requests_per_s,
            "chunks_per_s": self.chunks_per_s,
            "chars_per_s": self.chars_per_s,
            "tokens": self.tokens,
            "chars": self.chars,
            "ttft_ms": self.ttft_ms.to_dict(),
            "itl_ms": self.itl_ms.to_dict(),
            "total_ms": self.total_ms.to_dict(),
        }


def summarize(samples: Sequence[RequestSample], elapsed_s: float) -> LoadSummary:
    """Summary of a run. TTFT and total come from successful requests only; ITL from
    every token gap of successful requests; errors are counted by kind."""
    errors: dict[str, int] = {}
    ttft: list[float] = []
    itl: list[float] = []
    total: list[float] = []
    tokens = chars = 0
    for s in samples:
        tokens += s.tokens
        chars += s.chars
        if s.error is not None:
            errors[s.error] = errors.get(s.error, 0) + 1
            continue
        if s.ttft_s is not None:
            ttft.append(s.ttft_s * 1000.0)
        if s.total_s is not None:
            total.append(s.total_s * 1000.0)
        itl.extend(gap * 1000.0 for gap in s.itl_s)
    ok = len(samples) - sum(errors.values())
    rate = 1.0 / elapsed_s if elapsed_s > 0 else 0.0
    return LoadSummary(
        requests=len(samples),
        ok=ok,
        errors=dict(sorted(errors.items())),
        elapsed_s=elapsed_s,
        requests_per_s=ok * rate,
        chunks_per_s=tokens * rate,
        chars_per_s=chars * rate,
        tokens=tokens,
        chars=chars,
        ttft_ms=distribution(ttft),
        itl_ms=distribution(itl),
        total_ms=distribution(total),
    )


def run_elapsed(samples: Sequence[RequestSample]) -> float:
    """Wall time from the first intended start to the last end among the samples."""
    if not samples:
        return 0.0
    first = min(s.start_s for s in samples)
    last = max(s.start_s + (s.total_s or 0.0) for s in samples)
    return max(last - first, 0.0)
