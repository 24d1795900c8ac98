"""Prometheus metrics, fed from one RaceRecord per request (label values come from config only)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from gateway.streaming.accounting import RaceRecord

TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Chat requests by route and outcome",
            ["route", "outcome"],
            registry=r,
        )
        self.attempts = Counter(
            "gateway_upstream_attempts",
            "Upstream attempts by deployment and outcome",
            ["deployment", "outcome"],
            registry=r,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Upstream time to first token per deployment (winners and completed attempts)",
            ["deployment"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.request_ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time from request start to the first token sent to the client",
            ["route"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Time the gateway adds before the first token (parse, start, hand-over)",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.wins = Counter(
            "gateway_race_wins", "Races won per deployment", ["deployment"], registry=r
        )
        self.wasted_tokens = Counter(
            "gateway_wasted_tokens",
            "Tokens billed to cancelled attempts",
            ["deployment"],
            registry=r,
        )
        self.wasted_cost = Counter(
            "gateway_wasted_cost_usd",
            "Estimated cost of cancelled attempts",
            ["deployment"],
            registry=r,
        )
        self.extra_attempts = Counter(
            "gateway_speculative_attempts",
            "Attempts started by racing or hedging",
            ["route"],
            registry=r,
        )
        self.budget_limited = Counter(
            "gateway_extra_load_budget_exhausted",
            "Requests served without racing because the extra-load budget was spent",
            ["route"],
            registry=r,
        )
        self.in_flight = Gauge("gateway_in_flight_requests", "Requests in progress", registry=r)

    def on_race_end(self, record: RaceRecord) -> None:
        outcome = record.stream_outcome if record.winner else f"error_{record.status // 100}xx"
        self.requests.labels(record.route, outcome).inc()
        if record.budget_limited:
            self.budget_limited.labels(record.route).inc()
        if record.winner is not None and record.ttft_s is not None:
            self.request_ttft.labels(record.route).observe(record.ttft_s)
            self.wins.labels(record.winner).inc()
        for attempt in record.attempts:
            self.attempts.labels(attempt.deployment, attempt.outcome).inc()
            if attempt.speculative:
                self.extra_attempts.labels(record.route).inc()
            if attempt.ttft_s is not None:
                self.ttft.labels(attempt.deployment).observe(attempt.ttft_s)
            if attempt.outcome == "cancelled":
                self.wasted_tokens.labels(attempt.deployment).inc(
                    attempt.input_tokens + attempt.output_tokens
                )
                self.wasted_cost.labels(attempt.deployment).inc(attempt.cost_usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)
