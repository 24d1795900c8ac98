"""Prometheus metrics, fed from one RaceRecord per request (label values come from config only).

The families a request updates are `loop_metrics`' (plain floats, updated and scraped on
the loop's thread: no lock per increment); the rare ones (reloads, versions, regression
runs) are prometheus_client's own. Both kinds render through one registry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.logs import log_lines_dropped
from gateway.loop_metrics import LoopCounter, LoopGauge, LoopHistogram
from gateway.streaming.accounting import RaceRecord

TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = LoopCounter(
            "gateway_requests",
            "Chat requests by route and outcome",
            ["route", "outcome"],
            registry=r,
        )
        self.attempts = LoopCounter(
            "gateway_upstream_attempts",
            "Upstream attempts by deployment and outcome",
            ["deployment", "outcome"],
            registry=r,
        )
        self.ttft = LoopHistogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Upstream time to first token per deployment (winners and completed attempts)",
            ["deployment"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.request_ttft = LoopHistogram(
            "gateway_time_to_first_token_seconds",
            "Time from request start to the first token sent to the client",
            ["route"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.overhead = LoopHistogram(
            "gateway_overhead_seconds",
            "Time the gateway adds before the first token (parse, start, hand-over)",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.wins = LoopCounter(
            "gateway_race_wins", "Races won per deployment", ["deployment"], registry=r
        )
        self.wasted_tokens = LoopCounter(
            "gateway_wasted_tokens",
            "Tokens billed to cancelled attempts",
            ["deployment"],
            registry=r,
        )
        self.wasted_cost = LoopCounter(
            "gateway_wasted_cost_usd",
            "Estimated cost of cancelled attempts",
            ["deployment"],
            registry=r,
        )
        self.extra_attempts = LoopCounter(
            "gateway_speculative_attempts",
            "Attempts started by racing or hedging",
            ["route"],
            registry=r,
        )
        self.budget_limited = LoopCounter(
            "gateway_extra_load_budget_exhausted",
            "Requests served without racing because the extra-load budget was spent",
            ["route"],
            registry=r,
        )
        self.budget_refused = LoopCounter(
            "gateway_extra_load_budget_refused",
            "Speculative attempts (racing, hedging) the extra-load budget did not start",
            ["route"],
            registry=r,
        )
        self.resumes = LoopCounter(
            "gateway_resumes",
            "Cut answers sent to a backup to continue, by route and outcome (resumed | failed)",
            ["route", "outcome"],
            registry=r,
        )
        self.rejected = LoopCounter(
            "gateway_rejected_requests",
            "Requests refused before any upstream attempt, by front door and reason",
            ["door", "reason"],
            registry=r,
        )
        self.unknown_region = LoopCounter(
            "gateway_unknown_region_requests",
            "Requests whose region header named no configured region",
            ["door"],
            registry=r,
        )
        self.output_filter = LoopCounter(
            "gateway_output_filter_matches",
            "Answers in which the output filter matched, by route and pattern or detector",
            ["route", "match"],
            registry=r,
        )
        self.in_flight = LoopGauge("gateway_in_flight_requests", "Requests in progress", r)
        self.cost = LoopCounter(
            "gateway_cost_usd",
            "Estimated upstream cost by route and deployment (losers included)",
            ["route", "deployment"],
            registry=r,
        )
        self.key_cost = LoopCounter(
            "gateway_key_cost_usd", "Estimated upstream cost per gateway key", ["key"], registry=r
        )
        self.governance = LoopCounter(
            "gateway_governance_actions",
            "Requests blocked, redacted or restricted by the data policy",
            ["action"],
            registry=r,
        )
        self.version_changes = Counter(
            "gateway_model_version_changes",
            "Upstream-reported model version changes seen in live traffic",
            ["deployment"],
            registry=r,
        )
        self.candidates_skipped = Counter(
            "gateway_candidates_skipped",
            "Candidates dropped by planning before any attempt: the model's context window "
            "or a capability the request needs (reason)",
            ["deployment", "reason"],
            registry=r,
        )
        self.auto_regress_runs = Counter(
            "gateway_auto_regress_runs",
            "Regression runs started by a model version change, by result (passed, "
            "regressions, error, leased_elsewhere, rate_limited)",
            ["deployment", "result"],
            registry=r,
        )
        self.auto_regress_cost = Counter(
            "gateway_auto_regress_cost_usd",
            "Estimated upstream cost of automatic regression runs",
            ["deployment"],
            registry=r,
        )
        self.version = Gauge(
            "gateway_model_version_info",
            "The model version the upstream last reported (value 1)",
            ["deployment", "version"],
            registry=r,
        )

        self.reloads = Counter(
            "gateway_config_reloads",
            "Config reloads by result: ok (swapped), invalid (refused, the old config serves)",
            ["result"],
            registry=r,
        )
        self.config_info = Gauge(
            "gateway_config_info",
            "The config that serves (value 1): sha256 of the file (first 12 hex digits)",
            ["hash"],
            registry=r,
        )
        self.config_loaded = Gauge(
            "gateway_config_loaded_timestamp_seconds",
            "When the config that serves was loaded (Unix time)",
            registry=r,
        )
        r.register(_LogCollector())
        self._watched: dict[str, Collector] = {}  # kind -> the collector reading a gateway

    def watch(
        self, snapshot: Callable[[], Mapping[str, Mapping[str, Any]]], degraded: Callable[[], bool]
    ) -> None:
        """Gauges read at scrape time from the health registry and the state backend (a
        reloaded gateway's state replaces the previous one's)."""
        self._watch("health", _HealthCollector(snapshot, degraded))

    def _watch(self, kind: str, collector: Collector | None) -> None:
        """Register `collector` in place of the previous one of its kind (a config reload
        builds a new gateway; its collectors replace the old gateway's)."""
        old = self._watched.pop(kind, None)
        if old is not None:
            self.registry.unregister(old)
        if collector is not None:
            self._watched[kind] = collector
            self.registry.register(collector)

    def config_loaded_now(self, config_hash: str, at: float) -> None:
        self.config_info.clear()
        self.config_info.labels(config_hash).set(1)
        self.config_loaded.set(at)

    def candidate_skipped(self, deployment: str, reason: str) -> None:
        self.candidates_skipped.labels(deployment, reason).inc()

    def watch_shutdowns(
        self, shutdowns: Mapping[str, dt.date], today: Callable[[], dt.date]
    ) -> None:
        """`gateway_model_shutdown_days{deployment}`: days until the deployment's model is
        shut down (negative once past), computed at scrape time."""
        self._watch("shutdowns", _ShutdownCollector(dict(shutdowns), today) if shutdowns else None)

    def watch_quarantine(
        self, deployments: list[str], held: Callable[[], Mapping[str, Any]]
    ) -> None:
        """`gateway_deployment_quarantined{deployment}`, read at scrape time."""
        self._watch("quarantine", _QuarantineCollector(deployments, held))

    def on_race_end(self, record: RaceRecord) -> None:
        route = record.route
        outcome = record.stream_outcome if record.winner else f"error_{record.status // 100}xx"
        self.requests.labels(route, outcome).inc()
        if record.budget_refused:
            self.budget_limited.labels(route).inc()
            self.budget_refused.labels(route).inc(record.budget_refused)
        if record.resumes:  # each continuation race has at most one winner
            won = sum(1 for a in record.attempts if a.resumed_from and a.outcome == "won")
            if won:
                self.resumes.labels(route, "resumed").inc(won)
            if record.resumes > won:
                self.resumes.labels(route, "failed").inc(record.resumes - won)
        if record.winner is not None and record.ttft_s is not None:
            self.request_ttft.labels(route).observe(record.ttft_s)
            self.wins.labels(record.winner).inc()
        for attempt in record.attempts:
            deployment = attempt.deployment
            self.attempts.labels(deployment, attempt.outcome).inc()
            if attempt.speculative:
                self.extra_attempts.labels(route).inc()
            if attempt.ttft_s is not None:
                self.ttft.labels(deployment).observe(attempt.ttft_s)
            self.cost.labels(route, deployment).inc(attempt.cost_usd)
            if attempt.outcome == "cancelled":
                self.wasted_tokens.labels(deployment).inc(
                    attempt.input_tokens + attempt.output_tokens
                )
                self.wasted_cost.labels(deployment).inc(attempt.cost_usd)

    def watch_pools(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        """Upstream connection counters per provider, read at scrape time (`PoolStats`)."""
        self._watch("pools", _PoolCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _HealthCollector(Collector):
    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, Mapping[str, Any]]],
        degraded: Callable[[], bool],
    ) -> None:
        self._snapshot = snapshot
        self._degraded = degraded

    def collect(self) -> Iterator[GaugeMetricFamily]:
        score = GaugeMetricFamily(
            "gateway_deployment_health_score", "Health score 0..1", labels=["deployment"]
        )
        open_ = GaugeMetricFamily(
            "gateway_deployment_breaker_open",
            "1 while the deployment is skipped (open, cooling or rate-limited)",
            labels=["deployment"],
        )
        errors = GaugeMetricFamily(
            "gateway_deployment_error_rate",
            "Error rate over the health window",
            labels=["deployment"],
        )
        for name, item in self._snapshot().items():
            score.add_metric([name], float(item.get("health_score", 0.0)))
            skipped = item.get("state") in ("open", "cooling") or bool(item.get("rate_limited"))
            open_.add_metric([name], 1.0 if skipped else 0.0)
            errors.add_metric([name], float(item.get("error_rate", 0.0)))
        degraded = GaugeMetricFamily(
            "gateway_state_degraded",
            "1 while a Redis-backed component runs on this instance's local view only",
        )
        degraded.add_metric([], 1.0 if self._degraded() else 0.0)
        yield from (score, open_, errors, degraded)


class _ShutdownCollector(Collector):
    def __init__(self, shutdowns: dict[str, dt.date], today: Callable[[], dt.date]) -> None:
        self._shutdowns = shutdowns
        self._today = today

    def collect(self) -> Iterator[GaugeMetricFamily]:
        days = GaugeMetricFamily(
            "gateway_model_shutdown_days",
            "Days until the deployment's model is shut down (catalogue or config)",
            labels=["deployment"],
        )
        today = self._today()
        for name, date in self._shutdowns.items():
            days.add_metric([name], float((date - today).days))
        yield days


class _QuarantineCollector(Collector):
    def __init__(self, deployments: list[str], held: Callable[[], Mapping[str, Any]]) -> None:
        self._deployments = deployments
        self._held = held

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "gateway_deployment_quarantined",
            "1 while the deployment is kept out of races after a failed regression suite",
            labels=["deployment"],
        )
        held = self._held()
        for name in self._deployments:
            gauge.add_metric([name], 1.0 if name in held else 0.0)
        yield gauge


class _LogCollector(Collector):
    """The process's log lines dropped because stderr's reader fell behind (log_writer)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "gateway_log_lines_dropped",
            "Log lines dropped because the reader of the log (stderr) fell behind",
            value=log_lines_dropped(),
        )


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        connections = CounterMetricFamily(
            "gateway_upstream_connections",
            "Upstream connections per provider: opened (new), reused (idle keep-alive), "
            "replaced (a cut connection, in the background) or replace_failed",
            labels=["provider", "event"],
        )
        prewarm = CounterMetricFamily(
            "gateway_prewarm_requests",
            "Pre-warm requests per provider that left an idle connection (ok) or failed",
            labels=["provider", "result"],
        )
        for name, stats in self._stats().items():
            connections.add_metric([name, "opened"], float(stats.opened))
            connections.add_metric([name, "reused"], float(stats.reused))
            connections.add_metric([name, "replaced"], float(stats.replaced))
            connections.add_metric([name, "replace_failed"], float(stats.replace_failed))
            prewarm.add_metric([name, "ok"], float(stats.warmed))
            prewarm.add_metric([name, "failed"], float(stats.warm_failed))
        yield from (connections, prewarm)
