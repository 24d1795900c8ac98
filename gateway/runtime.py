"""The gateway core of one process, wired: shared state, routes, upstreams, planner,
governance, pre-warming, the record sinks and the request pipeline over them.

It holds no request logic of its own: front doors go through `self.pipeline`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping

from gateway.admission import Admission
from gateway.config.model import Config
from gateway.governance.gate import Governance
from gateway.metrics import GatewayMetrics
from gateway.pipeline import Pipeline
from gateway.prewarming import make_prewarmer
from gateway.record import RecordSink
from gateway.region import RegionResolver
from gateway.routing.planner import CandidatePlanner
from gateway.routing.table import RouteTable
from gateway.sinks import AccessLog, MetricsSink, RaceSink, SpendSink, VersionTracker
from gateway.state import SharedState
from gateway.streaming.accounting import RaceObserver
from gateway.streaming.policy import LoadBudget
from gateway.streaming.upstream import UpstreamPool
from gateway.upstreams import Upstreams


class Gateway:
    def __init__(
        self,
        config: Config,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.time,
        *,
        access_log: bool = True,
    ) -> None:
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.state = SharedState(config, clock)
        self.routes = RouteTable(config)
        self.upstreams = Upstreams(config)
        self.rng = random.Random()
        self.planner = CandidatePlanner(
            config,
            self.state.health,
            self.state.profiles,
            weights=self.weights,
            rng=self.rng,
            clock=clock,
        )
        self.prewarmer = make_prewarmer(config, self.state.profiles, self.upstreams, clock)
        self.governance = Governance(config)
        self.spend = SpendSink(self.state.spend)
        self.version_tracker = VersionTracker(self.metrics)
        self.sinks: list[RecordSink] = [
            MetricsSink(self.metrics),
            self.spend,
            RaceSink(self.state.health),
            RaceSink(self.state.profiles),
            RaceSink(self.state.feedback),
            self.version_tracker,
        ]
        if access_log:  # off where the caller reports each request itself (regress)
            self.sinks.append(AccessLog())
        self.metrics.watch(self.state.health.snapshot, lambda: self.state.degraded)
        self.pipeline = Pipeline(
            config,
            routes=self.routes,
            admission=Admission(config, self.state.spend, self.state.limiter),
            regions=RegionResolver(config.latency),
            governance=self.governance,
            planner=self.planner,
            upstreams=self.upstreams,
            limiter=self.state.limiter,
            health=self.state.health,
            budgets={
                r.name: LoadBudget.for_route(r.max_extra_load, r.min_extra_per_s)
                for r in self.routes.routes()
            },
            metrics=self.metrics,
            sinks=self.sinks,
            prewarmer=self.prewarmer,
            rng=self.rng,
        )

    @property
    def pools(self) -> Mapping[str, UpstreamPool]:
        return self.upstreams.pools

    @property
    def versions(self) -> Mapping[str, str]:
        """deployment -> the model version its upstream last reported"""
        return self.version_tracker.versions

    @property
    def spend_by_deployment(self) -> Mapping[str, float]:
        return self.spend.by_deployment

    def add_observer(self, observer: RaceObserver) -> None:
        """Let `observer` see every race's record (benchmarks' collectors, ...)."""
        self.sinks.append(RaceSink(observer))

    def weights(self) -> dict[str, float]:
        """Learned weights for `weighted` routes (empty until the worker has run)."""
        return dict(self.state.weights.weights())

    async def start(self) -> None:
        await self.state.start()
        if self.prewarmer is not None:
            self.prewarmer.start()

    async def close(self) -> None:
        if self.prewarmer is not None:
            await self.prewarmer.close()
        await self.state.close()
        await self.upstreams.close()
