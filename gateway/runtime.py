"""The gateway core: providers, pools, routes and race set-up for one process.

The server asks it for a prepared race; it knows which adapter and pool serve
each deployment, so neither the server nor the engine needs to.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import structlog

from gateway.config.model import Config, DeploymentConfig
from gateway.governance.gate import Governance
from gateway.latency.prewarm import PreWarmer
from gateway.metrics import GatewayMetrics
from gateway.providers.base import (
    Provider,
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    UpstreamRequest,
)
from gateway.providers.registry import create as create_provider
from gateway.request import ChatRequest
from gateway.routing.planner import CandidatePlanner, NoCandidates
from gateway.routing.ratelimit import deployment_limit
from gateway.routing.table import ResolvedRoute, RouteTable
from gateway.state import SharedState
from gateway.streaming.accounting import RaceRecord
from gateway.streaming.events import Event, ResponseMeta, UpstreamError
from gateway.streaming.plan import Candidate, RacePlan
from gateway.streaming.policy import LoadBudget
from gateway.streaming.race import Race
from gateway.streaming.upstream import UpstreamPool, stream_events

log = structlog.get_logger("gateway")


class RequestRejected(Exception):
    """The request cannot be served by any candidate; carries an HTTP status for the client."""

    def __init__(self, status: int, message: str, type_: str, code: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param


@dataclass(frozen=True, slots=True)
class _Deployment:
    config: DeploymentConfig
    provider: Provider
    pool: UpstreamPool
    target: TargetModel


class Gateway:
    def __init__(
        self,
        config: Config,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.state = SharedState(config, clock)
        self.routes = RouteTable(config)
        self.pools: dict[str, UpstreamPool] = {}
        providers: dict[str, Provider] = {}
        for name, pc in config.providers.items():
            settings = ProviderSettings(
                name=name,
                kind=pc.kind,
                base_url=pc.base_url,
                api_key=pc.api_key.reveal() if pc.api_key else None,
                options={**pc.options, "headers": dict(pc.headers)},
            )
            providers[name] = create_provider(settings)
            self.pools[name] = UpstreamPool(
                name, pc.max_connections, pc.connect_timeout_s, pc.keepalive_s
            )
        self._deployments = {
            name: _Deployment(
                dep,
                providers[dep.provider],
                self.pools[dep.provider],
                TargetModel(dep.model, dep.drop_params, dep.max_tokens_default, dep.options),
            )
            for name, dep in config.deployments.items()
        }
        self.budgets = {
            route.name: LoadBudget.for_route(route.max_extra_load, route.min_extra_per_s)
            for route in self.routes.routes()
        }
        self.observers: list[object] = [self.state.health, self.state.profiles]
        self.rng = random.Random()
        self.planner = CandidatePlanner(
            config,
            self.state.health,
            self.state.profiles,
            weights=self.weights,
            rng=self.rng,
            clock=clock,
        )
        self._providers = providers
        self.prewarmer = self._make_prewarmer(clock)
        self.governance = Governance(config)
        self.versions: dict[str, str] = {}  # deployment -> model version the upstream reports
        self.spend_by_deployment: dict[str, float] = {}
        self.metrics.watch(self.state.health.snapshot, lambda: self.state.degraded)
        self._weights: Callable[[], Mapping[str, float]] | None = self.state.weights.weights
        self.observers.append(self.state.feedback)

    def weights(self) -> dict[str, float]:
        """Learned weights for `weighted` routes (empty until the worker has run)."""
        return dict(self._weights()) if self._weights is not None else {}

    def note_version(self, deployment: str, events: list[Event]) -> None:
        """Notice the upstream-reported model version of a winner; log and count changes."""
        for event in events:
            if type(event) is ResponseMeta and event.model:
                version = event.model  # fingerprints rotate too often to mean a new model
                old = self.versions.get(deployment)
                if old == version:
                    return
                self.versions[deployment] = version
                if old is not None:
                    log.info("model_version_changed", deployment=deployment, old=old, new=version)
                    self.metrics.version_changes.labels(deployment).inc()
                    self.metrics.version.remove(deployment, old)
                self.metrics.version.labels(deployment, version).set(1)
                return

    def _make_prewarmer(self, clock: Callable[[], float]) -> PreWarmer | None:
        lat = self.config.latency
        if not lat.prewarm.enabled or lat.prewarm.connections <= 0 or not self._deployments:
            return None
        profiles = self.state.profiles
        deployments = self.config.deployments

        def predict(name: str, region: str, hour: int) -> float:
            prior = deployments[name].prior
            estimate = profiles.ttft_quantile(
                name, region, hour, 0.5, (prior.ttft_p50_ms, prior.ttft_p95_ms)
            )
            return estimate.value_s

        keepalive = min((p.keepalive_s for p in self.config.providers.values()), default=30.0)
        top_n = max((r.k for r in self.config.routes.values()), default=1)
        return PreWarmer(
            deployments=list(deployments),
            predict=predict,
            warm=self._warm,
            top_n=top_n,
            connections=lat.prewarm.connections,
            interval_s=max(1.0, keepalive / 2),
            default_region=lat.default_region,
            clock=clock,
        )

    async def _warm(self, targets: dict[str, int]) -> None:
        """Open (or refresh) idle keep-alive connections: one GET per connection wanted."""
        per_provider: dict[str, int] = {}
        for name, connections in targets.items():
            provider = self.config.deployments[name].provider
            per_provider[provider] = per_provider.get(provider, 0) + connections
        jobs: list[Awaitable[bool]] = []
        for provider_name, wanted in per_provider.items():
            request = self._providers[provider_name].warmup_request()
            if request is None:
                continue
            pool = self.pools[provider_name]
            cap = max(1, self.config.providers[provider_name].max_connections // 2)
            jobs.extend(pool.warm(request) for _ in range(min(wanted, cap)))
        await asyncio.gather(*jobs, return_exceptions=True)

    def note_region(self, region: str) -> None:
        if self.prewarmer is not None:
            self.prewarmer.note_region(region)

    async def start(self) -> None:
        await self.state.start()
        if self.prewarmer is not None:
            self.prewarmer.start()

    async def close(self) -> None:
        if self.prewarmer is not None:
            await self.prewarmer.close()
        await self.state.close()
        for pool in self.pools.values():
            await pool.close()

    def region_of(self, headers: Mapping[str, str]) -> str:
        lat = self.config.latency
        value = headers.get(lat.region_header)
        if value:
            value = value.strip().lower()
            if value in lat.regions:
                return value
        if lat.country_header:
            country = headers.get(lat.country_header, "").strip().upper()
            mapped = lat.country_regions.get(country)
            if mapped:
                return mapped
        return lat.default_region

    def prepare(
        self,
        chat: ChatRequest,
        route: ResolvedRoute,
        request_id: str,
        region: str,
        headers: Mapping[str, str] | None = None,
        allowed: Callable[[DeploymentConfig], bool] | None = None,
    ) -> Race:
        """Plan the candidates, build their upstream requests, and return the Race over them."""
        reasoning = (headers or {}).get(self.config.routing.reasoning_header)
        try:
            plan = self.planner.plan(chat, route, region, reasoning, allowed, request_id)
        except NoCandidates:
            raise RequestRejected(
                400,
                f"no deployment of '{route.name}' may serve this request under the data policy "
                "(residency or local-only)",
                "invalid_request_error",
                "no_compliant_deployment",
            ) from None
        requests: dict[str, UpstreamRequest] = {}
        rejected: list[UnsupportedParams] = []
        candidates: list[Candidate] = []
        for planned in plan.candidates:
            dep = planned.deployment
            deployment = self._deployments[dep.name]
            try:
                requests[dep.name] = deployment.provider.build_request(chat, deployment.target)
            except UnsupportedParams as exc:
                rejected.append(exc)
                continue
            candidates.append(
                Candidate(
                    name=dep.name,
                    ttft_timeout_s=dep.ttft_timeout_s,
                    idle_timeout_s=dep.idle_timeout_s,
                    hedge_delay_s=planned.hedge_delay_s,
                    weight=planned.weight,
                    price_input=dep.price.input,
                    price_output=dep.price.output,
                )
            )
        if not candidates:
            params = sorted({p for exc in rejected for p in exc.params})
            raise RequestRejected(
                400,
                f"unsupported parameter(s) for every deployment of '{route.name}': "
                + ", ".join(params),
                "invalid_request_error",
                "unsupported_parameter",
                params[0] if params else None,
            )
        prompt_estimate = chat.estimated_prompt_tokens()
        token_estimate = prompt_estimate + (chat.max_tokens or 0)
        limiter = self.state.limiter

        def opener(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
            deployment = self._deployments[candidate.name]
            stream = stream_events(deployment.pool, deployment.provider, requests[candidate.name])
            if limiter.limit_for(deployment_limit(candidate.name)) is None:
                return stream
            return self._rate_limited(candidate.name, token_estimate, stream)

        race_plan = RacePlan(
            request_id=request_id,
            route=route.name,
            strategy=plan.strategy,
            candidates=candidates,
            k=plan.k,
            heartbeat_after_s=route.heartbeat_after_s if chat.stream else None,
            prompt_estimate=prompt_estimate,
            region=region,
        )
        return Race(
            race_plan, opener, budget=self.budgets.get(route.name), observer=self, rng=self.rng
        )

    async def _rate_limited(
        self, name: str, tokens: int, stream: AsyncGenerator[list[Event], None]
    ) -> AsyncGenerator[list[Event], None]:
        """A deployment at its rpm/tpm limit fails fast, so the race moves on (like an open
        breaker), and is skipped by the planner until its window resets."""
        decision = await self.state.limiter.check_and_take(deployment_limit(name), 1, tokens)
        if not decision.allowed:
            await stream.aclose()
            self.state.health.mark_rate_limited(name, decision.retry_after_s or 1.0)
            yield [
                UpstreamError(
                    429,
                    "rate_limit_exceeded",
                    f"deployment '{name}' is at its configured rate limit",
                    True,
                    code="rate_limit_exceeded",
                    retry_after_s=decision.retry_after_s,
                    opens_circuit=False,
                )
            ]
            return
        try:
            async for batch in stream:
                yield batch
        finally:
            await stream.aclose()

    def on_race_end(self, record: RaceRecord) -> None:
        self.metrics.on_race_end(record)
        for attempt in record.attempts:
            spent = self.spend_by_deployment.get(attempt.deployment, 0.0)
            self.spend_by_deployment[attempt.deployment] = spent + attempt.cost_usd
        for observer in self.observers:
            observer.on_race_end(record)  # type: ignore[attr-defined]
