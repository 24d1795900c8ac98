"""Health shared across gateway instances through Redis.

Keys (all under `prefix`):

Every key shares the hash tag ``{prefix:health}`` (one cluster slot).

- ``{prefix:health}:outcomes:{deployment}``: the deployment's recent outcomes, newest
  first, capped at `window` (LPUSH + LTRIM, pipelined about every
  `flush_interval_s`). Each entry is JSON ``[ok, value, wall_time]`` where
  value is the TTFT (s) of a success or the status of a failure. A starting
  instance seeds its empty windows from them.
- ``{prefix}:breaker`` (pub/sub channel): local breaker changes to ``open``,
  ``cooling`` and ``closed``, as JSON ``{"i": instance, "d": deployment,
  "s": state, "r": seconds until it may be tried, "u": wall time of that}``.
  They are sent as soon as they happen (the publisher wakes up); every
  instance applies other instances' changes to its own registry
  (`HealthRegistry.apply_remote`), so an open breaker seen by one instance
  stops the others within about a second.
- ``{prefix:health}:breaker`` (hash): the last change per deployment, read on
  every (re)subscribe so an instance that missed messages catches up.

Redis outage: both loops go through the layer's breaker (`RedisGuard`), keep
the newest pending outcomes and changes, and retry with backoff; the registry
keeps working on its own view. On a cluster the subscriber listens on one node:
a PUBLISH reaches every node of the cluster. Nothing here is on
the request path: listeners only append to in-memory buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson

from gateway.redislayer import RedisClient, RedisGuard, RedisLayer, RedisUnavailable, as_layer
from gateway.routing.health import HealthRegistry, Outcome, StateChange
from gateway.routing.redisconn import log
from gateway.tasks import cancel_and_wait, raise_if_cancelling

PUBLISHED_STATES = frozenset({"open", "cooling", "closed"})


class SharedHealth:
    def __init__(
        self,
        registry: HealthRegistry,
        redis: RedisLayer | RedisClient | str,
        *,
        prefix: str = "rg",
        instance_id: str | None = None,
        flush_interval_s: float = 0.25,
        op_timeout_s: float = 1.0,
        reconnect_max_s: float = 5.0,
        outcome_ttl_s: int = 3600,
        seed: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self._layer, self._owns_layer = as_layer(redis, prefix)
        self.prefix = prefix
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.flush_interval_s = flush_interval_s
        self.op_timeout_s = op_timeout_s
        self.reconnect_max_s = reconnect_max_s
        self.outcome_ttl_s = outcome_ttl_s
        self.window = registry.window
        self._clock = clock
        self._wall = wall_clock
        self._seeded = not seed
        self._pending: dict[str, deque[bytes]] = {}
        self._changes: dict[str, StateChange] = {}
        self._probes: dict[str, tuple[float, float]] = {}  # deployment -> (at, held_s)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.applied = 0  # remote changes applied (for tests and metrics)
        self.subscribed = False  # listening to other instances right now

    @property
    def channel(self) -> str:
        return f"{self.prefix}:breaker"

    @property
    def state_key(self) -> str:
        return f"{{{self.prefix}:health}}:breaker"

    def outcomes_key(self, deployment: str) -> str:
        return f"{{{self.prefix}:health}}:outcomes:{deployment}"

    @property
    def degraded(self) -> bool:
        """True while Redis cannot be used: every decision is this instance's own."""
        return self._layer.degraded

    @property
    def outage(self) -> RedisGuard:
        """The Redis layer's breaker (outage count, failures, calls answered locally)."""
        return self._layer.guard

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self.registry.add_listener(self._on_change)
        self.registry.add_outcome_listener(self._on_outcome)
        self.registry.add_probe_listener(self._on_probe)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._publisher(), name="shared-health-publisher"),
            loop.create_task(self._subscriber(), name="shared-health-subscriber"),
        ]

    async def close(self) -> None:
        self.registry.remove_listener(self._on_change)
        self.registry.remove_outcome_listener(self._on_outcome)
        self.registry.remove_probe_listener(self._on_probe)
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        if tasks and (self._changes or self._pending):
            await self._flush()  # best effort: the last changes (bounded by op_timeout_s)
        if self._owns_layer:
            await self._layer.close()

    # -- from the registry (synchronous, request path) ---------------------

    def _on_change(self, change: StateChange) -> None:
        if change.remote or change.new not in PUBLISHED_STATES:
            return
        self._changes[change.deployment] = change
        self._wake.set()

    def _on_probe(self, deployment: str, held_s: float) -> None:
        self._probes[deployment] = (self._clock(), held_s)
        self._wake.set()

    def _on_outcome(self, outcome: Outcome) -> None:
        value = outcome.ttft_s if outcome.ok else outcome.status
        entry = orjson.dumps([1 if outcome.ok else 0, value, round(self._wall(), 3)])
        pending = self._pending.get(outcome.deployment)
        if pending is None:
            pending = self._pending[outcome.deployment] = deque(maxlen=self.window)
        pending.append(entry)

    # -- publisher ---------------------------------------------------------

    async def _publisher(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.flush_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            await self._flush()
            raise_if_cancelling()  # redis-py may have swallowed a cancellation

    async def _flush(self) -> None:
        changes, self._changes = self._changes, {}
        pending, self._pending = self._pending, {}
        probes, self._probes = self._probes, {}
        if not changes and not pending and not probes and self._seeded:
            return
        try:
            await self._layer.guard.call(
                lambda: self._send_all(changes, pending, probes),
                timeout_s=self.op_timeout_s,
                part="shared_health",
            )
        except asyncio.CancelledError:
            self._restore(changes, pending)
            raise
        except RedisUnavailable:
            self._restore(changes, pending)

    async def _send_all(
        self,
        changes: dict[str, StateChange],
        pending: dict[str, deque[bytes]],
        probes: dict[str, tuple[float, float]],
    ) -> None:
        if not self._seeded:
            await self._seed_windows()
            self._seeded = True
        if changes or pending or probes:
            await self._send(changes, pending, probes)

    def _restore(self, changes: dict[str, StateChange], pending: dict[str, deque[bytes]]) -> None:
        """Keep what could not be sent for the next flush (newer changes win, bounded)."""
        for name, change in changes.items():
            self._changes.setdefault(name, change)
        for name, entries in pending.items():
            newer = self._pending.get(name, ())
            self._pending[name] = deque([*entries, *newer], maxlen=self.window)

    async def _send(
        self,
        changes: dict[str, StateChange],
        pending: dict[str, deque[bytes]],
        probes: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        messages: list[bytes] = []
        pipe = self._layer.pipeline()
        now, wall = self._clock(), self._wall()
        for name, (at, held_s) in (probes or {}).items():
            left = held_s - (now - at)
            if left > 0:  # a forced probe's slot: the other instances hold theirs back
                slot = {"i": self.instance_id, "d": name, "s": "probe", "r": round(left, 3)}
                slot["u"] = round(wall + left, 3)
                messages.append(orjson.dumps(slot))
        for name, change in changes.items():
            retry_in_s = max(change.retry_in_s - (now - change.at), 0.0)
            if change.new != "closed" and retry_in_s <= 0:
                continue  # already over
            message = orjson.dumps(
                {
                    "i": self.instance_id,
                    "d": name,
                    "s": change.new,
                    "r": round(retry_in_s, 3),
                    "u": round(wall + retry_in_s, 3),
                }
            )
            messages.append(message)
            pipe.hset(self.state_key, name, message)
            pipe.expire(self.state_key, self.outcome_ttl_s)
        for name, entries in pending.items():
            key = self.outcomes_key(name)
            pipe.lpush(key, *entries)
            pipe.ltrim(key, 0, self.window - 1)
            pipe.expire(key, self.outcome_ttl_s)
        if len(pipe):
            await pipe.execute()
        for message in messages:  # stored first, so a late subscriber's resync finds it
            await self._layer.client.publish(self.channel, message)  # not pipelined on a cluster

    async def _seed_windows(self) -> None:
        names = self.registry.names()
        if not names:
            return
        pipe = self._layer.pipeline()
        for name in names:
            pipe.lrange(self.outcomes_key(name), 0, self.window - 1)
        results = await pipe.execute()
        for name, entries in zip(names, results, strict=True):
            outcomes: list[tuple[bool, float | None]] = []
            for raw in reversed(entries):  # newest first in Redis
                try:
                    ok, value, _ = orjson.loads(raw)
                except (orjson.JSONDecodeError, ValueError, TypeError):
                    continue
                ttft = float(value) if ok and isinstance(value, int | float) else None
                outcomes.append((bool(ok), ttft))
            if outcomes:
                self.registry.seed(name, outcomes)

    # -- subscriber --------------------------------------------------------

    async def _subscriber(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self._layer.client.pubsub()
            try:
                await self._layer.guard.call(
                    functools.partial(self._subscribe, pubsub),
                    timeout_s=self.op_timeout_s,
                    part="shared_health",
                )
                self.subscribed = True
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    raise_if_cancelling()
                    if message is not None and message.get("type") == "message":
                        self._apply(message["data"], from_hash=False)
            except Exception as exc:  # the subscription broke: subscribe again
                raise_if_cancelling(exc)
            finally:
                self.subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            raise_if_cancelling()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.reconnect_max_s)

    async def _subscribe(self, pubsub: Any) -> None:
        await pubsub.subscribe(self.channel)
        await self._resync()

    async def _resync(self) -> None:
        states = await self._layer.client.hgetall(self.state_key)
        for raw in states.values():
            self._apply(raw, from_hash=True)

    def _apply(self, raw: bytes | str, from_hash: bool) -> None:
        try:
            message = orjson.loads(raw)
            instance, name, state = message["i"], message["d"], message["s"]
            retry_in_s = float(message["r"])
            if from_hash:  # stored earlier: what is left of it now
                retry_in_s = float(message["u"]) - self._wall()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("bad shared breaker message ignored", channel=self.channel)
            return
        if instance == self.instance_id or not isinstance(name, str):
            return
        if from_hash and (state == "closed" or retry_in_s <= 0):
            return  # only what still blocks matters when catching up
        if state == "probe":
            self.registry.note_remote_probe(name, retry_in_s)
            self.applied += 1
            return
        self.registry.apply_remote(name, str(state), retry_in_s)
        self.applied += 1
