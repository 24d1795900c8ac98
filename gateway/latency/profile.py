"""Latency profiles per (deployment, region, hour of day UTC), with decay and back-off.

What is kept
    Per key: a TTFT sketch of first tokens (events), a TTFT sketch of
    right-censored attempts (losers cancelled before a token, time-outs), an
    inter-token latency sketch, and outcome counts. All of it lives in one
    counter hash per key (fields ``t<bucket>``, ``c<bucket>``, ``i<bucket>``,
    ``o:<outcome>``), so any :class:`CounterStore` (memory or Redis) holds it.

Aggregates
    A sample is written to four keys: (region, hour), (region, any hour),
    (any region, hour) and (any region, any hour), so every query reads a
    fixed number of hashes: O(buckets), whatever the history.

Ageing: forward decay (Cormode, Shkapenyuk, Srivastava, Xu, ICDE 2009)
    A sample at time ``t`` is stored with weight ``2^((t - L)/half_life)`` for a
    landmark ``L``. Weights only grow with ``t``, so stored counters are never
    rewritten and plain additions (HINCRBYFLOAT) from many instances stay
    correct; dividing by ``2^((now - L)/half_life)`` at query time gives every
    sample its decayed weight ``2^(-age/half_life)``. Quantiles and ratios do
    not depend on that global scale at all.

    To keep weights bounded without rescaling shared counters, the landmark
    moves in *generations* of ``GENERATION_HALF_LIVES`` (20) half-lives: a
    sample goes to the key of its generation ``g = floor(t / (20·half_life))``
    with landmark ``L_g = g·20·half_life``, so a weight never exceeds 2^20
    (~1e6). A query reads generations ``g`` and ``g - 1`` (the latter scaled by
    2^-20, which puts both on ``L_g``); older generations weigh < 2^-20 and are
    ignored (Redis keys expire). All instances must use the same half-life.

Back-off
    A quantile query uses the first level whose decayed sample count (events +
    censored) reaches ``min_samples`` *and* whose Kaplan-Meier curve reaches
    ``q``: region_hour → region → hour → global → prior (a lognormal from the
    deployment's configured p50/p95). If some level had enough samples but
    too much censoring, the KM lower bound (its largest observed time) floors
    the prior, so a deployment that keeps timing out never looks like its prior.
    For a query with a region, the region-less levels (hour, global) hold
    other regions' samples: they answer only as a pessimistic prior (never
    below the configured prior) and the estimate says ``borrowed``, with the
    region's own sample count, so that routing explores the thin cell in that
    region instead of trusting a latency measured elsewhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Literal

from gateway.latency.censored import km_quantile
from gateway.latency.clock import hour_of, to_epoch
from gateway.latency.sketch import DEFAULT_ALPHA, LogHistogram, bucket_field, parse_field
from gateway.latency.store import CounterStore, MemoryStore
from gateway.streaming.accounting import AttemptRecord, RaceRecord
from gateway.value_class import value_class

Level = Literal["region_hour", "region", "hour", "global", "prior"]
Outcome = Literal["won", "completed", "cancelled", "failed", "timed_out"]
OUTCOMES: tuple[Outcome, ...] = ("won", "completed", "cancelled", "failed", "timed_out")
ANY = "*"
GENERATION_HALF_LIVES = 20
DEFAULT_HALF_LIFE_S = 7 * 86400.0
KEY_VERSION = "lat1"
_MAX_KEYS_KEPT = 4096

_EVENT, _CENSORED, _ITL, _OUTCOME = "t", "c", "i", "o:"
_LEVELS: tuple[Level, ...] = ("region_hour", "region", "hour", "global")
_BORROWED = ("hour", "global")  # region-less levels: other regions' samples for a regional query
_TTFT_KINDS = _EVENT + _CENSORED
_CACHE_MAX = 4096


@value_class
class Estimate:
    value_s: float
    level: Level
    samples: float  # decayed weight of the samples behind it (events + censored); 0 for prior
    censored_share: float  # censored weight / all weight at that level
    own_samples: float = 0.0  # the asked region's own samples (how well it is known there)
    borrowed: bool = False  # from other regions' samples, used only as a pessimistic prior


@value_class
class _Cached:
    at: float
    estimate: Estimate


@dataclass(slots=True)
class Histograms:
    """The decayed sketches of one level, in "samples now" units."""

    events: LogHistogram
    censored: LogHistogram
    itl: LogHistogram
    outcomes: dict[str, float]

    @property
    def ttft_samples(self) -> float:
        return self.events.count + self.censored.count


def prior_quantile(p50_ms: float, p95_ms: float, q: float) -> float:
    """Quantile ``q`` (seconds) of the lognormal with the given p50 and p95 (ms)."""
    if p50_ms <= 0:
        raise ValueError(f"prior p50 must be > 0, got {p50_ms!r}")
    sigma = max(0.0, math.log(p95_ms / p50_ms) / 1.645) if p95_ms > 0 else 0.0
    return p50_ms / 1000.0 * math.exp(sigma * NormalDist().inv_cdf(q))


class LatencyProfiles:
    """Records race outcomes and answers TTFT / inter-token quantile queries.

    Also a ``RaceObserver``: ``on_race_end(record)`` observes at the clock's now.
    """

    def __init__(
        self,
        store: CounterStore | None = None,
        *,
        min_samples: float = 50,
        half_life_s: float = DEFAULT_HALF_LIFE_S,
        alpha: float = DEFAULT_ALPHA,
        clock: Callable[[], float] = time.time,
        cache_ttl_s: float = 1.0,
    ) -> None:
        if half_life_s <= 0:
            raise ValueError(f"half_life_s must be > 0, got {half_life_s!r}")
        self.store: CounterStore = store if store is not None else MemoryStore()
        self.min_samples = min_samples
        self.half_life_s = half_life_s
        self.alpha = alpha
        self.clock = clock
        self._grid = LogHistogram(alpha)  # for bucket arithmetic only
        # (deployment, generation, region, hour) -> its store key: four per attempt recorded
        self._keys: dict[tuple[str, int, str, str], str] = {}
        self._generation_s = GENERATION_HALF_LIVES * half_life_s
        # TTFT answers are reused for cache_ttl_s (monotonic): routing asks per request,
        # the data move slowly (and a shared store is ~2 s behind anyway).
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[tuple[str, str, int, float, tuple[float, float]], _Cached] = {}

    def forget(self, deployment: str) -> None:
        """A reload gave `deployment` a new identity: its estimates start again from the
        prior. The memory store drops its samples; a Redis store's samples are shared by
        every instance and kept (give a new model a new deployment name to start afresh)."""
        for key in [k for k in self._cache if k[0] == deployment]:
            del self._cache[key]
        if isinstance(self.store, MemoryStore):
            self.store.forget(deployment)

    # -- decay -----------------------------------------------------------------

    def _generation(self, epoch_s: float) -> int:
        return math.floor(epoch_s / self._generation_s)

    def _weight(self, epoch_s: float, generation: int) -> float:
        """Forward-decay weight of a sample at ``epoch_s`` relative to ``generation``."""
        return 2.0 ** ((epoch_s - generation * self._generation_s) / self.half_life_s)

    def _key(self, deployment: str, generation: int, region: str, hour: str) -> str:
        at = (deployment, generation, region, hour)
        key = self._keys.get(at)
        if key is None:
            if len(self._keys) >= _MAX_KEYS_KEPT:  # old generations and hours: start over
                self._keys.clear()
            key = self._keys[at] = self.store.key(
                deployment, f"{KEY_VERSION}:g{generation}:{region}:{hour}"
            )
        return key

    # -- recording -------------------------------------------------------------

    def record_attempt(
        self,
        deployment: str,
        region: str,
        when: datetime | float | None = None,
        *,
        ttft_s: float | None = None,
        censored_s: float | None = None,
        itl_s: float | None = None,
        outcome: Outcome | None = None,
    ) -> None:
        """Record one attempt: a first token at ``ttft_s``, or "no token by ``censored_s``".

        ``region`` may be "" when unknown: the sample then only feeds the
        any-region keys. Never does I/O.
        """
        if ttft_s is not None and censored_s is not None:
            raise ValueError("an attempt has either ttft_s or censored_s, not both")
        for name, value in (("ttft_s", ttft_s), ("censored_s", censored_s), ("itl_s", itl_s)):
            if value is not None and not (value >= 0.0 and math.isfinite(value)):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if outcome is not None and outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
        epoch = to_epoch(when) if when is not None else self.clock()
        outcomes = (outcome,) if outcome is not None else ()
        self._write(deployment, region, epoch, ttft_s, censored_s, itl_s, outcomes)

    def _write(
        self,
        deployment: str,
        region: str,
        epoch: float,
        ttft_s: float | None,
        censored_s: float | None,
        itl_s: float | None,
        outcomes: tuple[Outcome, ...],
    ) -> None:
        generation = self._generation(epoch)
        weight = self._weight(epoch, generation)
        grid = self._grid
        deltas: dict[str, float] = {}
        if ttft_s is not None:
            deltas[_EVENT + bucket_field(grid.index_of(ttft_s))] = weight
        if censored_s is not None:
            deltas[_CENSORED + bucket_field(grid.index_of(censored_s))] = weight
        if itl_s is not None:
            deltas[_ITL + bucket_field(grid.index_of(itl_s))] = weight
        for outcome in outcomes:
            deltas[_OUTCOME + outcome] = weight
        if not deltas:
            return
        hour = str(hour_of(epoch))
        regions = (region, ANY) if region and region != ANY else (ANY,)
        for r in regions:
            for h in (hour, ANY):
                self.store.incr(self._key(deployment, generation, r, h), deltas)

    def observe(self, record: RaceRecord, when: datetime | float | None = None) -> None:
        """Record every attempt of a finished race (``when``: the request's time).

        * a first token (``ttft_s``, whatever the outcome) is a TTFT event;
        * ``cancelled`` before a token → censored at ``censored_ttft_s``;
        * ``timed_out`` → censored at the attempt's duration (its TTFT timeout):
          "no token within the timeout" is an honest right-censored sample, and
          keeps a deployment that often times out from looking fast;
        * ``failed`` before a token → outcome count only (an error says nothing
          about how long the first token would have taken);
        * still ``running`` (the client left first) → censored at its duration;
        * the winner also counts ``completed`` when the stream completed, and
          gives one inter-token sample: (total - ttft) / (output tokens - 1).
        """
        epoch = to_epoch(when) if when is not None else self.clock()
        for attempt in record.attempts:
            ttft = _finite(attempt.ttft_s)
            censored: float | None = None
            if ttft is None:
                if attempt.outcome == "cancelled":
                    censored = _finite(attempt.censored_ttft_s)
                elif attempt.outcome in ("timed_out", "running"):
                    censored = _duration(attempt, record.total_s)
            itl: float | None = None
            completed = (
                attempt.outcome == "won"
                and record.stream_outcome == "completed"
                and attempt.error is None  # a winner whose cut answer a backup resumed
            )
            itl_known = completed and attempt.resumed_from is None  # timed by the request
            if itl_known and record.ttft_s is not None and attempt.output_tokens > 1:
                itl = _finite((record.total_s - record.ttft_s) / (attempt.output_tokens - 1))
            outcomes: tuple[Outcome, ...] = ()
            if attempt.outcome != "running":
                outcomes = (attempt.outcome, "completed") if completed else (attempt.outcome,)
            self._write(attempt.deployment, record.region, epoch, ttft, censored, itl, outcomes)

    def on_race_end(self, record: RaceRecord) -> None:
        self.observe(record)

    # -- queries ---------------------------------------------------------------

    def _enough(self, samples: float) -> bool:
        # decayed sums carry float rounding: 10 fresh samples may add up to 9.999999999999998
        return samples > 0.0 and samples >= self.min_samples * (1.0 - 1e-9)

    def histograms(
        self, deployment: str, region: str | None, hour: int | None, kinds: str = "tcio"
    ) -> Histograms:
        """Decayed sketches of one key (``None`` = any), scaled to "samples now".

        ``kinds`` picks what to load: t(tft events), c(ensored), i(nter-token), o(utcomes).
        """
        now = self.clock()
        generation = self._generation(now)
        norm = self._weight(now, generation)
        out = Histograms(
            LogHistogram(self.alpha), LogHistogram(self.alpha), LogHistogram(self.alpha), {}
        )
        r = region if region else ANY
        h = ANY if hour is None else str(hour)
        for g, scale in ((generation, 1.0), (generation - 1, 2.0**-GENERATION_HALF_LIVES)):
            _load(self.store.read(self._key(deployment, g, r, h)), scale / norm, out, kinds)
        return out

    def _levels(
        self, deployment: str, region: str, hour: int, kinds: str
    ) -> Iterator[tuple[Level, Histograms]]:
        keys: tuple[tuple[str | None, int | None], ...] = (
            (region, hour),
            (region, None),
            (None, hour),
            (None, None),
        )
        for level, (r, h) in zip(_LEVELS, keys, strict=True):
            if r is not None and (not r or r == ANY):
                continue  # no region known: only the any-region levels exist
            yield level, self.histograms(deployment, r, h, kinds)

    def ttft_quantile(
        self,
        deployment: str,
        region: str,
        hour: int,
        q: float,
        prior: tuple[float, float],
    ) -> Estimate:
        """TTFT quantile ``q`` (seconds), backing off as described in the module doc.

        ``prior`` is ``(p50_ms, p95_ms)`` of the deployment's configuration.
        """
        if not 0.0 < q < 1.0:
            raise ValueError(f"q must be in (0, 1), got {q!r}")
        now = time.monotonic()
        cache_key = (deployment, region, hour, q, prior)
        cached = self._cache.get(cache_key)
        if cached is not None and now - cached.at < self.cache_ttl_s:
            return cached.estimate
        estimate = self._ttft_quantile(deployment, region, hour, q, prior)
        if self.cache_ttl_s > 0:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[cache_key] = _Cached(now, estimate)
        return estimate

    def _ttft_quantile(
        self, deployment: str, region: str, hour: int, q: float, prior: tuple[float, float]
    ) -> Estimate:
        floor = 0.0
        own = 0.0
        regional = bool(region) and region != ANY
        for level, hist in self._levels(deployment, region, hour, _TTFT_KINDS):
            samples = hist.ttft_samples
            borrowed = regional and level in _BORROWED
            if not borrowed:
                own = max(own, samples)
            if not self._enough(samples):
                continue
            value = km_quantile(hist.events, hist.censored, q)
            if value is None:
                floor = max(floor, hist.censored.max_value() or 0.0, hist.events.max_value() or 0.0)
                continue
            share = hist.censored.count / samples
            if borrowed:
                # Other regions' latency says nothing good about this one (a model hosted
                # in Paris is fast from the EU, not from the US): it may only make the
                # estimate slower than the prior, never faster.
                value = max(value, prior_quantile(prior[0], prior[1], q), floor)
                return Estimate(value, level, samples, share, own, borrowed=True)
            return Estimate(value, level, samples, share, own)
        return Estimate(max(prior_quantile(prior[0], prior[1], q), floor), "prior", 0.0, 0.0, own)

    def itl_quantile(self, deployment: str, region: str, hour: int, q: float) -> Estimate | None:
        """Inter-token latency quantile, same back-off; None when no level has enough."""
        if not 0.0 < q < 1.0:
            raise ValueError(f"q must be in (0, 1), got {q!r}")
        for level, hist in self._levels(deployment, region, hour, _ITL):
            samples = hist.itl.count
            if self._enough(samples):
                value = hist.itl.quantile(q)
                assert value is not None
                return Estimate(value, level, samples, 0.0)
        return None

    def outcomes(
        self, deployment: str, region: str | None = None, hour: int | None = None
    ) -> dict[str, float]:
        """Decayed outcome counts of one key (``None`` = any region / any hour)."""
        counts = self.histograms(deployment, region, hour).outcomes
        return {name: counts.get(name, 0.0) for name in OUTCOMES}


def _load(fields: Mapping[str, float], scale: float, out: Histograms, kinds: str) -> None:
    if not fields:
        return
    grouped: dict[str, dict[int, float]] = {kind: {} for kind in kinds}
    for name, weight in fields.items():
        kind = name[:1]
        target = grouped.get(kind)
        if target is None or not (weight > 0.0 and math.isfinite(weight)):
            continue
        if kind == "o":
            outcome = name[len(_OUTCOME) :]
            out.outcomes[outcome] = out.outcomes.get(outcome, 0.0) + weight * scale
            continue
        try:
            index = parse_field(name[1:])
        except ValueError:
            continue  # not ours (a shared Redis may hold anything): never fail a query
        target[index] = target.get(index, 0.0) + weight * scale
    for kind, sketch in ((_EVENT, out.events), (_CENSORED, out.censored), (_ITL, out.itl)):
        if grouped.get(kind):
            sketch.add_buckets(grouped[kind])


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value < 0.0:
        return None
    return value


def _duration(attempt: AttemptRecord, total_s: float) -> float | None:
    end = attempt.end_offset_s if attempt.end_offset_s is not None else total_s
    duration = end - attempt.start_offset_s
    return duration if duration > 0.0 and math.isfinite(duration) else None
