"""The gateway core: providers, pools, routes and race set-up for one process.

The server asks it for a prepared race; it knows which adapter and pool serve
each deployment, so neither the server nor the engine needs to.
"""

from __future__ import annotations

import random
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

from gateway.config.model import Config, DeploymentConfig
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
from gateway.routing.table import ResolvedRoute, RouteTable
from gateway.streaming.accounting import RaceRecord
from gateway.streaming.events import Event
from gateway.streaming.policy import LoadBudget
from gateway.streaming.race import Candidate, Race, RacePlan
from gateway.streaming.upstream import UpstreamPool, stream_events


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
    def __init__(self, config: Config, metrics: GatewayMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or GatewayMetrics()
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
            route.name: LoadBudget(route.max_extra_load) for route in self.routes.routes()
        }
        self.observers: list[object] = []
        self.rng = random.Random()

    async def close(self) -> None:
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
        self, chat: ChatRequest, route: ResolvedRoute, request_id: str, region: str
    ) -> Race:
        """Build every candidate's upstream request and a Race over the ones that can serve it."""
        requests: dict[str, UpstreamRequest] = {}
        rejected: list[UnsupportedParams] = []
        candidates: list[Candidate] = []
        for dep in route.deployments:
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
                    hedge_delay_s=route.hedge_delay_s,
                    weight=dep.weight,
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

        def opener(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
            deployment = self._deployments[candidate.name]
            return stream_events(deployment.pool, deployment.provider, requests[candidate.name])

        plan = RacePlan(
            request_id=request_id,
            route=route.name,
            strategy=route.strategy,
            candidates=candidates,
            k=route.k,
            heartbeat_after_s=route.heartbeat_after_s if chat.stream else None,
            prompt_estimate=chat.estimated_prompt_tokens(),
            region=region,
        )
        return Race(plan, opener, budget=self.budgets.get(route.name), observer=self, rng=self.rng)

    def on_race_end(self, record: RaceRecord) -> None:
        self.metrics.on_race_end(record)
        for observer in self.observers:
            observer.on_race_end(record)  # type: ignore[attr-defined]
