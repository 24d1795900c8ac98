"""The gateway core of one process, wired: shared state, routes, upstreams, planner,
governance, pre-warming, the record sinks and the request pipeline over them.

It holds no request logic of its own: front doors go through `self.pipeline`.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from gateway.access.keyring import KeyRing
from gateway.admission import Admission
from gateway.config.facts import lifecycles
from gateway.config.model import Config
from gateway.console import ConsoleSinks
from gateway.governance.gate import Governance
from gateway.metrics import GatewayMetrics
from gateway.pipeline import Pipeline
from gateway.prewarming import make_prewarmer
from gateway.record import RecordSink
from gateway.region import RegionResolver
from gateway.reload import ConfigChanges
from gateway.routing.planner import CandidatePlanner
from gateway.routing.quarantine import Quarantine
from gateway.routing.table import RouteTable
from gateway.scrub import Scrubber, config_secrets
from gateway.shared_versions import SharedVersions
from gateway.sinks import (
    AccessLog,
    FeedbackSink,
    MetricsSink,
    RaceSink,
    SpendSink,
    VersionTracker,
)
from gateway.state import SharedState
from gateway.streaming.accounting import RaceObserver
from gateway.streaming.policy import LoadBudget
from gateway.streaming.upstream import UpstreamPool
from gateway.telemetry.context import Tracing
from gateway.upstreams import Upstreams

log = structlog.get_logger("gateway")


class Service(Protocol):
    """Background work an entry point attaches (automatic regressions): started after the
    shared state, closed before it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class RegressionView(Protocol):
    """What the admin API shows of the automatic regressions (gateway/regress/auto.py)."""

    @property
    def policy(self) -> str: ...

    @property
    def suite_path(self) -> str: ...

    def runs(self) -> Mapping[str, Mapping[str, Any]]: ...


if TYPE_CHECKING:
    from gateway.telemetry.export import TraceSink


class Gateway:
    metrics: GatewayMetrics
    state: SharedState
    upstreams: Upstreams
    quarantine: Quarantine
    console: ConsoleSinks

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
        ledgers, shared state and quarantine (when `state:` is unchanged) and unchanged
        pools carry over; the state of deployments that were removed or got a new identity
        starts afresh (gateway.reload). The previous gateway keeps serving its requests in
        flight; services (automatic regressions) are attached to each gateway anew."""
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
            self.quarantine = previous.quarantine
        else:
            self.state = SharedState(config, clock)
            layer = self.state.redis_layer  # the process's one Redis client (any topology)
            self.quarantine = Quarantine(
                layer.client if layer is not None else None, prefix=config.state.prefix
            )
        self.keyring = KeyRing(config, self.state.keys)
        self.rng = random.Random()
        self.planner = CandidatePlanner(
            config,
            self.state.health,
            self.state.profiles,
            weights=self.weights,
            rng=self.rng,
            clock=clock,
            on_skip=self.metrics.candidate_skipped,
            quarantined=self.quarantine.__contains__,
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
            FeedbackSink(self.state.feedback),
            self.version_tracker,
        ]
        if access_log:  # off where the caller reports each request itself (regress)
            self.sinks.append(AccessLog())
        # the last requests, live rates, winners' spend: one console across reloads
        self.console = previous.console if previous is not None else ConsoleSinks(clock)
        self.sinks.extend(self.console.sinks)
        self.scrub = Scrubber(config_secrets(config))
        self.tracing: Tracing | None = None  # None: no trace context, no trace headers
        self.trace_sink: TraceSink | None = None
        if config.telemetry.traces.enabled:
            # The otel extra is imported only here: without `telemetry.traces.enabled` the
            # gateway neither needs nor loads OpenTelemetry.
            from gateway.telemetry.export import TraceSink

            self.tracing = Tracing(config.telemetry.traces)
            self.trace_sink = TraceSink(config, self.scrub)
            self.sinks.append(self.trace_sink)
        self.today = lambda: dt.datetime.fromtimestamp(clock(), dt.UTC).date()
        self.watch_state()
        self.services: list[Service] = []
        if self.state.redis_layer is not None:  # model versions seen by every instance
            self.services.append(SharedVersions(self.version_tracker, self.state.redis_layer))
        self.regressions: RegressionView | None = None
        self.pipeline = Pipeline(
            config,
            routes=self.routes,
            admission=Admission(config, self.state.spend, self.state.limiter, self.routes),
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
            scrub=self.scrub,
            tracing=self.tracing,
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
        """Point the scrape-time gauges (health, degraded, pools, shutdowns, quarantine) at
        this gateway (a reloaded one replaces the previous one's)."""
        state, config, pools = self.state, self.config, self.upstreams.pools
        self.metrics.watch(state.health.snapshot, lambda: state.degraded)
        self.metrics.watch_pools(lambda: {name: pool.stats for name, pool in pools.items()})
        self.metrics.watch_shutdowns(
            {n: d.shutdown_date for n, d in config.deployments.items() if d.shutdown_date},
            self.today,
        )
        self.metrics.watch_quarantine(list(config.deployments), self.quarantine.held)

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
        """Learned weights for `weighted` routes (empty until the worker has run); a copy
        made by the learner, the caller's to keep."""
        return self.state.weights.weights()

    def warn_deprecations(self) -> None:
        """One warning per deployment whose model is deprecated or being shut down."""
        for name, life in lifecycles(self.config, self.today()):
            dep = self.config.deployments[name]
            log.warning(
                "model_deprecated",
                deployment=name,
                state=life.state,
                shutdown_date=life.shutdown_date.isoformat() if life.shutdown_date else None,
                days_left=life.days_left,
                detail=life.describe(dep.model),
            )

    async def start(self) -> None:
        self.warn_deprecations()
        if self.owns_state:  # a reloaded gateway's kept state is already running
            await self.state.start()
            await self.quarantine.start()
        for service in self.services:
            await service.start()
        if self.owns_state:
            await self.keyring.start()  # starts the runtime key store (part of the state)
        if self.prewarmer is not None:
            self.prewarmer.start()

    async def stop_background(self) -> None:
        """Stop what works for this config alone (pre-warming, services, the key ring's
        view of the runtime keys): a reload replaced it."""
        if self.prewarmer is not None:
            await self.prewarmer.close()
        for service in reversed(self.services):
            await service.close()
        self.keyring.detach()

    async def close_state(self) -> None:
        """Close the shared state (runtime keys, quarantine, backend): no gateway uses it."""
        await self.keyring.close()
        await self.quarantine.close()
        await self.state.close()

    async def close(self) -> None:
        await self.stop_background()
        await self.close_state()
        await self.upstreams.close()
        if self.trace_sink is not None:  # sends the spans still queued
            await self.trace_sink.close()
