"""The race strategies, one vocabulary for config, routing and the race engine."""

from __future__ import annotations

from typing import Literal, get_args

Strategy = Literal["race", "hedge", "fallback", "weighted"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
SPECULATIVE: frozenset[Strategy] = frozenset(("race", "hedge"))  # may start extra attempts
