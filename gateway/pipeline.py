"""The request pipeline every front door uses, transport-free.

A door parses its wire format into a `ChatRequest` (the embeddings door: an
`EmbedRequest`) and hands it here with the caller's identity. `Pipeline.open` runs, in
order: route lookup (a chat request needs a chat route, an embeddings request an
embedding route), admission (the key's budget and rate limit), region, governance (PII
policy, residency), planning (routing/ + latency/) and the building of each candidate's
upstream request (an embeddings request: a one-shot call), and returns an `Answer`: the
race's first outcome, the further batches (with the governance output transform
applied), and `aclose()`, which emits exactly one `RequestRecord` to the sinks.
A refusal at any stage is a `Rejected`, recorded the same way before it is raised; the
server renders it in the door's error shape.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import structlog

from gateway.admission import Admission
from gateway.answer import Answer, Caller
from gateway.config.model import Config, DeploymentConfig
from gateway.governance.gate import (
    Decision,
    EmbedDecision,
    Governance,
    PolicyRejected,
)
from gateway.latency.prewarm import PreWarmer
from gateway.metrics import GatewayMetrics
from gateway.providers.base import OneShotCall, UpstreamRequest
from gateway.record import Door, RecordSink, RequestRecord
from gateway.region import RegionResolver
from gateway.rejection import Rejected
from gateway.request import AnyRequest, ChatRequest, EmbedRequest
from gateway.routing.health import AllUnavailable, HealthRegistry
from gateway.routing.planner import CandidatePlanner, NoCandidates, Plan
from gateway.routing.ratelimit import RateLimiter
from gateway.routing.table import ResolvedRoute, RouteTable
from gateway.scrub import Scrubber, config_secrets
from gateway.sinks import emit
from gateway.streaming.plan import Candidate, Opener, RacePlan
from gateway.streaming.policy import LoadBudget
from gateway.streaming.race import Race
from gateway.streaming.resume import Continuer, Resumer
from gateway.telemetry.context import TraceContext, Tracing
from gateway.upstreams import Built

__all__ = ["Answer", "Caller", "Pipeline", "UpstreamBuilder"]

audit = structlog.get_logger("gateway.audit")


class UpstreamBuilder(Protocol):
    """Builds a plan's upstream requests and the race's opener (`upstreams.Upstreams`;
    tests give fakes, so a pipeline rule is tested with no sockets)."""

    def build(self, chat: AnyRequest, plan: Plan) -> Built: ...

    def opener(
        self,
        requests: dict[str, UpstreamRequest | OneShotCall],
        token_estimate: int,
        limiter: RateLimiter,
        health: HealthRegistry,
    ) -> Opener: ...

    def continuer(
        self,
        chat: ChatRequest,
        candidates: list[Candidate],
        limiter: RateLimiter,
        health: HealthRegistry,
    ) -> Continuer:
        """How a cut answer to `chat` goes on: on those of `candidates` that can continue a
        prefix (resume on a backup)."""
        ...


class Pipeline:
    def __init__(
        self,
        config: Config,
        *,
        routes: RouteTable,
        admission: Admission,
        regions: RegionResolver,
        governance: Governance,
        planner: CandidatePlanner,
        upstreams: UpstreamBuilder,
        limiter: RateLimiter,
        health: HealthRegistry,
        budgets: Mapping[str, LoadBudget],
        metrics: GatewayMetrics,
        sinks: Sequence[RecordSink],
        prewarmer: PreWarmer | None = None,
        rng: random.Random | None = None,
        scrub: Scrubber | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.scrub = scrub or Scrubber(config_secrets(config))
        self.tracing = tracing  # None: traces are off, no trace header goes upstream
        self.config = config
        self.routes = routes
        self.admission = admission
        self.regions = regions
        self.governance = governance
        self.planner = planner
        self.upstreams = upstreams
        self.limiter = limiter
        self.health = health
        self.budgets = budgets
        self.metrics = metrics
        self.sinks = sinks
        self.prewarmer = prewarmer
        self.rng = rng or random.Random()

    async def open(
        self,
        chat: AnyRequest,
        caller: Caller,
        door: Door,
        route: ResolvedRoute | None = None,
    ) -> Answer:
        """Admit, govern and plan the request; the race starts on the Answer's `first()`.
        `route` overrides the lookup of `chat.model` (regress names its target)."""
        rec = RequestRecord(caller.request_id, door, caller.key_id, chat.model, chat.stream)
        rec.trace = self._trace(caller)
        named = route is None
        try:
            if route is None:
                route = self.routes.get(chat.model)
            if route is None:
                raise Rejected(
                    404,
                    f"The model '{chat.model}' does not exist: it names no route or deployment",
                    "invalid_request_error",
                    "model_not_found",
                    "model",
                )
            rec.route = route.name
            self.admission.check_scope(caller.key, route, named)
            _check_type(chat, route)
            await self.admission.admit(
                caller.key_id, caller.key, chat.estimated_prompt_tokens() + (chat.max_tokens or 0)
            )
            found = self.regions.of(caller.headers)
            region = rec.region = found.name
            rec.region_unknown = found.unknown
            if self.prewarmer is not None:
                self.prewarmer.note_region(region)
            decision = self._govern(chat, route.name, caller)
            try:
                race, resumer = self._race(decision.request, route, caller, rec, decision.allowed)
            except Rejected as exc:
                if decision.audit is not None:
                    audit.info(
                        "governance",
                        request_id=caller.request_id,
                        key=caller.key_id,
                        rule=exc.code,
                        **decision.audit,
                    )
                raise
        except Rejected as exc:
            self._refused(rec, exc, caller)
            raise
        rec.setup_s = time.perf_counter() - caller.started
        return Answer(
            race,
            decision.transform,
            rec,
            self.sinks,
            self.metrics,
            caller.started,
            self.scrub,
            resumer,
        )

    def refuse(self, caller: Caller, door: Door, model: str | None, exc: Rejected) -> None:
        """Record a request the door refused before the pipeline (unparsable body, ...)."""
        rec = RequestRecord(caller.request_id, door, caller.key_id, model)
        rec.trace = self._trace(caller)
        self._refused(rec, exc, caller)

    def _trace(self, caller: Caller) -> TraceContext | None:
        if self.tracing is None:
            return None
        return self.tracing.start(caller.headers, caller.started)

    def _refused(self, rec: RequestRecord, exc: Rejected, caller: Caller) -> None:
        rec.outcome = "rejected"
        rec.status = exc.status
        rec.reason = exc.code or exc.type
        rec.total_s = time.perf_counter() - caller.started
        emit(self.sinks, rec)

    def _govern(self, chat: AnyRequest, route: str, caller: Caller) -> Decision | EmbedDecision:
        """PII policy and residency: block (400), redact, or restrict the candidates; one
        audit line per request that was touched (types and counts, never values)."""
        try:
            if isinstance(chat, EmbedRequest):
                return self._audited(
                    self.governance.decide_embedding(chat, route, caller.key), caller
                )
            decision = self.governance.decide(chat, route, caller.key)
        except PolicyRejected as exc:
            audit.info(
                "governance",
                request_id=caller.request_id,
                key=caller.key_id,
                rule=exc.code,
                **exc.audit,
            )
            self.metrics.governance.labels("block").inc()
            raise Rejected(400, exc.message, "invalid_request_error", exc.code) from None
        return self._audited(decision, caller)

    def _audited(
        self, decision: Decision | EmbedDecision, caller: Caller
    ) -> Decision | EmbedDecision:
        if decision.audit is not None:
            rule = "redact" if decision.audit.get("redacted") else "restrict"
            audit.info(
                "governance",
                request_id=caller.request_id,
                key=caller.key_id,
                rule=rule,
                **decision.audit,
            )
            self.metrics.governance.labels(rule).inc()
        return decision

    def _race(
        self,
        chat: AnyRequest,
        route: ResolvedRoute,
        caller: Caller,
        rec: RequestRecord,
        allowed: Callable[[DeploymentConfig], bool] | None,
    ) -> tuple[Race, Resumer | None]:
        """Plan the candidates, build their upstream requests, and set up the race (and its
        resumer, on a route with `resume`)."""
        region = rec.region or ""
        reasoning = caller.headers.get(self.config.routing.reasoning_header)
        try:
            plan = self.planner.plan(chat, route, region, reasoning, allowed, caller.request_id)
        except AllUnavailable as exc:
            wait = max(1, math.ceil(exc.retry_in_s))
            if exc.rate_limited:
                raise Rejected(
                    429,
                    f"every deployment of '{route.name}' is at its rate limit; retry in {wait}s",
                    "rate_limit_exceeded",
                    "all_deployments_rate_limited",
                    headers={"retry-after": str(wait)},
                ) from None
            raise Rejected(
                503,
                f"every deployment of '{route.name}' is unavailable (open circuit or asked to "
                f"back off) and is being probed; retry in {wait}s",
                "service_unavailable",
                "all_deployments_unavailable",
                headers={"retry-after": str(wait)},
            ) from None
        except NoCandidates:
            raise Rejected(
                400,
                f"no deployment of '{route.name}' may serve this request under the data policy "
                "(residency or local-only)",
                "invalid_request_error",
                "no_compliant_deployment",
            ) from None
        rec.tier = plan.tier
        built = self.upstreams.build(chat, plan)
        if not built.candidates:
            params = built.unsupported
            raise Rejected(
                400,
                f"unsupported parameter(s) for every deployment of '{route.name}': "
                + ", ".join(params),
                "invalid_request_error",
                "unsupported_parameter",
                params[0] if params else None,
            )
        if rec.trace is not None and self.tracing is not None:
            self.tracing.note_request(rec.trace, chat)
            self.tracing.add_headers(rec.trace, built.requests)
        prompt_estimate = chat.estimated_prompt_tokens()
        opener = self.upstreams.opener(
            built.requests, prompt_estimate + (chat.max_tokens or 0), self.limiter, self.health
        )
        race_plan = RacePlan(
            request_id=caller.request_id,
            route=route.name,
            strategy=plan.strategy,
            candidates=built.candidates,
            k=plan.k,
            heartbeat_after_s=route.heartbeat_after_s if chat.stream else None,
            prompt_estimate=prompt_estimate,
            region=region,
        )
        queue_size = self.config.limits.stream_buffer_events
        race = Race(
            race_plan,
            opener,
            budget=self.budgets.get(route.name),
            rng=self.rng,
            queue_size=queue_size,
        )
        resumer = None
        if route.resume and isinstance(chat, ChatRequest):
            continuer = self.upstreams.continuer(chat, built.candidates, self.limiter, self.health)
            resumer = Resumer(
                race, continuer, route.max_resumes, rng=self.rng, queue_size=queue_size
            )
        race.start()  # last: nothing after it may fail, the answer must close the race
        return race, resumer


def _check_type(request: AnyRequest, route: ResolvedRoute) -> None:
    """A chat request names a chat route, an embeddings request an embedding route."""
    wanted = "embedding" if isinstance(request, EmbedRequest) else "chat"
    if route.type != wanted:
        served = "embeddings (POST /v1/embeddings)" if route.type == "embedding" else "chat"
        raise Rejected(
            400,
            f"The model '{route.name}' serves {served}, not this endpoint",
            "invalid_request_error",
            "model_not_supported",
            "model",
        )
