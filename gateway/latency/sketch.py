"""A DDSketch-style log-bucketed histogram: relative-error quantiles, exact merges.

Bucket ``i`` holds the values in ``(gamma^(i-1), gamma^i]`` with
``gamma = (1+alpha)/(1-alpha)``; its representative value ``2 gamma^i/(gamma+1)``
is within ``alpha`` (relative) of every value in the bucket, so any quantile
read from the sketch is within ``alpha`` of the exact sample quantile of the
same rank (Masson et al., VLDB 2019). Values at or below
``min_value`` (0.1 ms by default) go to one zero bucket whose value is 0.

A sketch is just ``{bucket → weight}``: merging adds weights (exactly), and the
mapping form (``str(index) → float``) is what a Redis HASH stores, updated with
HINCRBYFLOAT from any number of gateway instances. Weights are floats so that
decayed (forward-decay) weights can be added as well as plain counts.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Mapping

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_VALUE = 1e-4  # seconds
ZERO_INDEX = -(1 << 30)  # the zero bucket; sorts below every real bucket
ZERO_FIELD = "z"

_MAGIC = b"RGH1"
_HEADER = struct.Struct("<4sddI")
_PAIR = struct.Struct("<id")


def bucket_field(index: int) -> str:
    """The text form of a bucket index, as used in mappings and Redis fields."""
    return ZERO_FIELD if index == ZERO_INDEX else str(index)


def parse_field(text: str) -> int:
    return ZERO_INDEX if text == ZERO_FIELD else int(text)


class LogHistogram:
    """Mergeable histogram with relative accuracy ``alpha`` over positive values."""

    __slots__ = ("_count", "_counts", "_inv_log_gamma", "alpha", "gamma", "min_value")

    def __init__(self, alpha: float = DEFAULT_ALPHA, min_value: float = DEFAULT_MIN_VALUE) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        if not (min_value > 0.0 and math.isfinite(min_value)):
            raise ValueError(f"min_value must be a positive number, got {min_value!r}")
        self.alpha = alpha
        self.min_value = min_value
        self.gamma = (1.0 + alpha) / (1.0 - alpha)
        self._inv_log_gamma = 1.0 / math.log(self.gamma)
        self._counts: dict[int, float] = {}
        self._count = 0.0

    # -- buckets -------------------------------------------------------------

    def index_of(self, x: float) -> int:
        """Bucket index of ``x`` (seconds): ``ceil(log_gamma x)``, or the zero bucket."""
        if not math.isfinite(x):
            raise ValueError(f"value must be finite, got {x!r}")
        if x <= self.min_value:
            return ZERO_INDEX
        return math.ceil(math.log(x) * self._inv_log_gamma)

    def value_of(self, index: int) -> float:
        """Representative value of a bucket: within ``alpha`` of all its members."""
        if index == ZERO_INDEX:
            return 0.0
        return 2.0 * self.gamma**index / (self.gamma + 1.0)

    def same_grid(self, other: LogHistogram) -> bool:
        return self.alpha == other.alpha and self.min_value == other.min_value

    # -- updates -------------------------------------------------------------

    def add(self, x: float, weight: float = 1.0) -> None:
        self.add_bucket(self.index_of(x), weight)

    def add_bucket(self, index: int, weight: float) -> None:
        """Add ``weight`` to bucket ``index`` directly (used when loading stored counts)."""
        if not (weight >= 0.0 and math.isfinite(weight)):
            raise ValueError(f"weight must be finite and >= 0, got {weight!r}")
        if weight == 0.0:
            return
        self._counts[index] = self._counts.get(index, 0.0) + weight
        self._count += weight

    def add_buckets(self, weights: Mapping[int, float]) -> None:
        """Add many ``{index: weight}`` at once (weights must be finite and >= 0)."""
        counts = self._counts
        total = 0.0
        for index, weight in weights.items():
            if not (weight >= 0.0 and math.isfinite(weight)):
                raise ValueError(f"weight must be finite and >= 0, got {weight!r}")
            if weight > 0.0:
                counts[index] = counts.get(index, 0.0) + weight
                total += weight
        self._count += total

    def merge(self, other: LogHistogram) -> None:
        """Add every bucket of ``other`` into this sketch (exact)."""
        if not self.same_grid(other):
            raise ValueError("cannot merge sketches with different alpha or min_value")
        counts = self._counts
        for index, weight in other._counts.items():
            counts[index] = counts.get(index, 0.0) + weight
        self._count += other._count

    def scaled(self, factor: float) -> LogHistogram:
        """A copy with every weight multiplied by ``factor`` (quantiles are unchanged)."""
        if not (factor >= 0.0 and math.isfinite(factor)):
            raise ValueError(f"factor must be finite and >= 0, got {factor!r}")
        out = LogHistogram(self.alpha, self.min_value)
        if factor > 0.0:
            out._counts = {i: w * factor for i, w in self._counts.items()}
            out._count = self._count * factor
        return out

    def copy(self) -> LogHistogram:
        return self.scaled(1.0)

    # -- reads ---------------------------------------------------------------

    @property
    def count(self) -> float:
        return self._count

    def __len__(self) -> int:
        """Number of non-empty buckets."""
        return len(self._counts)

    def get(self, index: int) -> float:
        return self._counts.get(index, 0.0)

    def buckets(self) -> list[tuple[int, float]]:
        """``(index, weight)`` pairs in ascending value order (zero bucket first)."""
        return sorted(self._counts.items())

    def __iter__(self) -> Iterator[int]:
        return iter(self._counts)

    def max_value(self) -> float | None:
        return self.value_of(max(self._counts)) if self._counts else None

    def quantile(self, q: float) -> float | None:
        """Smallest bucket value ``v`` with ``weight(≤ v) ≥ q · count``; None when empty.

        This is the inverse-CDF definition: with unit weights it matches the
        ``ceil(q·n)``-th smallest sample (the first for ``q = 0``) within ``alpha``.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q!r}")
        if not self._counts:
            return None
        target = q * self._count
        slack = 1e-12 * self._count  # float sums must not miss q = 1 by a rounding error
        cumulative = 0.0
        ordered = self.buckets()
        for index, weight in ordered:
            cumulative += weight
            if cumulative >= target - slack:
                return self.value_of(index)
        return self.value_of(ordered[-1][0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogHistogram):
            return NotImplemented
        return self.same_grid(other) and self._counts == other._counts

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"LogHistogram(alpha={self.alpha}, buckets={len(self._counts)}, count={self._count:g})"
        )

    # -- serialisation -------------------------------------------------------

    def to_mapping(self) -> dict[str, float]:
        """``{str(index): weight}`` (zero bucket ``"z"``), e.g. for a Redis HASH."""
        return {bucket_field(i): w for i, w in self._counts.items()}

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, float] | Mapping[bytes, bytes] | Iterable[tuple[str, float]],
        alpha: float = DEFAULT_ALPHA,
        min_value: float = DEFAULT_MIN_VALUE,
    ) -> LogHistogram:
        """Inverse of :meth:`to_mapping`; also accepts the ``bytes`` pairs Redis returns."""
        out = cls(alpha, min_value)
        items = mapping.items() if isinstance(mapping, Mapping) else mapping
        for key, value in items:
            text = key.decode() if isinstance(key, bytes) else key
            out.add_bucket(parse_field(text), float(value))
        return out

    def to_bytes(self) -> bytes:
        """Packed form: header (magic, alpha, min_value, n) then n x (int32 index, float64)."""
        parts = [_HEADER.pack(_MAGIC, self.alpha, self.min_value, len(self._counts))]
        parts.extend(_PAIR.pack(i, w) for i, w in self._counts.items())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> LogHistogram:
        if len(data) < _HEADER.size:
            raise ValueError("truncated sketch")
        magic, alpha, min_value, n = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a serialised LogHistogram")
        if len(data) != _HEADER.size + n * _PAIR.size:
            raise ValueError("sketch length does not match its bucket count")
        out = cls(alpha, min_value)
        for index, weight in _PAIR.iter_unpack(data[_HEADER.size :]):
            out.add_bucket(index, weight)
        return out
