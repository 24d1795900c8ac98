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
from gateway.reload import ConfigChanges
from gateway.routing.planner import CandidatePlanner
from gateway.routing.table import RouteTable
from gateway.sinks import AccessLog, MetricsSink, RaceSink, SpendSink, VersionTracker
from gateway.state import SharedState
from gateway.streaming.accounting import RaceObserver
from gateway.streaming.policy import LoadBudget
from gateway.streaming.upstream import UpstreamPool
from gateway.upstreams import Upstreams


class Gateway:
    metrics: GatewayMetrics
    state: SharedState
    upstreams: Upstreams

    def __init__(
        self,
        config: Config,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.time,
        *,
        access_log: bool = True,
        previous: Gateway | None = None,
    ) -> None:
        """`previous`: the gateway a config reload replaces. Its metrics, spend and version
        ledgers, shared state (when `state:` is unchanged) and unchanged pools carry over;
        the state of deployments that were removed or got a new identity starts afresh
        (gateway.reload). The previous gateway keeps serving its requests in flight."""
        self.config = config
        self.changes = ConfigChanges.between(previous.config, config) if previous else None
        fresh = self.changes.fresh_state if self.changes else ()
        self.metrics = metrics or (previous.metrics if previous else GatewayMetrics())
        self.routes = RouteTable(config)
        self.upstreams = Upstreams(config, reuse=previous.upstreams if previous else None)
        self.governance = Governance(config)
        self.owns_state = previous is None or not previous.state.reusable_for(config)
        if previous is not None and not self.owns_state:
            self.state = previous.state
            self.state.reconfigure(config, fresh)  # after what could fail is built
        else:
            self.state = SharedState(config, clock)
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
        if self.prewarmer is not None and previous is not None and previous.prewarmer:
            self.prewarmer.carry_regions(previous.prewarmer, config.latency.regions)
        self.spend = SpendSink(self.state.spend)
        self.version_tracker = VersionTracker(self.metrics)
        if previous is not None:  # one ledger across reloads (requests in flight add to it)
            self.spend.by_deployment = previous.spend.by_deployment
            self.version_tracker.versions = previous.version_tracker.versions
            for name in fresh:  # ... minus the deployments started afresh
                self.spend.by_deployment.pop(name, None)
                version = self.version_tracker.versions.pop(name, None)
                if version is not None:
                    self.metrics.version.remove(name, version)
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
        self.watch_state()
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
            budgets=self._budgets(previous),
            metrics=self.metrics,
            sinks=self.sinks,
            prewarmer=self.prewarmer,
            rng=self.rng,
        )

    def _budgets(self, previous: Gateway | None) -> dict[str, LoadBudget]:
        """Each route's extra-load budget; a reload keeps the budgets (and their running
        use) of routes it did not change."""
        kept = previous.pipeline.budgets if previous is not None else {}
        budgets = {}
        for r in self.routes.routes():
            same = previous is not None and (
                previous.config.routes.get(r.name) == self.config.routes.get(r.name)
            )
            budget = kept.get(r.name) if same else None
            if budget is None:
                budget = LoadBudget.for_route(r.max_extra_load, r.min_extra_per_s)
            budgets[r.name] = budget
        return budgets

    def watch_state(self) -> None:
        """Point the scrape-time gauges (health, degraded) at this gateway's state."""
        state = self.state
        self.metrics.watch(state.health.snapshot, lambda: state.degraded)

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
        if self.owns_state:  # a reloaded gateway's kept state is already running
            await self.state.start()
        if self.prewarmer is not None:
            self.prewarmer.start()

    async def stop_background(self) -> None:
        """Stop what works for this config alone (pre-warming): a reload replaced it."""
        if self.prewarmer is not None:
            await self.prewarmer.close()

    async def close(self) -> None:
        await self.stop_background()
        await self.state.close()
        await self.upstreams.close()
