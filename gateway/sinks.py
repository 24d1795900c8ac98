"""The sinks every `RequestRecord` goes to: metrics, spend (per key and per deployment),
the race observers (latency profiles, health), the feedback index, the model-version
tracker and the access log. Each takes the record on the loop, cheaply, and never raises
into the request: a sink that fails is logged and the others still run (see `emit`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from gateway.logs import info_line
from gateway.metrics import GatewayMetrics
from gateway.record import RecordSink, RequestRecord
from gateway.routing.feedback import FeedbackStore
from gateway.routing.spend import SpendTracker
from gateway.streaming.accounting import RaceObserver

access_log = structlog.get_logger("gateway.access")
log = structlog.get_logger("gateway")


def emit(sinks: Sequence[RecordSink], rec: RequestRecord) -> None:
    for sink in sinks:
        try:
            sink.record(rec)
        except Exception:  # one broken sink must not lose the record for the others
            log.exception("record_sink_failed", sink=type(sink).__name__)


class MetricsSink:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def record(self, rec: RequestRecord) -> None:
        m = self.metrics
        if rec.region_unknown is not None:
            m.unknown_region.labels(rec.door).inc()
        if rec.outcome == "rejected":
            m.rejected.labels(rec.door, rec.reason or "unknown").inc()
            if rec.route is not None:
                m.requests.labels(rec.route, f"error_{rec.status // 100}xx").inc()
            return
        if rec.race is not None:
            m.on_race_end(rec.race)
        m.key_cost.labels(rec.key_id).inc(rec.cost_usd)
        for match in rec.output_filter:
            m.output_filter.labels(rec.route or "", match).inc()
        m.overhead.observe(rec.setup_s)


class SpendSink:
    """Spend per key and per deployment (the budgets' ledger, day and month, shared and
    kept by the state backend), and this instance's running total per deployment."""

    def __init__(self, spend: SpendTracker) -> None:
        self.spend = spend
        self.by_deployment: dict[str, float] = {}

    def record(self, rec: RequestRecord) -> None:
        if rec.race is None:
            return
        self.spend.add_record(rec.key_id, rec.race)
        for attempt in rec.race.attempts:
            spent = self.by_deployment.get(attempt.deployment, 0.0)
            self.by_deployment[attempt.deployment] = spent + attempt.cost_usd


class FeedbackSink:
    """The feedback index: which deployment served which request, for which key (only that
    key may rate it)."""

    def __init__(self, feedback: FeedbackStore) -> None:
        self.feedback = feedback

    def record(self, rec: RequestRecord) -> None:
        winner = rec.winner
        if winner is not None:
            self.feedback.remember(rec.request_id, winner, rec.route or "", rec.key_id)


class RaceSink:
    """Adapts a `RaceObserver` (health, latency profiles, bench collectors)
    to the record: it sees every request that reached the race."""

    def __init__(self, observer: RaceObserver) -> None:
        self.observer = observer

    def record(self, rec: RequestRecord) -> None:
        if rec.race is not None:
            self.observer.on_race_end(rec.race)


class VersionTracker:
    """The model version each deployment's upstream last reported; logs and counts changes
    and tells `listeners` (deployment, old, new): automatic regression runs."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self.versions: dict[str, str] = {}
        self.listeners: list[Callable[[str, str, str], None]] = []
        # every version noticed in this instance's traffic (shared_versions.py shares them)
        self.noticed: list[Callable[[str, str], None]] = []

    def record(self, rec: RequestRecord) -> None:
        if rec.model_version is not None and rec.winner is not None:
            self.note(rec.winner, rec.model_version)

    def note(self, deployment: str, version: str) -> None:
        old = self.versions.get(deployment)
        if old == version:
            return
        self.versions[deployment] = version
        if old is not None:
            log.info("model_version_changed", deployment=deployment, old=old, new=version)
            self.metrics.version_changes.labels(deployment).inc()
            self.metrics.version.remove(deployment, old)
        self.metrics.version.labels(deployment, version).set(1)
        for noticed in self.noticed:
            noticed(deployment, version)
        if old is not None:
            for listener in self.listeners:
                listener(deployment, old, version)

    def adopt(self, deployment: str, version: str) -> None:
        """A version another instance noticed: shown and gauged here, not a change seen here
        (no log line, no counter, no listener)."""
        old = self.versions.get(deployment)
        self.versions[deployment] = version
        if old is not None and old != version:
            self.metrics.version.remove(deployment, old)
        self.metrics.version.labels(deployment, version).set(1)


class AccessLog:
    """One line per request, refused ones included (with the reason)."""

    def record(self, rec: RequestRecord) -> None:
        race = rec.race
        fields = {
            "request_id": rec.request_id,
            "door": rec.door,
            "route": rec.route,
            "model": rec.model,
            "region": rec.region,
            "region_unknown": rec.region_unknown,
            "winner": rec.winner,
            "status": rec.status,
            "outcome": rec.outcome,
            "reason": rec.reason,
            "output_filter": list(rec.output_filter) or None,
            "attempts": len(race.attempts) if race is not None else 0,
            "budget_limited": race.budget_limited if race is not None else False,
            "budget_refused": race.budget_refused if race is not None else 0,
            "resumes": race.resumes if race is not None else 0,
            "ttft_ms": round(race.ttft_s * 1000, 1) if race and race.ttft_s is not None else None,
            "total_ms": round(rec.total_s * 1000, 1),
            "tokens": rec.output_tokens,
            "key": rec.key_id,
            "cost_usd": round(rec.cost_usd, 8),
            "wasted_usd": round(rec.wasted_usd, 8),
        }
        if not info_line("request", fields):
            access_log.info("request", **fields)
