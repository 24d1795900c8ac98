"""Candidate planning: tier, allowed deployments, health, order and hedge delays for one request.

Order of decisions: the route's tier (by request traits) picks strategy and
deployments; policy (residency, local-only) removes what must never be
contacted; fit (routing/fit.py) skips models whose context window cannot hold the
request or that lack a capability it needs - when none of the tier fits, the next
matching tier, then the route's own deployments, are tried, and when nothing fits the
request is refused (400 `context_length_exceeded` or `capability_not_supported`);
health skips open breakers and rate-limited deployments; then
`race`/`hedge` order by predicted TTFT for this region and hour (with a little
exploration; a race gives its last slot to the candidate least known in the
client's region), `weighted` draws by learned weights, `fallback` keeps config order.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping

import structlog

from gateway.config.model import Config, DeploymentConfig, TierConfig
from gateway.latency.clock import hour_of
from gateway.latency.profile import LatencyProfiles
from gateway.latency.select import hedge_delay, least_known_in_last_slot, rank
from gateway.rejection import Rejected
from gateway.request import AnyRequest
from gateway.routing.fit import CONTEXT_REASONS, Needs, Unfit, needs_of, unfit
from gateway.routing.health import HealthRegistry
from gateway.routing.table import ResolvedRoute
from gateway.routing.tiers import Tier, TierCondition, Traits, traits_of
from gateway.strategy import Strategy
from gateway.value_class import value_class

log = structlog.get_logger("gateway.routing")
CAPABILITY_PARAMS = {
    "vision": "messages",
    "audio_input": "messages",
    "tools": "tools",
    "structured_output": "response_format",
}


@value_class
class PlannedCandidate:
    deployment: DeploymentConfig
    hedge_delay_s: float
    weight: float
    predicted_ttft_s: float | None


@value_class
class Plan:
    route: str
    tier: str | None
    strategy: Strategy
    k: int
    candidates: list[PlannedCandidate]
    hour: int


class NoCandidates(Exception):
    """Policy left no deployment that may serve the request."""


@value_class
class Choice:
    """A group of deployments the request may go to: a matching tier or the route's own."""

    tier: str | None
    strategy: Strategy
    k: int
    deployments: tuple[DeploymentConfig, ...]


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
        on_skip: Callable[[str, str], None] | None = None,
        quarantined: Callable[[str], bool] | None = None,
    ) -> None:
        self.config = config
        self.explore_least_known = explore_least_known  # off: only random exploration
        self.quarantined = quarantined  # out of races unless nothing else is left
        self.on_skip = on_skip  # (deployment, reason) of each candidate dropped by fit
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
        traits = traits_of(chat, reasoning_header)
        choice = self._choose(route, traits, needs_of(chat, traits), allowed, request_id)
        strategy, k, tier_name = choice.strategy, choice.k, choice.tier
        members = choice.deployments
        if self.quarantined is not None:
            members = tuple(d for d in members if not self.quarantined(d.name)) or members
        by_name = {d.name: d for d in members}
        names = self.health.filter(list(by_name), request_id=request_id)
        hour = hour_of(self.clock())
        weights = self._weights() if self._weights is not None else {}  # read, never kept
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

    def _choices(self, route: ResolvedRoute, traits: Traits) -> list[Choice]:
        """The matching tiers in order, then the route's own deployments."""
        out = []
        for tier in self._tiers.get(route.name, ()):
            if tier.when.matches(traits):
                members = tuple(self.config.deployments[n] for n in tier.deployments)
                out.append(Choice(tier.name, tier.strategy, tier.k, members))
        out.append(Choice(None, route.strategy, route.k, route.deployments))
        return out

    def _choose(
        self,
        route: ResolvedRoute,
        traits: Traits,
        needs: Needs,
        allowed: Callable[[DeploymentConfig], bool] | None,
        request_id: str | None,
    ) -> Choice:
        """The first choice with a deployment that policy allows and that fits the request.
        Policy emptying the first choice is NoCandidates (as before fit existed)."""
        skipped: list[Unfit] = []
        for i, choice in enumerate(self._choices(route, traits)):
            members = choice.deployments
            if allowed is not None:
                members = tuple(d for d in members if allowed(d))
                if not members:
                    if i == 0:
                        raise NoCandidates(route.name)
                    continue
            fitting = []
            for dep in members:
                why = unfit(dep, needs)
                if why is None:
                    fitting.append(dep)
                elif all(s.deployment != dep.name for s in skipped):
                    skipped.append(why)
            if fitting:
                self._skipped(route.name, skipped, request_id)
                return Choice(choice.tier, choice.strategy, choice.k, tuple(fitting))
        self._skipped(route.name, skipped, request_id)
        raise _nothing_fits(route, needs, skipped)

    def _skipped(self, route: str, skipped: list[Unfit], request_id: str | None) -> None:
        for s in skipped:
            log.info(
                "candidate_skipped",
                request_id=request_id,
                route=route,
                deployment=s.deployment,
                reason=s.reason,
                detail=s.detail,
            )
            if self.on_skip is not None:
                self.on_skip(s.deployment, s.reason)


def _nothing_fits(route: ResolvedRoute, needs: Needs, skipped: list[Unfit]) -> Rejected:
    """The client's 400 when no deployment of the route can take the request."""
    why = "; ".join(f"{s.deployment}: {s.detail}" for s in skipped)
    if any(s.reason in CONTEXT_REASONS for s in skipped):
        output = needs.max_tokens
        only_output = all(s.reason == "max_output_tokens" for s in skipped)
        param = "max_tokens" if only_output else "messages"
        asked = f" plus {output} output tokens" if output is not None else ""
        return Rejected(
            400,
            f"the request (about {needs.prompt_tokens} prompt tokens{asked}) does not fit the "
            f"context window of any deployment of '{route.name}' ({why}); shorten the messages "
            "or lower max_tokens",
            "invalid_request_error",
            "context_length_exceeded",
            param,
        )
    return Rejected(
        400,
        f"no deployment of '{route.name}' supports what the request needs ({why})",
        "invalid_request_error",
        "capability_not_supported",
        CAPABILITY_PARAMS.get(skipped[0].reason) if skipped else None,
    )
