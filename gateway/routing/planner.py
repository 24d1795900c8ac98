"""Candidate planning: tier, allowed deployments, health, order and hedge delays for one request.

Order of decisions: the route's tier (by request traits) picks strategy and
deployments; policy (residency, local-only) removes what must never be
contacted; health skips open breakers and rate-limited deployments; then
`race`/`hedge` order by predicted TTFT for this region and hour (with a little
exploration; a race gives its last slot to the candidate least known in the
client's region), `weighted` draws by learned weights, `fallback` keeps config order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway.config.model import Config, DeploymentConfig, TierConfig
from gateway.latency.clock import hour_of
from gateway.latency.profile import LatencyProfiles
from gateway.latency.select import hedge_delay, least_known_in_last_slot, rank
from gateway.request import AnyRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.table import ResolvedRoute
from gateway.routing.tiers import Tier, TierCondition, select_tier, traits_of
from gateway.strategy import Strategy


@dataclass(frozen=True, slots=True)
class PlannedCandidate:
    deployment: DeploymentConfig
    hedge_delay_s: float
    weight: float
    predicted_ttft_s: float | None


@dataclass(frozen=True, slots=True)
class Plan:
    route: str
    tier: str | None
    strategy: Strategy
    k: int
    candidates: list[PlannedCandidate]
    hour: int


class NoCandidates(Exception):
    """Policy left no deployment that may serve the request."""


def tiers_of(route_tiers: tuple[TierConfig, ...]) -> list[Tier]:
    out = []
    for t in route_tiers:
        out.append(
            Tier(
                name=t.name,
                when=TierCondition(
                    min_prompt_tokens=t.min_prompt_tokens,
                    max_prompt_tokens=t.max_prompt_tokens,
                    images=t.images,
                    tools=t.tools,
                    reasoning=t.reasoning,
                ),
                strategy=t.strategy,
                deployments=t.deployments,
                k=t.k,
            )
        )
    return out


class CandidatePlanner:
    def __init__(
        self,
        config: Config,
        health: HealthRegistry,
        profiles: LatencyProfiles | None,
        *,
        weights: Callable[[], Mapping[str, float]] | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        explore_least_known: bool = True,
    ) -> None:
        self.config = config
        self.explore_least_known = explore_least_known  # off: only random exploration
        self.health = health
        self.profiles = profiles
        self._weights = weights
        self.rng = rng or random.Random()
        self.clock = clock
        self._tiers = {
            name: tiers_of(route.tiers) for name, route in config.routes.items() if route.tiers
        }

    def plan(
        self,
        chat: AnyRequest,
        route: ResolvedRoute,
        region: str,
        reasoning_header: str | None = None,
        allowed: Callable[[DeploymentConfig], bool] | None = None,
        request_id: str | None = None,
    ) -> Plan:
        strategy, k, deployments, tier_name = route.strategy, route.k, route.deployments, None
        tiers = self._tiers.get(route.name)
        if tiers:
            tier = select_tier(tiers, traits_of(chat, reasoning_header))
            if tier is not None:
                strategy, k, tier_name = tier.strategy, tier.k, tier.name
                deployments = tuple(self.config.deployments[n] for n in tier.deployments)
        if allowed is not None:
            deployments = tuple(d for d in deployments if allowed(d))
            if not deployments:
                raise NoCandidates(route.name)
        by_name = {d.name: d for d in deployments}
        names = self.health.filter(list(by_name), request_id=request_id)
        hour = hour_of(self.clock())
        weights = dict(self._weights()) if self._weights is not None else {}
        route_cfg = self.config.routes.get(route.name)
        predicted: dict[str, float] = {}
        if self.profiles is not None and strategy in ("race", "hedge") and len(names) > 1:
            own: dict[str, float] = {}
            for name in names:
                dep = by_name[name]
                prior = (dep.prior.ttft_p50_ms, dep.prior.ttft_p95_ms)
                estimate = self.profiles.ttft_quantile(name, region, hour, 0.5, prior)
                predicted[name] = estimate.value_s
                own[name] = estimate.own_samples
            ranked = rank(names, predicted.__getitem__, k, 0.0, self.rng)
            explored = None
            if strategy == "race" and self.explore_least_known:
                # A race runs anyway: its last slot learns the client's region at no cost
                # to the first token, which the best-predicted candidates still race for.
                known = self.profiles.min_samples * (1.0 - 1e-9)  # decayed sums: float rounding
                explored = least_known_in_last_slot(ranked, own.__getitem__, k, known)
            if explored is None:
                ranked = rank(
                    names, predicted.__getitem__, k, self.config.latency.exploration, self.rng
                )
            names = explored or ranked
        candidates = []
        for name in names:
            dep = by_name[name]
            delay = route.hedge_delay_s
            if self.profiles is not None and strategy == "hedge" and route_cfg is not None:
                prior = (dep.prior.ttft_p50_ms, dep.prior.ttft_p95_ms)
                estimate = self.profiles.ttft_quantile(
                    name, region, hour, route_cfg.hedge_quantile, prior
                )
                if estimate.level != "prior":  # until profiles know it, the route's fixed delay
                    delay = hedge_delay(
                        estimate.value_s,
                        route_cfg.hedge_min_ms / 1000.0,
                        route_cfg.hedge_max_ms / 1000.0,
                    )
            candidates.append(
                PlannedCandidate(dep, delay, weights.get(name, dep.weight), predicted.get(name))
            )
        return Plan(route.name, tier_name, strategy, min(k, len(candidates)) or 1, candidates, hour)
