"""LogHistogram: accuracy against exact quantiles, exact merges, serialisation."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.latency.sketch import ZERO_INDEX, LogHistogram

QS = (0.5, 0.9, 0.99)
N = 20_000


def exact_quantile(ordered: list[float], q: float) -> float:
    """The ceil(q*n)-th smallest sample: the inverse-CDF definition the sketch uses."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def lognormal(sigma: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.lognormvariate(math.log(0.6), sigma)


def stragglers(rng: random.Random) -> float:
    x = rng.lognormvariate(math.log(0.6), 0.3)
    return x * 8 if rng.random() < 0.05 else x


def pareto(rng: random.Random) -> float:
    return 0.2 * rng.paretovariate(1.5)


@pytest.mark.parametrize(
    "draw",
    [lognormal(0.3), lognormal(0.9), stragglers, pareto],
    ids=["lognormal-0.3", "lognormal-0.9", "stragglers-5pct-x8", "pareto-1.5"],
)
def test_quantiles_within_two_percent_of_exact(draw: Callable[[random.Random], float]) -> None:
    rng = random.Random(1234)
    samples = [draw(rng) for _ in range(N)]
    sketch = LogHistogram(0.01)
    for x in samples:
        sketch.add(x)
    ordered = sorted(samples)
    assert sketch.count == N
    for q in QS:
        truth = exact_quantile(ordered, q)
        got = sketch.quantile(q)
        assert got is not None
        assert abs(got - truth) / truth <= 0.02, (q, got, truth)
        assert abs(got - truth) / truth <= 0.01 + 1e-9  # the DDSketch guarantee itself


def test_bucket_bounds_and_representative() -> None:
    sketch = LogHistogram(0.01)
    g = sketch.gamma
    assert g == pytest.approx(1.01 / 0.99)
    for x in (1e-3, 0.5, 0.6, 1.0, 7.3, 120.0):
        i = sketch.index_of(x)
        assert g ** (i - 1) < x * (1 + 1e-12) and x <= g**i * (1 + 1e-12)
        assert abs(sketch.value_of(i) - x) / x <= 0.01 + 1e-12


def test_zero_bucket_for_tiny_and_zero_values() -> None:
    sketch = LogHistogram()
    sketch.add(0.0)
    sketch.add(5e-5)
    sketch.add(1e-4)
    assert sketch.buckets() == [(ZERO_INDEX, 3.0)]
    assert sketch.quantile(0.5) == 0.0
    sketch.add(1.0, weight=10)
    assert sketch.quantile(0.99) == pytest.approx(1.0, rel=0.01)


def test_weights_count_and_empty_quantile() -> None:
    sketch = LogHistogram()
    assert sketch.quantile(0.5) is None
    sketch.add(0.1, weight=3.0)
    sketch.add(1.0, weight=1.0)
    sketch.add(2.0, weight=0.0)  # no-op
    assert sketch.count == 4.0 and len(sketch) == 2
    assert sketch.quantile(0.75) == pytest.approx(0.1, rel=0.01)
    assert sketch.quantile(0.76) == pytest.approx(1.0, rel=0.01)
    assert sketch.quantile(0.0) == pytest.approx(0.1, rel=0.01)
    assert sketch.quantile(1.0) == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_rejects_non_finite_values(bad: float) -> None:
    with pytest.raises(ValueError):
        LogHistogram().add(bad)


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        LogHistogram(alpha=0.0)
    with pytest.raises(ValueError):
        LogHistogram().add(1.0, weight=-1.0)
    with pytest.raises(ValueError):
        LogHistogram().quantile(1.5)
    with pytest.raises(ValueError):
        LogHistogram(0.01).merge(LogHistogram(0.02))


def test_scaled_keeps_quantiles_and_scales_count() -> None:
    rng = random.Random(5)
    sketch = LogHistogram()
    for _ in range(1000):
        sketch.add(rng.lognormvariate(0, 0.5))
    half = sketch.scaled(0.5)
    assert half.count == pytest.approx(500.0)
    for q in QS:
        assert half.quantile(q) == sketch.quantile(q)
    assert sketch.count == 1000  # the original is untouched
    assert sketch.scaled(0.0).count == 0.0


values = st.lists(
    st.floats(min_value=0.0, max_value=1e4, allow_nan=False, allow_infinity=False), max_size=200
)


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_merge_equals_sketch_of_union(a: list[float], b: list[float]) -> None:
    left, right, union = LogHistogram(), LogHistogram(), LogHistogram()
    for x in a:
        left.add(x)
        union.add(x)
    for x in b:
        right.add(x)
        union.add(x)
    left.merge(right)
    assert left == union
    assert left.count == union.count == len(a) + len(b)
    assert left.buckets() == union.buckets()


@settings(max_examples=200, deadline=None)
@given(values, st.floats(min_value=1e-3, max_value=1e3))
def test_serialisation_round_trips(xs: list[float], weight: float) -> None:
    sketch = LogHistogram(0.01)
    for x in xs:
        sketch.add(x, weight)
    packed = LogHistogram.from_bytes(sketch.to_bytes())
    assert packed == sketch and packed.count == pytest.approx(sketch.count)
    mapping = sketch.to_mapping()
    assert LogHistogram.from_mapping(mapping) == sketch
    # as Redis returns a HASH: bytes field -> bytes value
    as_redis = {k.encode(): repr(v).encode() for k, v in mapping.items()}
    assert LogHistogram.from_mapping(as_redis) == sketch
    # mapping is JSON-friendly too
    assert LogHistogram.from_mapping(orjson.loads(orjson.dumps(mapping))) == sketch


def test_from_bytes_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        LogHistogram.from_bytes(b"nope")
    good = LogHistogram()
    good.add(1.0)
    with pytest.raises(ValueError):
        LogHistogram.from_bytes(good.to_bytes()[:-1])
    with pytest.raises(ValueError):
        LogHistogram.from_bytes(b"XXXX" + good.to_bytes()[4:])


def test_packed_form_is_compact() -> None:
    sketch = LogHistogram()
    rng = random.Random(9)
    for _ in range(10_000):
        sketch.add(rng.lognormvariate(math.log(0.6), 0.9))
    # about 12 bytes per non-empty bucket, a few hundred buckets
    assert len(sketch.to_bytes()) <= 24 + 12 * len(sketch)
    assert len(sketch) < 470
