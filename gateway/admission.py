"""Admission: may this caller use this route, and spend on this request? In order: direct
deployment access, the key's route scope (403s), its daily and monthly budgets, then its
rate limit (shared across instances through the state backend; 429s). Refusals are
`Rejected` in the envelope."""

from __future__ import annotations

from gateway.config.model import Config, KeyConfig
from gateway.rejection import Rejected
from gateway.routing.ratelimit import Limit, RateLimiter, key_limit, ratelimit_headers
from gateway.routing.spend import Period, SpendTracker
from gateway.routing.table import ResolvedRoute, RouteTable


class Admission:
    def __init__(
        self, config: Config, spend: SpendTracker, limiter: RateLimiter, routes: RouteTable
    ) -> None:
        r = config.routing
        self.budget_usd = r.key_daily_budget_usd
        self.default_limit = Limit(r.key_rpm, r.key_tpm)
        self.allow_direct = r.allow_direct_deployments
        self.spend = spend
        self.limiter = limiter
        self.routes = routes

    def check_scope(self, key: KeyConfig | None, route: ResolvedRoute, named: bool) -> None:
        """Raise Rejected(403) when the client named a deployment and direct access is off
        for it (`named`: the route came from the client's `model`), or when the key may not
        use the route. A key may use a deployment directly when it may use a route holding
        it (or lists the deployment itself)."""
        if route.direct and named:
            allowed = self.allow_direct
            if key is not None and key.allow_direct_deployments is not None:
                allowed = key.allow_direct_deployments
            if not allowed:
                raise Rejected(
                    403,
                    f"'{route.name}' names a deployment, and direct deployment access is off: "
                    "use a route (GET /v1/models lists them), or allow it with "
                    "routing.allow_direct_deployments or the key's allow_direct_deployments",
                    "permission_error",
                    "direct_deployment_not_allowed",
                    "model",
                )
        if key is None or key.routes is None:
            return
        scope = key.routes
        if route.name in scope:
            return
        if route.direct and any(name in scope for name in self.routes.holding(route.name)):
            return
        raise Rejected(
            403,
            f"this key may not use '{route.name}' (it may use: {', '.join(scope) or 'none'})",
            "permission_error",
            "route_not_allowed",
            "model",
        )

    def usable(self, key: KeyConfig | None, route: ResolvedRoute) -> bool:
        """Whether `check_scope` lets `key` name `route` (what /v1/models lists)."""
        try:
            self.check_scope(key, route, named=True)
        except Rejected:
            return False
        return True

    async def admit(self, key_id: str, key: KeyConfig | None, tokens: int) -> None:
        """Raise Rejected(429) when the key's budget is spent or its rate limit reached."""
        daily = self.budget_usd
        if key is not None and key.budget_daily_usd is not None:
            daily = key.budget_daily_usd
        if daily is not None:
            await self._budget(key_id, daily, "day")
        if key is not None and key.budget_monthly_usd is not None:
            await self._budget(key_id, key.budget_monthly_usd, "month")
        limit = None  # anonymous: the configured limit of key:anonymous, if any
        if key is not None:
            d = self.default_limit
            limit = Limit(
                key.rpm if key.rpm is not None else d.rpm,
                key.tpm if key.tpm is not None else d.tpm,
            )
        name = key_limit(key_id)
        if limit is None:
            if self.limiter.limit_for(name) is None:
                return
        elif limit.rpm is None and limit.tpm is None:
            return
        decision = await self.limiter.check_and_take(name, 1, tokens, limit)
        if not decision.allowed:
            raise Rejected(
                429,
                "rate limit reached for this key",
                "requests",
                "rate_limit_exceeded",
                headers=ratelimit_headers(decision),
            )

    async def _budget(self, key_id: str, budget: float, period: Period) -> None:
        if await self.spend.spent(key_id, period) >= budget:
            word = "daily" if period == "day" else "monthly"
            raise Rejected(
                429,
                f"the {word} budget of ${budget:g} for this key is spent",
                "insufficient_quota",
                "budget_exceeded",
                headers={"x-should-retry": "false"},
            )
