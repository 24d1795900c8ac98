"""The deployments' upstream side: which adapter and connection pool serve each deployment,
how a plan's candidates become upstream requests, and the openers the race starts.

The pipeline asks it to build; the race engine only ever sees `Candidate`s and an `Opener`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator
from typing import cast

from gateway.config.model import Config, DeploymentConfig, replaces_cut_connections
from gateway.providers.base import (
    ContinuingProvider,
    OneShotCall,
    Provider,
    ProviderSettings,
    TargetModel,
    UnsupportedParams,
    UpstreamRequest,
    can_continue,
    can_embed,
)
from gateway.providers.registry import create as create_provider
from gateway.reload import pool_settings
from gateway.request import AnyRequest, ChatRequest
from gateway.routing.health import HealthRegistry
from gateway.routing.planner import Plan
from gateway.routing.ratelimit import RateLimiter, deployment_limit
from gateway.streaming.events import Event, UpstreamError
from gateway.streaming.plan import Candidate, Opener
from gateway.streaming.resume import Continuer
from gateway.streaming.upstream import UpstreamPool, one_shot_events, stream_events
from gateway.value_class import value_class


@value_class
class Deployment:
    config: DeploymentConfig
    provider: Provider
    pool: UpstreamPool
    target: TargetModel


@value_class
class Built:
    """A plan's candidates that could take the request, with their upstream requests."""

    candidates: list[Candidate]
    requests: dict[str, UpstreamRequest | OneShotCall]  # a stream, or an embeddings call
    unsupported: list[str]  # parameters no candidate accepted (when `candidates` is empty)


class Upstreams:
    def __init__(self, config: Config, reuse: Upstreams | None = None) -> None:
        """`reuse`: the upstreams a reload replaces; a provider whose pool settings did not
        change keeps its pool (and its warm connections)."""
        self.config = config
        self.providers: dict[str, Provider] = {}
        self.pools: dict[str, UpstreamPool] = {}
        for name, pc in config.providers.items():
            settings = ProviderSettings(
                name=name,
                kind=pc.kind,
                base_url=pc.base_url,
                api_key=pc.api_key.reveal() if pc.api_key else None,
                options={**pc.options, "headers": dict(pc.headers)},
                max_line_bytes=config.limits.max_sse_line_bytes,
            )
            self.providers[name] = create_provider(settings)
            kept = reuse.pools.get(name) if reuse is not None else None
            if kept is not None and reuse is not None:
                same = pool_settings(reuse.config.providers[name]) == pool_settings(pc)
                kept = kept if same else None
            self.pools[name] = kept or UpstreamPool(
                name,
                pc.max_connections,
                pc.connect_timeout_s,
                pc.keepalive_s,
                pc.http2,
                pc.tls_ca_file,
                replaces_cut_connections(pc),
            )
        self.deployments = {
            name: Deployment(
                dep,
                self.providers[dep.provider],
                self.pools[dep.provider],
                TargetModel(
                    dep.model,
                    dep.drop_params,
                    dep.max_tokens_default,
                    dep.options,
                    batch_size=dep.batch_size,
                ),
            )
            for name, dep in config.deployments.items()
        }

    def build(self, chat: AnyRequest, plan: Plan) -> Built:
        """Each planned candidate's upstream request (an embeddings request: its one-shot
        call); a candidate whose adapter refuses a parameter is skipped (another may take
        it)."""
        requests: dict[str, UpstreamRequest | OneShotCall] = {}
        unsupported: set[str] = set()
        candidates: list[Candidate] = []
        for planned in plan.candidates:
            dep = planned.deployment
            deployment = self.deployments[dep.name]
            try:
                requests[dep.name] = _build(deployment, chat)
            except UnsupportedParams as exc:
                unsupported.update(exc.params)
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
        return Built(candidates, requests, sorted(unsupported))

    def opener(
        self,
        requests: dict[str, UpstreamRequest | OneShotCall],
        token_estimate: int,
        limiter: RateLimiter,
        health: HealthRegistry,
    ) -> Opener:
        def open_attempt(candidate: Candidate) -> AsyncGenerator[list[Event], None]:
            deployment = self.deployments[candidate.name]
            request = requests[candidate.name]
            limited = limiter.limit_for(deployment_limit(candidate.name)) is not None
            if type(request) is OneShotCall:  # embeddings: one whole answer, one batch
                stream = one_shot_events(deployment.pool, deployment.provider, request)
            else:
                assert type(request) is UpstreamRequest
                # sent at once on an idle connection, unless a rate limit must admit it
                stream = stream_events(
                    deployment.pool, deployment.provider, request, early=not limited
                )
            if not limited:
                return stream
            return _rate_limited(candidate.name, token_estimate, stream, limiter, health)

        return open_attempt

    def continuer(
        self,
        chat: ChatRequest,
        candidates: list[Candidate],
        limiter: RateLimiter,
        health: HealthRegistry,
    ) -> Continuer:
        """How a cut answer to `chat` goes on (resume on a backup): the continuation
        requests of those `candidates` whose deployment can continue a prefix."""

        def continuer(
            prefix: str, produced_tokens: int, exclude: frozenset[str]
        ) -> tuple[list[Candidate], Opener]:
            request = _remaining(chat, produced_tokens)
            requests: dict[str, UpstreamRequest | OneShotCall] = {}
            able: list[Candidate] = []
            for candidate in candidates:
                deployment = self.deployments[candidate.name]
                provider = deployment.provider
                if candidate.name in exclude or not deployment.config.continuation:
                    continue
                if not can_continue(provider):
                    continue
                try:
                    requests[candidate.name] = cast(
                        ContinuingProvider, provider
                    ).build_continuation(request, deployment.target, prefix)
                except UnsupportedParams:
                    continue
                able.append(candidate)
            estimate = request.estimated_prompt_tokens() + len(prefix) // 4
            estimate += request.max_tokens or 0
            return able, self.opener(requests, estimate, limiter, health)

        return continuer

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()


def _build(deployment: Deployment, request: AnyRequest) -> UpstreamRequest | OneShotCall:
    provider = deployment.provider
    if isinstance(request, ChatRequest):
        return provider.build_request(request, deployment.target)
    if not can_embed(provider):  # check-config refuses this; a hand-built Config may not
        raise UnsupportedParams(["input (no embeddings API)"], provider.settings.name)
    call: OneShotCall = provider.build_embed_call(request, deployment.target)  # type: ignore[attr-defined]
    return call


def _remaining(chat: ChatRequest, produced_tokens: int) -> ChatRequest:
    """`chat` with its output limit less what the answer already produced."""
    params = dict(chat.params)
    for key in ("max_completion_tokens", "max_tokens"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            params[key] = max(1, value - produced_tokens)
    return dataclasses.replace(chat, params=params)


async def _rate_limited(
    name: str,
    tokens: int,
    stream: AsyncGenerator[list[Event], None],
    limiter: RateLimiter,
    health: HealthRegistry,
) -> AsyncGenerator[list[Event], None]:
    """A deployment at its rpm/tpm limit fails fast, so the race moves on (like an open
    breaker), and is skipped by the planner until its window resets."""
    decision = await limiter.check_and_take(deployment_limit(name), 1, tokens)
    if not decision.allowed:
        await stream.aclose()
        health.mark_rate_limited(name, decision.retry_after_s or 1.0)
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
