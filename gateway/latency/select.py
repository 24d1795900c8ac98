"""Selection helpers on top of the latency profiles: ranking with exploration, hedge delay."""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def rank(
    candidates: list[str],
    predict: Callable[[str], float],
    k: int,
    exploration: float,
    rng: random.Random,
) -> list[str]:
    """All candidates, lowest predicted latency first (ties keep the given order).

    With probability ``exploration`` one random candidate from outside the top
    ``k`` is swapped into the last top-``k`` place, so deployments that never
    win still get traffic and their profiles stay fresh. A prediction that is
    NaN ranks last.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k!r}")
    if not 0.0 <= exploration <= 1.0:
        raise ValueError(f"exploration must be in [0, 1], got {exploration!r}")
    scores = {name: predict(name) for name in candidates}
    ranked = sorted(
        candidates, key=lambda name: math.inf if math.isnan(scores[name]) else scores[name]
    )
    top = min(k, len(ranked))
    if exploration > 0.0 and len(ranked) > top and rng.random() < exploration:
        pick = rng.randrange(top, len(ranked))
        ranked[top - 1], ranked[pick] = ranked[pick], ranked[top - 1]
    return ranked


def least_known_in_last_slot(
    ranked: list[str], own_samples: Callable[[str], float], k: int, min_samples: float
) -> list[str] | None:
    """Give the last of the top ``k`` places to the least-known candidate, or None.

    A race of ``k >= 2`` keeps its ``k - 1`` best-predicted candidates; the
    candidate with the fewest own samples (below ``min_samples``) among the
    rest takes place ``k``, so a thin cell is explored while a well-predicted
    candidate still races beside it. None when no such candidate exists (every
    candidate from place ``k`` on is known well enough).
    """
    if k < 2 or len(ranked) < k:
        return None
    rest = ranked[k - 1 :]
    pick = min(rest, key=own_samples)  # ties keep the better-predicted one
    if own_samples(pick) >= min_samples:
        return None
    out = [name for name in ranked if name != pick]
    out.insert(k - 1, pick)
    return out


def hedge_delay(estimate_s: float, min_s: float, max_s: float) -> float:
    """``estimate_s`` clamped to ``[min_s, max_s]`` (NaN gives ``max_s``)."""
    if min_s > max_s:
        raise ValueError(f"min_s ({min_s!r}) must be <= max_s ({max_s!r})")
    if math.isnan(estimate_s):
        return max_s
    return min(max(estimate_s, min_s), max_s)
