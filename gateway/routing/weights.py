"""Weights for `weighted` routes, recomputed in the background from how deployments do.

Formula (`compute_weights`, pure), for each deployment *i*::

    s_i     = (success_i * samples_i + success_prior_n) / (samples_i + success_prior_n)
    speed_i = clamp(ref_ttft / max(ttft_p50_i, ttft_floor_s))      (1 when unknown)
    cheap_i = clamp(ref_cost / cost_i)                             (1 when nothing is priced)
    r_i     = mean_rating_i * n_i / (n_i + rating_prior_n)         (shrunk toward 0)

    raw_i   = weight_i * s_i ** 4 * speed_i ** 0.5 * cheap_i ** 0.25 * (1 + 0.5 * r_i)
    w_i     = raw_i / sum(raw)

- success rate: from `DeploymentStats`, with `success_prior_n` (2) pseudo
  successes so a deployment with no samples counts as healthy and one failure
  out of one is not a death sentence; 0/100 gives ~1e-7 of the raw weight.
- TTFT: lower is better; ``ref_ttft`` is the geometric mean of the known TTFT
  p50s (floored at `ttft_floor_s`), so a 4x faster deployment gets 2x.
- cost: ``cost_i = (price.input + price.output) / 2`` (USD per million tokens,
  a blend of both sides); cheaper is better; ``ref_cost`` is the geometric mean
  of the positive costs; free deployments count as `ratio_clamp` times cheaper.
- ratings: mean in -1..1 shrunk toward 0 by its (decayed) count, so a couple
  of ratings barely move anything and many move the weight by up to ±50 %.
- ``clamp`` keeps each ratio within [1/ratio_clamp, ratio_clamp] (16).
- The configured ``weight`` is the base: 0 disables a deployment. When every
  raw weight is 0 the base weights are used; when no base weight is positive,
  equal weights.
- Exploration floor: every deployment with a positive base weight keeps at
  least `min_share` (0.5 %) after normalisation, so a deployment that failed
  still gets a trickle of traffic and new samples to recover its weight.

`WeightWorker` recomputes every `interval_s`. With Redis the computation is
done once per interval across instances: each instance tries, every `poll_s`,
``SET {prefix:weights}:lease {instance_id} NX PX interval_ms``; the one that
gets it computes and writes ``{prefix:weights}:table`` (one MULTI on one slot:
HSET every deployment's weight plus ``@version`` (incremented), ``@at`` (wall time) and ``@by``
(instance)); every other instance reads that hash into its local `weights()`.
Redis down, hung or its breaker open: weights are computed locally every
interval, `degraded` follows the Redis layer's breaker. Reading `weights()` never touches Redis.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from gateway.redislayer import RedisClient, RedisGuard, RedisLayer, RedisUnavailable, as_layer
from gateway.routing.redisconn import log
from gateway.tasks import cancel_and_wait, raise_if_cancelling
from gateway.value_class import value_class

META_VERSION = "@version"
META_AT = "@at"
META_BY = "@by"


class PriceLike(Protocol):
    @property
    def input(self) -> float: ...

    @property
    def output(self) -> float: ...


class DeploymentLike(Protocol):
    """What the worker needs of a `DeploymentConfig`."""

    @property
    def weight(self) -> float: ...

    @property
    def price(self) -> PriceLike: ...


@value_class
class DeploymentStats:
    success_rate: float  # 0..1 over the recent window
    ttft_p50_s: float | None  # None: no successful sample yet
    samples: int  # outcomes in the window


@value_class
class WeightParams:
    success_exp: float = 4.0
    ttft_exp: float = 0.5
    cost_exp: float = 0.25
    rating_gain: float = 0.5
    rating_prior_n: float = 10.0
    success_prior_n: float = 2.0
    ttft_floor_s: float = 0.05
    ratio_clamp: float = 16.0
    min_share: float = 0.005


DEFAULT_PARAMS = WeightParams()

StatsSource = Callable[[], Mapping[str, DeploymentStats]]
RatingsSource = Callable[[], Mapping[str, tuple[float, float]]]
WeightsListener = Callable[[dict[str, float]], None]


def blended_cost(deployment: DeploymentLike) -> float:
    """USD per million tokens, input and output averaged."""
    return max((deployment.price.input + deployment.price.output) / 2.0, 0.0)


def _geomean(values: list[float]) -> float | None:
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _clamp(ratio: float, limit: float) -> float:
    return min(max(ratio, 1.0 / limit), limit)


def _normalise(raw: Mapping[str, float]) -> dict[str, float]:
    total = sum(raw.values())
    return {name: value / total for name, value in raw.items()}


def compute_weights(
    deployments: Mapping[str, DeploymentLike],
    stats: Mapping[str, DeploymentStats],
    ratings: Mapping[str, tuple[float, float]],
    params: WeightParams = DEFAULT_PARAMS,
) -> dict[str, float]:
    """Normalised weights (summing to 1) per deployment; the formula is in the module doc."""
    if not deployments:
        return {}
    base = {name: max(float(dep.weight), 0.0) for name, dep in deployments.items()}
    if not any(base.values()):
        return {name: 1.0 / len(base) for name in base}
    active = [name for name, b in base.items() if b > 0]

    ttfts: dict[str, float] = {}
    for name in active:
        stat = stats.get(name)
        if stat is not None and stat.ttft_p50_s is not None and stat.ttft_p50_s >= 0:
            ttfts[name] = max(stat.ttft_p50_s, params.ttft_floor_s)
    ref_ttft = _geomean(list(ttfts.values()))
    costs = {name: blended_cost(deployments[name]) for name in active}
    ref_cost = _geomean([c for c in costs.values() if c > 0])

    raw: dict[str, float] = {}
    for name, b in base.items():
        if b <= 0:
            raw[name] = 0.0
            continue
        stat = stats.get(name)
        samples = max(stat.samples, 0) if stat is not None else 0
        rate = min(max(stat.success_rate, 0.0), 1.0) if stat is not None else 1.0
        success = (rate * samples + params.success_prior_n) / (samples + params.success_prior_n)
        speed = 1.0
        if ref_ttft is not None and name in ttfts:
            speed = _clamp(ref_ttft / ttfts[name], params.ratio_clamp)
        cheap = 1.0
        if ref_cost is not None:
            cost = costs[name]
            cheap = params.ratio_clamp if cost <= 0 else _clamp(ref_cost / cost, params.ratio_clamp)
        mean, count = ratings.get(name, (0.0, 0.0))
        count = max(count, 0.0)
        shrunk = min(max(mean, -1.0), 1.0) * count / (count + params.rating_prior_n)
        raw[name] = (
            b
            * success**params.success_exp
            * speed**params.ttft_exp
            * cheap**params.cost_exp
            * max(1.0 + params.rating_gain * shrunk, 0.0)
        )

    weights = _normalise(raw) if sum(raw.values()) > 0 else _normalise(base)
    floor = params.min_share
    if floor > 0 and len(active) > 1 and floor * len(active) < 1:
        weights = _apply_floor(weights, active, floor)
    return weights


def _apply_floor(weights: dict[str, float], active: list[str], floor: float) -> dict[str, float]:
    """Raise active shares below `floor` to it, taking the difference from the others."""
    low = {name for name in active if weights[name] < floor}
    if not low:
        return weights
    rest = sum(w for name, w in weights.items() if name not in low)
    spare = 1.0 - floor * len(low)
    out: dict[str, float] = {}
    for name, w in weights.items():
        out[name] = floor if name in low else (w / rest * spare if rest > 0 else 0.0)
    return out


def base_weights(deployments: Mapping[str, DeploymentLike]) -> dict[str, float]:
    """The configured weights normalised (what routing uses before the first computation)."""
    base = {name: max(float(dep.weight), 0.0) for name, dep in deployments.items()}
    if not base:
        return {}
    if not any(base.values()):
        return {name: 1.0 / len(base) for name in base}
    return _normalise(base)


def stats_from_snapshot(snapshot: Mapping[str, Mapping[str, Any]]) -> dict[str, DeploymentStats]:
    """`DeploymentStats` from `HealthRegistry.snapshot()` (error_rate, ttft_p50_s, window)."""
    out: dict[str, DeploymentStats] = {}
    for name, row in snapshot.items():
        samples = int(row.get("window") or 0)
        error_rate = float(row.get("error_rate") or 0.0)
        ttft = row.get("ttft_p50_s")
        out[name] = DeploymentStats(
            success_rate=1.0 - error_rate if samples else 1.0,
            ttft_p50_s=float(ttft) if ttft is not None else None,
            samples=samples,
        )
    return out


class WeightWorker:
    """Background recomputation of `compute_weights`, shared through Redis when given."""

    def __init__(
        self,
        deployments: Mapping[str, DeploymentLike],
        stats: StatsSource,
        ratings: RatingsSource,
        interval_s: float = 60.0,
        redis: RedisLayer | RedisClient | str | None = None,
        *,
        prefix: str = "rg",
        instance_id: str | None = None,
        poll_s: float | None = None,
        op_timeout_s: float = 0.5,
        weights_ttl_s: int = 86_400,
        params: WeightParams = DEFAULT_PARAMS,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.deployments = dict(deployments)
        self._stats = stats
        self._ratings = ratings
        self.interval_s = max(interval_s, 0.001)
        self._layer: RedisLayer | None = None
        self._owns_layer = False
        if redis is not None:
            self._layer, self._owns_layer = as_layer(redis, prefix)
        self.prefix = prefix
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self.poll_s = poll_s if poll_s is not None else min(self.interval_s, 1.0)
        self.op_timeout_s = op_timeout_s
        self.weights_ttl_s = weights_ttl_s
        self.params = params
        self._clock = clock
        self._wall = wall_clock
        self._weights = base_weights(self.deployments)
        self._next_local: float | None = None  # clock reading when a local computation is due
        self._listeners: list[WeightsListener] = []
        self._task: asyncio.Task[None] | None = None
        self.computations = 0  # computations done by this instance (local or as lease holder)
        self.version = 0  # shared version last applied (0: none yet)
        self.updated_at: float | None = None  # wall time of the weights in use

    @property
    def lease_key(self) -> str:
        return f"{{{self.prefix}:weights}}:lease"

    @property
    def weights_key(self) -> str:
        return f"{{{self.prefix}:weights}}:table"

    @property
    def degraded(self) -> bool:
        return self._layer is not None and self._layer.degraded

    @property
    def outage(self) -> RedisGuard | None:
        return self._layer.guard if self._layer is not None else None

    def weights(self) -> dict[str, float]:
        """Current weights per deployment (normalised; a copy, never waits)."""
        return dict(self._weights)

    def add_listener(self, listener: WeightsListener) -> None:
        """Called with the new weights whenever they change."""
        self._listeners.append(listener)

    def reconfigure(
        self, deployments: Mapping[str, DeploymentLike], reset: Iterable[str] = ()
    ) -> None:
        """A config reload: the next computation uses the new deployments; until then the
        learned weights of kept deployments stay, new and `reset` ones start at their
        configured weight."""
        self.deployments = dict(deployments)
        dropped = set(reset)
        base = base_weights(self.deployments)
        learned = {n: w for n, w in self._weights.items() if n in base and n not in dropped}
        self._set(_normalise({**base, **learned}) if base else {}, self.updated_at)

    # -- one step -------------------------------------------------------------

    def compute(self) -> dict[str, float]:
        """Compute from the current stats and ratings (counts as a computation)."""
        self.computations += 1
        return compute_weights(self.deployments, self._stats(), self._ratings(), self.params)

    async def tick(self) -> None:
        """One step of the loop: compute (lease holder / local) or read the shared weights."""
        layer = self._layer
        if layer is None:
            self._compute_locally_if_due()
            return
        try:
            await layer.guard.call(
                lambda: self._shared_step(layer.client), timeout_s=self.op_timeout_s, part="weights"
            )
        except RedisUnavailable:
            self._compute_locally_if_due()
            return
        self._next_local = None  # after an outage, compute at once if Redis goes again

    def _compute_locally_if_due(self) -> None:
        now = self._clock()
        if self._next_local is not None and now < self._next_local:
            return
        self._next_local = now + self.interval_s
        try:
            weights = self.compute()
        except Exception:
            log.exception("weight computation failed; keeping the current weights")
            return
        self._set(weights, self._wall())

    async def _shared_step(self, redis: RedisClient) -> None:
        interval_ms = max(int(self.interval_s * 1000), 1)
        leased = await redis.set(self.lease_key, self.instance_id, nx=True, px=interval_ms)
        if leased:
            try:
                weights = self.compute()
            except Exception:
                log.exception("weight computation failed; keeping the current weights")
                return
            at = self._wall()
            pipe = redis.pipeline(transaction=True)
            pipe.hset(
                self.weights_key,
                mapping={
                    **{name: repr(w) for name, w in weights.items()},
                    META_AT: repr(at),
                    META_BY: self.instance_id,
                },
            )
            pipe.hincrby(self.weights_key, META_VERSION, 1)
            pipe.expire(self.weights_key, self.weights_ttl_s)
            _, version, _ = await pipe.execute()
            self.version = int(version)
            self._set(weights, at)
            return
        raw = await redis.hgetall(self.weights_key)
        self._apply_shared(raw)

    def _apply_shared(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        fields = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        try:
            version = int(fields.get(META_VERSION, "0"))
        except ValueError:
            version = 0
        if version <= 0 or version == self.version:
            return  # nothing written yet, or already applied
        weights: dict[str, float] = {}
        for name in self.deployments:
            value = fields.get(name)
            if value is None:
                log.warning(
                    "shared weights lack a deployment; keeping the local weights",
                    deployment=name,
                    key=self.weights_key,
                )
                self.version = version
                return
            try:
                weights[name] = max(float(value), 0.0)
            except ValueError:
                return
        total = sum(weights.values())
        if total <= 0:
            return
        try:
            at = float(fields.get(META_AT, "nan"))
        except ValueError:
            at = math.nan
        self.version = version
        self._set(_normalise(weights), None if math.isnan(at) else at)

    def _set(self, weights: dict[str, float], at: float | None) -> None:
        changed = weights != self._weights
        self._weights = weights
        self.updated_at = at
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(dict(weights))
                except Exception:
                    log.exception("weights listener failed")

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="weight-worker")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self._owns_layer and self._layer is not None:
            await self._layer.close()

    async def _run(self) -> None:
        sleep_s = self.poll_s if self._layer is not None else self.interval_s
        while True:
            await self.tick()
            raise_if_cancelling()  # redis-py may have swallowed a cancellation
            await asyncio.sleep(sleep_s)
