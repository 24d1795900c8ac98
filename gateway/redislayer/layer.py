"""`RedisLayer`: the one connection to Redis that every Redis-backed component shares.

It owns the client (single node, Sentinel or Cluster: `RedisSettings`), the breaker in
front of it (`RedisGuard`), and the key prefix. Components take a layer (or, for tests
and tools, a URL or a ready client: `as_layer`) and never build clients themselves, so
the topology, credentials, TLS and outage behaviour are chosen once, by config.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster

from gateway.config.model import StateConfig
from gateway.redislayer.batcher import CommandBatcher, Fill
from gateway.redislayer.client import RedisClient, make_client
from gateway.redislayer.guard import RedisGuard, RedisUnavailable, describe
from gateway.redislayer.keys import tagged
from gateway.redislayer.settings import RedisSettings, Topology
from gateway.tasks import raise_if_cancelling

log = structlog.get_logger("gateway.redis")

# A component built from a URL or a bare client (tools, tests) waits longer on Redis than
# the gateway's request path does (`state.request_timeout_ms`, a few ms).
TOOL_BUDGET_S = 0.25


class RedisLayer:
    def __init__(
        self,
        settings: RedisSettings,
        *,
        prefix: str = "rg",
        client: RedisClient | None = None,
        open_after: int = 3,
    ) -> None:
        self.settings = settings
        self.prefix = prefix
        self._owns_client = client is None
        self.client: RedisClient = client if client is not None else make_client(settings)
        self.guard = RedisGuard(
            self._probe,
            request_timeout_s=settings.request_timeout_s,
            probe_interval_s=settings.probe_interval_s,
            open_after=open_after,
            where=settings.redacted,
            confirm=self._any_node if settings.topology == "cluster" else None,
        )
        self.batcher = CommandBatcher(
            self.pipeline,
            self.guard,
            batch_timeout_s=settings.socket_timeout_s,
            hung_after_s=settings.hung_after_s,
        )
        self.budget_misses = 0  # request-path calls decided locally: no answer within budget
        self.command_errors = 0  # request-path calls that got an error instead of a reply
        self.last_error = ""

    async def _probe(self) -> object:
        """Is Redis back? On a cluster every master must answer (a probe that reached a
        healthy node while the failed one's slots are still unserved would close the
        breaker too early); a failed probe also makes the client refresh its slot map."""
        client = self.client
        if not isinstance(client, RedisCluster):
            return await client.ping()
        try:
            return await client.ping(target_nodes=RedisCluster.PRIMARIES)
        except Exception:  # re-read the slot map: a replica may have taken over meanwhile
            await client.nodes_manager.initialize()
            raise

    async def _any_node(self) -> None:
        """Does any node of the cluster answer? (Raises when none does.) A failover or a
        migration leaves the other nodes answering: no outage is declared for it."""
        client = self.client
        assert isinstance(client, RedisCluster)
        nodes = client.get_nodes()
        answers = await asyncio.gather(
            *(client.execute_command("PING", target_nodes=node) for node in nodes),
            return_exceptions=True,
        )
        raise_if_cancelling()  # redis-py may have swallowed a cancellation
        answered = [answer is True or answer == b"PONG" for answer in answers]
        if not any(answered):
            raise RedisUnavailable("no node of the cluster answers")
        if not all(answered):  # a node is down: re-read the slot map, a replica may take over
            with contextlib.suppress(Exception):
                await client.nodes_manager.initialize()
            raise_if_cancelling()

    @classmethod
    def from_config(cls, state: StateConfig) -> RedisLayer:
        return cls(RedisSettings.from_config(state), prefix=state.prefix)

    @property
    def cluster(self) -> bool:
        return self.settings.topology == "cluster"

    @property
    def degraded(self) -> bool:
        """True while Redis is known to be away: every component uses its local view."""
        return self.guard.open

    def stats(self) -> dict[str, object]:
        """What the admin view shows: where Redis is (no credentials) and how it goes."""
        guard, batcher = self.guard, self.batcher
        return {
            "redis": self.settings.redacted,
            "degraded": guard.open,
            "outages": guard.outages,
            "last_outage": guard.last_outage,
            "failures": guard.failures,
            "answered_locally": guard.skipped,
            "over_budget": self.budget_misses,
            "command_errors": self.command_errors,
            "last_error": self.last_error,
            "request_batches": batcher.batches,
            "request_commands": batcher.commands,
            "request_resent": batcher.resent,  # bounced mid slot migration, sent again
        }

    def key(self, group: str, *rest: str) -> str:
        """A key of `group` (the hash tag) under this layer's prefix."""
        return tagged(self.prefix, group, *rest)

    async def request(
        self, fill: Fill, part: str, late: Callable[[Any], None] | None = None
    ) -> Any:
        """One command on the request path: batched with other requests' commands, waited
        for at most the request budget (the connect timeout until a first batch has been
        answered), and not sent at all while the breaker is open (`RedisUnavailable`).
        `late(reply)` is called with the reply whenever it comes, even after the budget
        (so a caller that decided locally can still learn what Redis said)."""
        guard, batcher = self.guard, self.batcher
        if guard.open:
            guard.skipped += 1
            raise RedisUnavailable("redis is away (breaker open)")
        budget = (
            self.settings.request_timeout_s
            if batcher.connected
            else max(self.settings.connect_timeout_s, self.settings.request_timeout_s)
        )
        reply = batcher.submit(fill)
        if late is not None:
            reply.add_done_callback(lambda done: _late(done, late))
        try:
            async with asyncio.timeout(budget):
                return await asyncio.shield(reply)
        except TimeoutError:
            raise_if_cancelling()
            self.budget_misses += 1  # the batch goes on; the batcher tells the breaker
            raise RedisUnavailable(f"no answer within {budget * 1000:g} ms") from None
        except Exception as exc:  # the batch failed (already counted) or this command did
            raise_if_cancelling(exc)
            self.command_errors += 1
            self.last_error = describe(exc)
            raise RedisUnavailable(describe(exc)) from exc

    def pipeline(self) -> Any:
        """A non-transactional pipeline (a cluster pipeline splits it by node)."""
        if self.cluster:
            return self.client.pipeline()
        return self.client.pipeline(transaction=False)

    async def start(self) -> None:
        """Connect now (and discover a cluster's slots) rather than on the first request;
        a Redis that is away is noted by the breaker, never fails the start."""
        with contextlib.suppress(RedisUnavailable):
            key = self.key("ping")  # a keyed command: a cluster pipeline refuses PING
            await self.request(lambda pipe: pipe.exists(key), "start")

    async def close(self) -> None:
        await self.batcher.close()
        await self.guard.close()
        if self._owns_client:
            try:
                await self.client.aclose()
            except Exception as exc:  # a dead server must not fail shutdown
                log.debug("redis_close_failed", error=type(exc).__name__)


def _late(done: asyncio.Future[Any], late: Callable[[Any], None]) -> None:
    if not done.cancelled() and done.exception() is None:
        late(done.result())


def as_layer(
    redis: RedisLayer | RedisClient | str, prefix: str = "rg", *, cluster: bool = False
) -> tuple[RedisLayer, bool]:
    """(a layer, whether the caller owns it): a shared layer as is; a URL or a bare client
    wrapped in a private one (tests and tools)."""
    if isinstance(redis, RedisLayer):
        return redis, False
    if isinstance(redis, str):
        settings = replace(
            RedisSettings.from_url(redis, cluster=cluster), request_timeout_s=TOOL_BUDGET_S
        )
        return RedisLayer(settings, prefix=prefix), True
    topology: Topology = "cluster" if _is_cluster(redis) else "single"
    settings = RedisSettings(url="", topology=topology, request_timeout_s=TOOL_BUDGET_S)
    return RedisLayer(settings, prefix=prefix, client=redis), True


def _is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)
