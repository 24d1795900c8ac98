"""Kaplan-Meier quantiles over binned (sketch) counts with right-censoring.

A race loser cancelled after ``t`` seconds without a token says only "its TTFT
was > t". Dropping such samples keeps only the attempts that happened to be
fast, so a slow deployment that keeps losing would look fast. The Kaplan-Meier
estimator uses them properly: ``S(t) = Π_{t_i ≤ t} (1 - d_i / n_i)`` where
``d_i`` is the (weighted) number of first tokens in bucket ``i`` and ``n_i`` the
weight still at risk when bucket ``i`` starts.

Convention for ties inside a bucket: censored observations in bucket ``i``
count as at risk at bucket ``i`` (their event happened *after* ``t_i``), and
leave the risk set after it. This is the usual convention (censoring at a
tied time is taken to occur just after the events) and, with ~1 % buckets, it
biases nothing measurable.

The quantile ``q`` is the value of the first bucket where ``1 - S ≥ q``. When
censoring in the tail is so heavy that the curve never gets there, the answer
is None: the data only say "the quantile is above the largest observation",
and the caller backs off to a coarser profile (or uses that as a floor).
"""

from __future__ import annotations

from gateway.latency.sketch import LogHistogram

_EPS = 1e-12


def _check_grid(events: LogHistogram, censored: LogHistogram) -> None:
    if not events.same_grid(censored):
        raise ValueError("events and censored sketches must share alpha and min_value")


def km_survival(events: LogHistogram, censored: LogHistogram) -> list[tuple[float, float]]:
    """The Kaplan-Meier curve: ``(bucket value, S after that bucket)`` per event bucket."""
    _check_grid(events, censored)
    at_risk = events.count + censored.count
    survival = 1.0
    curve: list[tuple[float, float]] = []
    for index in sorted(set(events) | set(censored)):
        d = events.get(index)
        if d > 0.0 and at_risk > _EPS:
            survival *= max(0.0, 1.0 - min(1.0, d / at_risk))
            curve.append((events.value_of(index), survival))
        at_risk -= d + censored.get(index)
    return curve


def km_quantile(events: LogHistogram, censored: LogHistogram, q: float) -> float | None:
    """Smallest bucket value where ``1 - S ≥ q``; None if the curve never reaches ``q``."""
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q!r}")
    target = 1.0 - q + 1e-9  # S ≤ 1 - q, with room for float rounding
    for value, survival in km_survival(events, censored):
        if survival <= target:
            return value
    return None


def km_quantiles(
    events: LogHistogram, censored: LogHistogram, qs: list[float]
) -> list[float | None]:
    """Several quantiles from one pass over the curve."""
    for q in qs:
        if not 0.0 < q <= 1.0:
            raise ValueError(f"q must be in (0, 1], got {q!r}")
    curve = km_survival(events, censored)
    out: list[float | None] = []
    for q in qs:
        target = 1.0 - q + 1e-9
        out.append(next((v for v, s in curve if s <= target), None))
    return out
