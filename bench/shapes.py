"""TTFT shapes for the simulator, fitted to published p50 / p95 / p99 figures.

The simulator draws TTFT as a lognormal body (median `ttft_p50_ms`, sigma from
`ttft_p95_ms`) and multiplies it by `straggler_multiplier` for a
`straggler_fraction` of requests. The CDF of that mixture is

    F(x) = (1 - f) * Phi((ln x - mu) / s) + f * Phi((ln x - mu - ln m) / s)

For a chosen straggler share f this module solves mu, s and m so that the
mixture's p50, p95 and p99 equal the targets (nested bisections on the
explicit CDF: each inner solve keeps the lower quantiles fixed while the
outer one moves the higher one). Pure math, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

_PHI = NormalDist().cdf
_Z95 = NormalDist().inv_cdf(0.95)


@dataclass(frozen=True, slots=True)
class Shape:
    """Simulator settings of one deployment's TTFT (the `sim:` model keys)."""

    body_p50_ms: float
    body_p95_ms: float
    straggler_fraction: float
    straggler_multiplier: float

    @property
    def sigma(self) -> float:
        return math.log(self.body_p95_ms / self.body_p50_ms) / _Z95

    def cdf(self, x_ms: float) -> float:
        if x_ms <= 0:
            return 0.0
        mu, s, f = math.log(self.body_p50_ms), self.sigma, self.straggler_fraction
        lx = math.log(x_ms)
        return (1 - f) * _PHI((lx - mu) / s) + f * _PHI(
            (lx - mu - math.log(self.straggler_multiplier)) / s
        )

    def quantile(self, q: float) -> float:
        """The q-quantile (0 < q < 1) of the mixture, in ms."""
        lo, hi = math.log(1e-3), math.log(1e7)
        for _ in range(100):
            mid = (lo + hi) / 2
            if self.cdf(math.exp(mid)) < q:
                lo = mid
            else:
                hi = mid
        return math.exp((lo + hi) / 2)

    def sim_keys(self) -> dict[str, float]:
        return {
            "ttft_p50_ms": round(self.body_p50_ms, 2),
            "ttft_p95_ms": round(self.body_p95_ms, 2),
            "straggler_fraction": self.straggler_fraction,
            "straggler_multiplier": round(self.straggler_multiplier, 3),
        }


def _bisect(
    fn: Callable[[float], float], lo: float, hi: float, increasing: bool, steps: int = 60
) -> float:
    """x in [lo, hi] with fn(x) == 0 for a monotone fn."""
    for _ in range(steps):
        mid = (lo + hi) / 2
        value = fn(mid)
        if (value < 0) == increasing:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _shape(mu: float, s: float, f: float, m: float) -> Shape:
    return Shape(math.exp(mu), math.exp(mu + s * _Z95), f, m)


def fit(p50: float, p95: float, p99: float, straggler_fraction: float) -> Shape:
    """The shape whose mixture quantiles are (p50, p95, p99) for the given straggler share.

    Needs 0.01 < straggler_fraction < 0.05 so that p99 falls among the
    stragglers and p95 in the body.
    """
    f = straggler_fraction
    if not 0.01 < f < 0.05:
        raise ValueError("straggler_fraction must be within (0.01, 0.05)")
    l50 = math.log(p50)

    def mu_for(s: float, m: float) -> float:  # keeps the median at p50
        return _bisect(lambda mu: 0.5 - _shape(mu, s, f, m).cdf(p50), l50 - 3, l50 + 1, True)

    def s_for(m: float) -> float:  # keeps p95 at p95 (and the median)
        def err(s: float) -> float:
            return 0.95 - _shape(mu_for(s, m), s, f, m).cdf(p95)

        return _bisect(err, 1e-3, 3.0, True, steps=45)

    def p99_err(log_m: float) -> float:
        m = math.exp(log_m)
        s = s_for(m)
        return 0.99 - _shape(mu_for(s, m), s, f, m).cdf(p99)

    log_m = _bisect(p99_err, 0.0, math.log(60.0), True, steps=40)
    m = math.exp(log_m)
    s = s_for(m)
    shape = _shape(mu_for(s, m), s, f, m)
    got = (shape.quantile(0.5), shape.quantile(0.95), shape.quantile(0.99))
    for want, have in zip((p50, p95, p99), got, strict=True):
        if abs(have / want - 1) > 0.02:
            raise ValueError(f"cannot fit p50/p95/p99 = {p50}/{p95}/{p99} with f={f}: got {got}")
    return shape


def survival_quantile(survival: Callable[[float], float], q: float) -> float:
    """The q-quantile (ms) of a distribution given by its survival function P(T > t)."""
    lo, hi = 1e-3, 1e7
    for _ in range(120):
        mid = math.sqrt(lo * hi)
        if survival(mid) > 1 - q:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def race_survival(*shapes: Shape) -> Callable[[float], float]:
    """P(min of independent draws > t): a race started all at once, without overhead."""

    def survival(t: float) -> float:
        out = 1.0
        for shape in shapes:
            out *= 1.0 - shape.cdf(t)
        return out

    return survival


def hedge_survival(first: Shape, second: Shape, delay_ms: float) -> Callable[[float], float]:
    """P(T > t) when `second` starts `delay_ms` after `first` unless `first` answered."""

    def survival(t: float) -> float:
        s1 = 1.0 - first.cdf(t)
        return s1 if t <= delay_ms else s1 * (1.0 - second.cdf(t - delay_ms))

    return survival
