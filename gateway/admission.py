"""Admission: may this caller spend on this request? The key's daily budget, then its rate
limit (shared across instances through the state backend). Refusals are `Rejected` 429s."""

from __future__ import annotations

from gateway.config.model import Config
from gateway.rejection import Rejected
from gateway.routing.ratelimit import RateLimiter, key_limit, ratelimit_headers
from gateway.routing.spend import SpendTracker


class Admission:
    def __init__(self, config: Config, spend: SpendTracker, limiter: RateLimiter) -> None:
        self.budget_usd = config.routing.key_daily_budget_usd
        self.spend = spend
        self.limiter = limiter

    async def admit(self, key_id: str, tokens: int) -> None:
        """Raise Rejected(429) when the key's budget is spent or its rate limit reached."""
        budget = self.budget_usd
        if budget is not None and await self.spend.over_budget(key_id, budget):
            raise Rejected(
                429,
                f"the daily budget of ${budget:g} for this key is spent",
                "insufficient_quota",
                "budget_exceeded",
                headers={"x-should-retry": "false"},
            )
        name = key_limit(key_id)
        if self.limiter.limit_for(name) is None:
            return
        decision = await self.limiter.check_and_take(name, 1, tokens)
        if not decision.allowed:
            raise Rejected(
                429,
                "rate limit reached for this key",
                "requests",
                "rate_limit_exceeded",
                headers=ratelimit_headers(decision),
            )
